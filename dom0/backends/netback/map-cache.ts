/*
 * Netback's grant mappings of a frontend's tx pages: each page is mapped read-only the first time a
 * packet's data is found in it, and kept while packets still use it.
 *
 * Linux: drivers/net/xen-netback/netback.c maps every tx frag read-only (xenvif_tx_create_map_op,
 * GNTMAP_host_map | GNTMAP_readonly) for the life of one skb, and its dealloc thread unmaps them
 * in batches (xenvif_tx_dealloc_action) once the skb is freed; the tx response goes out only then.
 * Linux netfront grants each skb's pages afresh, so there is nothing to keep. ringvisor's netfront
 * grants each tx buffer once for the life of the device (domu/netfront/queue.ts), so netback keeps
 * a mapping as a cache, keyed by grant reference, as blkback keeps persistent grants: after the
 * first lap of the ring, a packet's frags cost no map or unmap hypercall at all.
 *
 * Bounds: at most CACHE_ENTRIES mappings per queue, each taken from the frontend's share of Dom0's
 * mapping budget (backends/lib/grant-budget.ts); when either is used up, get() says -1 and the slot's
 * data is grant-copied instead. A mapping is unmapped only when no packet uses it: at close, those
 * still in flight (in another vif's backlog, say) are unmapped when their last packet lets go, as
 * Linux's xenvif_disconnect waits for its pending unmaps. Until then the frontend's end_access on
 * that grant fails, which the frontend survives (it leaks the page, as Linux warns and leaks).
 */
import type { Kernel } from '../../../shared/kernel/kernel.ts';
import { GNTMAP_host_map, GNTMAP_readonly, GNTST_okay, type GnttabMapGrantRef } from '../../../shared/public/grant_table.ts';
import type { GrantBudget } from '../../../backends/lib/grant-budget.ts';

/** Twice the tx ring: every buffer a frontend can have in flight, with room to spare. */
export const CACHE_ENTRIES = 512;

export class TxMapCache {
  private readonly byRef = new Map<number, number>();
  readonly gfn = new Int32Array(CACHE_ENTRIES);
  private readonly handle = new Int32Array(CACHE_ENTRIES);
  private readonly ref = new Int32Array(CACHE_ENTRIES);
  /** Packets whose frags point into this mapping now. */
  private readonly inflight = new Int32Array(CACHE_ENTRIES);
  readonly views: (Uint8Array | null)[] = new Array(CACHE_ENTRIES).fill(null);
  private used = 0;
  private closing = false;
  private readonly op: GnttabMapGrantRef = { host_addr: 0, flags: 0, ref: 0, dom: 0, status: 0, handle: -1 };
  private readonly unmapOp = { host_addr: 0, handle: 0, status: 0 };
  readonly stats = { maps: 0, hits: 0, unmaps: 0, refused: 0 };

  constructor(private readonly k: Kernel, private readonly frontend: number, private readonly budget: GrantBudget) {}

  /** The entry mapping `gref`, mapped now if it was not; -1 if it cannot be (copy instead). */
  get(gref: number): number {
    const e = this.byRef.get(gref);
    if (e !== undefined) {
      this.stats.hits++;
      return e;
    }
    if (this.closing || this.used === CACHE_ENTRIES || !this.budget.takePersistent(this.frontend)) {
      this.stats.refused++;
      return -1;
    }
    const gfn = this.k.pages.tryAllocHole();
    if (gfn < 0) {
      this.budget.give(this.frontend, true);
      this.stats.refused++;
      return -1;
    }
    const op = this.op;
    op.host_addr = gfn;
    op.flags = GNTMAP_host_map | GNTMAP_readonly;
    op.ref = gref;
    op.dom = this.frontend;
    this.k.hypercall.gnttab_map_grant_ref(op);
    this.stats.maps++;
    if (op.status !== GNTST_okay) {
      // A bad grant: the copy that follows fails the same way and answers the packet with an error.
      this.budget.give(this.frontend, true);
      this.k.pages.releaseHole(gfn);
      this.stats.refused++;
      return -1;
    }
    const i = this.used++;
    this.gfn[i] = gfn;
    this.handle[i] = op.handle;
    this.ref[i] = gref;
    this.inflight[i] = 0;
    this.views[i] = this.k.memory.page(gfn, false);
    this.byRef.set(gref, i);
    return i;
  }

  hold(e: number): void {
    this.inflight[e]++;
  }

  /** A packet using entry `e` let go; a closed cache unmaps the entry with its last user. */
  release(e: number): void {
    if (--this.inflight[e] === 0 && this.closing) this.unmap(e);
  }

  /** Mappings not yet unmapped (for tests: nothing is left behind). */
  get held(): number {
    let n = 0;
    for (let i = 0; i < this.used; i++) if (this.views[i] !== null) n++;
    return n;
  }

  /** The queue goes: unmap what no packet uses; the rest follow as their packets let go. */
  close(): void {
    this.closing = true;
    this.byRef.clear();
    for (let i = 0; i < this.used; i++) if (this.inflight[i] === 0) this.unmap(i);
  }

  private unmap(e: number): void {
    if (this.views[e] === null) return;
    const op = this.unmapOp;
    op.host_addr = this.gfn[e];
    op.handle = this.handle[e];
    this.k.hypercall.gnttab_unmap_grant_ref(op);
    this.stats.unmaps++;
    if (op.status !== GNTST_okay) throw new Error(`netback: unmap of our own mapping at gfn ${this.gfn[e]} failed (${op.status})`);
    this.views[e] = null;
    this.budget.give(this.frontend, true);
    this.k.pages.releaseHole(this.gfn[e]);
  }
}
