/*
 * One blkfront ring's bounce pages: a few pages of its own, granted once, that a segment is
 * copied through when the ring's grant pool has no grant to give (grant-pool.ts).
 *
 * Xen/Linux: drivers/block/xen-blkfront.c (the granted pages of fill_grant_buffer, and the
 * copies of blkif_setup_rw_req_grant on a write and blkif_completion on a read). Linux copies
 * every segment of a persistent-grant device this way; ringvisor only when the pool is full of
 * grants the backend still maps, so the exhaustion path costs a copy, never an error. The ring
 * has as many bounce pages as one request has segments: a request that finds too few free waits
 * for a request of the same ring (the only holders of bounce pages) to be answered, and a ring
 * with nothing in flight always has enough, so the wait always ends.
 */
import type { Kernel } from '../../shared/kernel/kernel.ts';

export class BouncePages {
  readonly gfns: number[];
  readonly refs: number[];
  private readonly views: Uint8Array[];
  private readonly freeList: number[] = [];
  readonly stats = { copies: 0 };

  constructor(private readonly k: Kernel, backend: number, count: number) {
    this.gfns = k.pages.allocMany(count);
    // Read-write: the backend writes into them for a read, and may keep them mapped (persistent).
    this.refs = this.gfns.map((g) => k.gnttab.grant(backend, g, false));
    this.views = this.gfns.map((g) => k.memory.page(g, true));
    for (let i = count - 1; i >= 0; i--) this.freeList.push(i);
  }

  get available(): number {
    return this.freeList.length;
  }

  /** A free bounce page's index (the caller checked `available`). */
  take(): number {
    return this.freeList.pop()!;
  }

  give(i: number): void {
    this.freeList.push(i);
  }

  /** A write: the caller's page (its first `bytes`) into bounce page `i` before the request goes. */
  copyIn(i: number, gfn: number, bytes: number): void {
    this.views[i].set(this.k.memory.page(gfn, false).subarray(0, bytes));
    this.stats.copies++;
  }

  /** A read answered: bounce page `i` into the caller's page, only the bytes the request named. */
  copyOut(i: number, gfn: number, bytes: number): void {
    this.k.memory.page(gfn, true).set(this.views[i].subarray(0, bytes));
    this.stats.copies++;
  }

  /** Give the grants and pages back (after the backend has unmapped them). */
  free(): void {
    for (const ref of this.refs) this.k.gnttab.endAccess(ref);
    for (const g of this.gfns) this.k.pages.release(g);
  }
}
