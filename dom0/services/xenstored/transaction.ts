/*
 * XenStore transactions: a private view of the store that is applied whole at commit, or not at
 * all if something it read has changed meanwhile.
 *
 * Xen: tools/xenstored/transaction.c (access_node, finalize_transaction, do_transaction_start,
 * do_transaction_end, queue_watches). The conflict rule is C xenstored's: every node the
 * transaction *first read* (rather than first wrote) has its generation recorded, absent nodes as
 * NO_GENERATION; at commit each is compared with the store, and any difference is EAGAIN.
 * docs/misc/xenstore.txt promises only that "intervening writes" fail a commit, so clients retry
 * on any EAGAIN (XenbusClient.transaction does).
 *
 * Reads of nodes the transaction has not touched see the store as it is now (not as it was at
 * start), exactly as in C: such a read is then checked at commit like any other.
 *
 * Changes are kept in an overlay keyed by path (a node record, or null for deleted); watch events
 * they cause are queued, one per path (non-exact wins over exact), and fire at commit, after the
 * changes are visible. Abort, or the connection going away, just drops the object.
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
  /** The generation when it started, stamped on the nodes it writes until they are committed. */
  readonly generation: number;
  private readonly overlay = new Map<string, XsNode | null>();
  /** Nodes first accessed by a read, and the generation seen then. */
  private readonly reads = new Map<string, number>();
  private readonly accessed = new Set<string>();
  private readonly ownerDelta = new Map<number, number>();
  private readonly events = new Map<string, QueuedEvent>();
  /** A change failed half-way (a quota hit while writing): the commit must not happen. */
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

  /** access_node: count the node against the transaction's quota the first time it is touched. */
  private touch(path: string, forWrite: boolean): void {
    if (this.accessed.has(path)) return;
    if (this.accessed.size >= this.nodeLimit) {
      if (forWrite) this.failed = true;
      fail('ENOSPC', `transaction touches more than ${this.nodeLimit} nodes`);
    }
    this.accessed.add(path);
    if (!forWrite) this.reads.set(path, this.store.read(path)?.generation ?? NO_GENERATION);
  }

  read(path: string): XsNode | undefined {
    const mine = this.overlay.get(path);
    if (mine !== undefined) return mine ?? undefined;
    this.touch(path, false);
    return this.store.read(path);
  }

  write(content: NodeContent): void {
    this.touch(content.name, true);
    const before = this.read(content.name);
    if (before === undefined) this.nodeCreated = true;
    else this.count(before.perms[0].id, -1);
    this.count(content.perms[0].id, 1);
    this.overlay.set(content.name, { ...content, generation: this.generation });
  }

  remove(path: string): void {
    this.touch(path, true);
    const before = this.read(path);
    if (before !== undefined) this.count(before.perms[0].id, -1);
    this.overlay.set(path, null);
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
    for (const [path, node] of this.overlay) {
      if (node === null) this.store.remove(path);
      else this.store.write(node);
    }
    return [...this.events.values()];
  }
}
