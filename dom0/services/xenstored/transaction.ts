/*
 * XenStore transactions: a private view of the store that is applied whole at commit, or not at
 * all if something it read has changed meanwhile.
 *
 * Xen: tools/xenstored/transaction.c (access_node, transaction_prepend, finalize_transaction,
 * do_transaction_start, do_transaction_end, queue_watches), Xen 4.17. The rules are C
 * xenstored's, operation for operation:
 *
 *  - The first time a transaction touches a node, the node is copied into the transaction (C
 *    writes it to the TDB under "<generation>/<path>"; a record here is immutable, so keeping a
 *    reference is the copy). Every later access inside the transaction (read, directory,
 *    get-perms, a write or rm that looks first) sees that copy and never the store again, so
 *    reads are repeatable: what another client writes meanwhile is invisible. A node found
 *    absent at first access stays absent inside the transaction, even if someone creates it.
 *  - A node whose first access was a read has the generation it had then recorded (an absent
 *    node NO_GENERATION). At commit each is compared with the store; any difference is EAGAIN
 *    and nothing is applied. A node first accessed by a write is not checked (the commit
 *    overwrites whatever is there), but ringvisor's operations, like C's, always look a node up
 *    before changing it, so in practice every node a transaction changes is checked.
 *  - Writes inside the transaction take a fresh global generation each (C's access_node bumps
 *    the counter for every modifying access, in a transaction or not); the commit stamps another
 *    as it writes each record to the store.
 *  - Touching more than quota_trans_nodes distinct nodes is ENOSPC, and, as in C, fails the
 *    whole transaction: its commit then answers ENOMEM.
 *
 * docs/misc/xenstore.txt promises only that "intervening writes" fail a commit, so clients retry
 * on any EAGAIN (XenbusClient.transaction does).
 *
 * Watch events the changes cause are queued, one per path (non-exact wins over exact), and fire
 * at commit, after the changes are visible. Abort, or the connection going away, just drops the
 * object.
 */
import type { XsPermission } from '../../../shared/public/io/xs_wire.ts';
import { NO_GENERATION, type XsNode } from './node.ts';
import { fail } from './quota.ts';
import type { NodeAccess, NodeContent, Store } from './store.ts';

export interface QueuedEvent {
  path: string;
  /** Fire only watches on exactly this path (a descendant removed with its parent). */
  exact: boolean;
  /** The node's permissions before the change, for deciding who may see the event. */
  perms: readonly XsPermission[] | undefined;
}

export class Transaction implements NodeAccess {
  /** The generation when it started (do_transaction_start's ++generation). */
  readonly generation: number;
  /**
   * The transaction's copy of every node it has accessed (struct accessed_node), in first-access
   * order: the record, or null for a node absent at first access or removed since.
   */
  private readonly view = new Map<string, XsNode | null>();
  /** Nodes first accessed by a read, and the generation seen then (check_gen). */
  private readonly reads = new Map<string, number>();
  /** Nodes this transaction changed (accessed_node.modified). */
  private readonly modified = new Set<string>();
  private readonly ownerDelta = new Map<number, number>();
  private readonly events = new Map<string, QueuedEvent>();
  /** A change failed half-way, or a quota was hit (trans->fail): the commit must not happen. */
  failed = false;
  /** At least one node was created: the commit re-checks the node quota (transaction_fix_domains). */
  nodeCreated = false;

  constructor(
    readonly id: number,
    private readonly store: Store,
    /** quota_trans_nodes for an unprivileged connection, Infinity for Dom0. */
    private readonly nodeLimit: number,
  ) {
    this.generation = store.nextGeneration();
  }

  /** access_node's quota check for a node not yet accessed; a refusal fails the transaction. */
  private admit(path: string): void {
    if (this.view.size >= this.nodeLimit) {
      this.failed = true;
      fail('ENOSPC', `transaction touches more than ${this.nodeLimit} nodes (${path})`);
    }
  }

  read(path: string): XsNode | undefined {
    const seen = this.view.get(path);
    if (seen !== undefined) return seen ?? undefined;
    // First access: copy the node in and remember what we saw.
    this.admit(path);
    const node = this.store.read(path) ?? null;
    this.view.set(path, node);
    this.reads.set(path, node?.generation ?? NO_GENERATION);
    return node ?? undefined;
  }

  /** The transaction's copy if it has one, else the store's node, without recording a read. */
  private current(path: string): XsNode | undefined {
    if (this.view.has(path)) return this.view.get(path) ?? undefined;
    this.admit(path);
    return this.store.read(path);
  }

  write(content: NodeContent): void {
    const before = this.current(content.name);
    if (before === undefined) this.nodeCreated = true;
    else this.count(before.perms[0].id, -1);
    this.count(content.perms[0].id, 1);
    this.view.set(content.name, { ...content, generation: this.store.nextGeneration() });
    this.modified.add(content.name);
  }

  remove(path: string): void {
    const before = this.current(path);
    if (before !== undefined) this.count(before.perms[0].id, -1);
    this.view.set(path, null);
    this.modified.add(path);
  }

  owned(domid: number): number {
    return this.store.owned(domid) + (this.ownerDelta.get(domid) ?? 0);
  }

  private count(domid: number, n: number): void {
    this.ownerDelta.set(domid, (this.ownerDelta.get(domid) ?? 0) + n);
  }

  /** The domains whose node count the commit would change, with the count it would leave. */
  ownersAfterCommit(): Map<number, number> {
    const out = new Map<number, number>();
    for (const [domid, delta] of this.ownerDelta) if (delta !== 0) out.set(domid, this.store.owned(domid) + delta);
    return out;
  }

  /** queue_watches. */
  queueEvent(path: string, exact: boolean, perms: readonly XsPermission[] | undefined): void {
    const prev = this.events.get(path);
    if (prev === undefined) this.events.set(path, { path, exact, perms });
    else prev.exact &&= exact;
  }

  /**
   * finalize_transaction: EAGAIN if a node first read here has changed in the store; otherwise
   * apply every change and return the watch events to fire.
   */
  commit(): QueuedEvent[] {
    if (this.failed) fail('ENOMEM', 'transaction failed part-way');
    for (const [path, gen] of this.reads) {
      if ((this.store.read(path)?.generation ?? NO_GENERATION) !== gen) fail('EAGAIN', `${path} changed`);
    }
    for (const path of this.modified) {
      const node = this.view.get(path)!;
      if (node === null) this.store.remove(path);
      else this.store.write(node);
    }
    return [...this.events.values()];
  }
}
