/*
 * One blkfront ring's persistent grants: a bounded pool, reused, and reclaimed from the backend
 * when it lets them go.
 *
 * Xen/Linux: drivers/block/xen-blkfront.c (blkfront_ring_info.grants and persistent_gnts_c,
 * fill_grant_buffer, get_free_grant, get_grant, blkif_completion's return of grants to the list,
 * purge_persistent_grants with gnttab_try_end_foreign_access).
 *
 * Linux gives each ring a fixed list of grants, as many as the ring can ever have in flight
 * (its slots times the segments one request carries), each on a page blkfront owns, and copies
 * every bio through them. ringvisor grants the caller's own I/O buffer pages instead (zero copy,
 * see blkfront.ts), so a grant belongs to a guest page, not to a pool slot; this pool keeps the
 * bound Linux's list gives. It holds at most `cap` grants. When a request is answered, each of
 * its grants the backend did not keep mapped is ended at once (blkif_completion); a page seen
 * again finds its grant if the backend kept it (no grant operation for anyone); a new page takes
 * a free slot, or else the least recently used idle grant the backend has since let go (its
 * purge_persistent_gnt, dom0/backends/blkback/grants.ts, drops mappings it has not used lately
 * when it is over its own limit; this is Linux's purge_persistent_grants, done when a grant is
 * wanted rather than every few seconds). Only the grantee's mapping stands in the way of ending a
 * grant: the entry's GTF_reading/GTF_writing, checked and cleared in one compare-and-swap
 * (gnttab_try_end_foreign_access; older kernels' gnttab_query_foreign_access). So a working set
 * bigger than either limit moves, in both domains, to the pages in use now. When no idle grant
 * can be ended, get() says so (-1) and the queue copies the segment through one of its bounce
 * pages (bounce.ts), which is what Linux does for every segment.
 *
 * Entries are slots 0..cap-1 in typed arrays, one shape, nothing allocated per request. An entry
 * is free (no grant), busy (`users` in-flight segments hold it) or idle (granted, on the LRU list,
 * oldest at `head`).
 */
import type { GrantTable } from '../../shared/kernel/grant-table.ts';

/** Idle grants looked at for one new page before giving up on reclaiming (a bound on the scan). */
export const RECLAIM_SCAN = 32;

const NONE = -1;

export class GrantPool {
  private readonly gref: Int32Array;
  private readonly gfn: Int32Array;
  private readonly users: Uint16Array;
  private readonly prev: Int32Array;
  private readonly next: Int32Array;
  private readonly byGfn = new Map<number, number>();
  private readonly free: number[] = [];
  private head = NONE;
  private tail = NONE;
  /** Entries on the LRU list. */
  private idle = 0;
  /** Linux's persistent_gnts_c: grants this ring holds now. */
  granted = 0;
  readonly stats = { hits: 0, grants: 0, ended: 0, reclaimed: 0, stillMapped: 0, exhausted: 0 };

  constructor(
    private readonly gnttab: GrantTable,
    private readonly backend: number,
    readonly cap: number,
  ) {
    this.gref = new Int32Array(cap).fill(NONE);
    this.gfn = new Int32Array(cap).fill(NONE);
    this.users = new Uint16Array(cap);
    this.prev = new Int32Array(cap).fill(NONE);
    this.next = new Int32Array(cap).fill(NONE);
    for (let e = cap - 1; e >= 0; e--) this.free.push(e);
  }

  /**
   * An entry granting `gfn` to the backend (read-write: a backend that keeps a mapping may use it
   * for either direction later, as Linux grants whenever feature-persistent is on), held for one
   * segment until put(); or -1 when the pool is full of grants in use or still mapped.
   */
  get(gfn: number): number {
    let e = this.byGfn.get(gfn);
    if (e !== undefined) {
      if (this.users[e]++ === 0) this.unlink(e);
      this.stats.hits++;
      return e;
    }
    e = this.free.length > 0 ? this.free.pop()! : this.reclaim();
    if (e === NONE) {
      this.stats.exhausted++;
      return NONE;
    }
    const ref = this.gnttab.claim();
    if (ref < 0) {
      // The vCPU's whole table is in use (other devices): copy through a bounce page, or wait.
      this.free.push(e);
      this.stats.exhausted++;
      return NONE;
    }
    this.gnttab.grantRef(ref, this.backend, gfn, false);
    this.gref[e] = ref;
    this.gfn[e] = gfn;
    this.users[e] = 1;
    this.byGfn.set(gfn, e);
    this.granted++;
    this.stats.grants++;
    return e;
  }

  /** Whether a grant for `gfn` is here (the queue a part should go to). */
  holds(gfn: number): boolean {
    return this.byGfn.has(gfn);
  }

  refOf(e: number): number {
    return this.gref[e];
  }

  /**
   * The segment holding `e` was answered (blkif_completion). The last user gone, the grant is
   * ended at once if the backend did not keep it mapped (it mapped it for this request only:
   * Linux's blkif_completion ends such a grant and puts it at the tail); one the backend keeps
   * stays, idle, most recently used, for the page's next request.
   */
  put(e: number): void {
    if (--this.users[e] !== 0) return;
    if (this.gnttab.endAccessRef(this.gref[e])) {
      this.forget(e);
      this.free.push(e);
      this.stats.ended++;
      return;
    }
    this.append(e);
  }

  /** An entry whose grant was just ended: its reference back to the table, its page forgotten. */
  private forget(e: number): void {
    this.gnttab.release(this.gref[e]);
    this.byGfn.delete(this.gfn[e]);
    this.gref[e] = NONE;
    this.gfn[e] = NONE;
    this.granted--;
  }

  private append(e: number): void {
    this.idle++;
    this.prev[e] = this.tail;
    this.next[e] = NONE;
    if (this.tail !== NONE) this.next[this.tail] = e;
    else this.head = e;
    this.tail = e;
  }

  /**
   * purge_persistent_grants, one grant at a time: the oldest idle grants first, ending the first
   * the backend no longer maps; one it still maps goes to the young end, so the next scan looks
   * at others (the backend's own LRU will let it go if it stays unused).
   */
  private reclaim(): number {
    const scan = Math.min(RECLAIM_SCAN, this.idle);
    for (let n = 0; n < scan; n++) {
      const e = this.head;
      this.unlink(e);
      if (this.gnttab.endAccessRef(this.gref[e])) {
        this.forget(e);
        this.stats.reclaimed++;
        return e;
      }
      this.stats.stillMapped++;
      this.append(e);
    }
    return NONE;
  }

  private unlink(e: number): void {
    this.idle--;
    const p = this.prev[e];
    const n = this.next[e];
    if (p !== NONE) this.next[p] = n;
    else this.head = n;
    if (n !== NONE) this.prev[n] = p;
    else this.tail = p;
    this.prev[e] = NONE;
    this.next[e] = NONE;
  }

  /**
   * Give every grant back (the backend is gone or disconnected, so it has unmapped them; one it
   * still maps is ended later by the grant table's deferred list, never reused early).
   */
  endAll(): void {
    for (let e = 0; e < this.cap; e++) {
      if (this.gref[e] !== NONE) this.gnttab.endAccess(this.gref[e]);
      this.gref[e] = NONE;
      this.gfn[e] = NONE;
      this.users[e] = 0;
      this.prev[e] = NONE;
      this.next[e] = NONE;
    }
    this.byGfn.clear();
    this.free.length = 0;
    for (let e = this.cap - 1; e >= 0; e--) this.free.push(e);
    this.head = this.tail = NONE;
    this.idle = 0;
    this.granted = 0;
  }
}
