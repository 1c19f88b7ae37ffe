/*
 * The XenStore database: every node by path, the global generation counter, and how many nodes
 * each domain owns.
 *
 * Xen: the TDB behind tools/xenstored/core.c (read_node, write_node_raw, do_tdb_write,
 * do_tdb_delete, setup_structure) and the per-domain node accounting of
 * tools/xenstored/domain.c (domain_entry_inc / _dec, the "nodes" quota counts these).
 *
 * Nodes are immutable records: a change writes a new record under the same path, stamped with
 * the next generation. Transactions (./transaction.ts) read through this store, compare
 * generations at commit, and apply their changes with the same put/remove, so the ownership
 * counts stay right whichever way a change arrives.
 *
 * Operations (./ops.ts) do not talk to the Store directly but to a NodeAccess: the Store itself
 * outside a transaction, or a transaction's overlay inside one.
 */
import { XS_PERM_NONE, type XsPermission } from '../../../shared/public/io/xs_wire.ts';
import { childPath, type XsNode } from './node.ts';

/** A node's content, before the store stamps a generation on it. */
export type NodeContent = Omit<XsNode, 'generation'>;

/** How an operation sees the database: directly, or through a transaction. */
export interface NodeAccess {
  read(path: string): XsNode | undefined;
  write(node: NodeContent): void;
  remove(path: string): void;
  /** Nodes owned by `domid`, as this access would leave them. */
  owned(domid: number): number;
}

const EMPTY = new Uint8Array(0);

export class Store implements NodeAccess {
  private readonly nodes = new Map<string, XsNode>();
  private readonly ownedCount = new Map<number, number>();
  /** The global generation: bumped for every write and every transaction start. */
  generation = 0;

  constructor() {
    // setup_structure: the root, owned by Dom0, no access for anyone else.
    this.write({ name: '/', data: EMPTY, children: [], perms: [{ id: 0, perms: XS_PERM_NONE }] });
  }

  get size(): number {
    return this.nodes.size;
  }

  read(path: string): XsNode | undefined {
    return this.nodes.get(path);
  }

  nextGeneration(): number {
    return ++this.generation;
  }

  write(content: NodeContent): void {
    const old = this.nodes.get(content.name);
    if (old !== undefined) this.count(old.perms[0].id, -1);
    this.count(content.perms[0].id, 1);
    this.nodes.set(content.name, { ...content, generation: this.nextGeneration() });
  }

  remove(path: string): void {
    const old = this.nodes.get(path);
    if (old === undefined) return;
    this.count(old.perms[0].id, -1);
    this.nodes.delete(path);
    // A deleted node's generation is gone; a transaction that read it sees NO_GENERATION now.
    this.generation++;
  }

  owned(domid: number): number {
    return this.ownedCount.get(domid) ?? 0;
  }

  private count(domid: number, n: number): void {
    const v = (this.ownedCount.get(domid) ?? 0) + n;
    if (v === 0) this.ownedCount.delete(domid);
    else this.ownedCount.set(domid, v);
  }

  /** Every node at or below `root`, parents before children (walk_node_tree's order). */
  *walk(root = '/'): Generator<XsNode> {
    const start = this.nodes.get(root);
    if (start === undefined) return;
    const stack: XsNode[] = [start];
    while (stack.length > 0) {
      const n = stack.pop()!;
      yield n;
      for (let i = n.children.length - 1; i >= 0; i--) {
        const c = this.nodes.get(childPath(n.name, n.children[i]));
        if (c !== undefined) stack.push(c);
      }
    }
  }

  /**
   * check_store + clean_store, with C's default recovery: walk from the root; a child name
   * listed twice, or naming no node, is dropped from its parent's list; a node the walk never
   * reaches is deleted; the per-domain node counts are recounted. Returns what it found, in C's
   * words, for the log.
   */
  check(): string[] {
    const problems: string[] = [];
    const reachable = new Set<string>();
    const stack = ['/'];
    while (stack.length > 0) {
      const node = this.nodes.get(stack.pop()!)!;
      reachable.add(node.name);
      const kept: string[] = [];
      for (const c of node.children) {
        const path = childPath(node.name, c);
        if (kept.includes(c) || reachable.has(path)) problems.push(`'${path}' is duplicated!`);
        else if (!this.nodes.has(path)) problems.push(`node '${path}' not found`);
        else {
          kept.push(c);
          stack.push(path);
        }
      }
      // The repair is a change like any other (remove_child_entry writes the node): a new generation.
      if (kept.length !== node.children.length) this.nodes.set(node.name, { ...node, children: kept, generation: this.nextGeneration() });
    }
    for (const name of [...this.nodes.keys()]) {
      if (reachable.has(name)) continue;
      problems.push(`clean_store: '${name}' is orphaned!`);
      this.nodes.delete(name);
    }
    const counted = new Map<number, number>();
    for (const n of this.nodes.values()) counted.set(n.perms[0].id, (counted.get(n.perms[0].id) ?? 0) + 1);
    for (const domid of new Set([...counted.keys(), ...this.ownedCount.keys()])) {
      if (counted.get(domid) !== this.ownedCount.get(domid)) problems.push(`domain ${domid} owns ${counted.get(domid) ?? 0} nodes, not ${this.ownedCount.get(domid) ?? 0}`);
    }
    this.ownedCount.clear();
    for (const [domid, n] of counted) this.ownedCount.set(domid, n);
    return problems;
  }

  /** Permissions of a node, e.g. for tests and diagnostics. */
  permsOf(path: string): readonly XsPermission[] | undefined {
    return this.nodes.get(path)?.perms;
  }
}
