/*
 * The device model's window on a guest's RAM: guest frames mapped into Dom0's physmap on demand
 * and kept mapped, so that DMA to the same buffers costs no hypercall the second time.
 *
 * QEMU: hw/xen/xen-mapcache.c (xen_map_cache, buckets of guest memory mapped with
 * xenforeignmemory_map, entries locked while a DMA uses them, xen_invalidate_map_cache when Xen
 * sends IOREQ_TYPE_INVALIDATE). Underneath is the privileged foreign mapping
 * (XENMEM_add_to_physmap_batch, XENMAPSPACE_gmfn_foreign; hypervisor/p2m-foreign.ts): Dom0 names
 * a guest gfn, the hypervisor checks the guest owns it and puts the frame in a hole of Dom0's
 * physmap, and Dom0's own memory object reaches it from then on.
 *
 * Buckets are BUCKET_PAGES aligned guest pages, mapped with one batch hypercall; gfns the guest
 * has no RAM at come back as errors and stay unmapped (page() returns null: the DMA engine turns
 * that into a bus-master error). At most `maxBuckets` are mapped (default 64: 4 MiB of guest
 * RAM, 1024 of the holes Dom0's vCPU has for all its foreign pages, grant maps included); a miss
 * beyond that, or when holes run out, evicts the least recently used bucket not locked by the DMA
 * in progress (lock(): buckets touched since then are kept), and reuses its holes.
 *
 * What is not modelled yet: invalidation. Nothing in ringvisor takes RAM away from a running
 * guest today; when ballooning arrives, the hypervisor must send IOREQ_TYPE_INVALIDATE after
 * decrease_reservation and this cache must flush() on it, as QEMU's does.
 */
import type { Kernel } from '../../shared/kernel/kernel.ts';
import { XENMAPSPACE_gmfn_foreign } from '../../shared/public/hypercall.ts';
import { errnoName } from '../../shared/public/xen.ts';

export const BUCKET_SHIFT = 4;
export const BUCKET_PAGES = 1 << BUCKET_SHIFT; // 64 KiB of guest memory per bucket

interface Bucket {
  index: number;
  /** Dom0 holes backing the bucket's pages (kept for the bucket slot's whole life). */
  holes: number[];
  /** The mapped pages (null where the guest has no RAM). */
  pages: (Uint8Array | null)[];
  lastUse: number;
}

export interface MapCacheStats {
  hits: number;
  misses: number;
  mapHypercalls: number;
  pagesMapped: number;
  pagesUnmapped: number;
  evictions: number;
}

export class MapCache {
  readonly stats: MapCacheStats = { hits: 0, misses: 0, mapHypercalls: 0, pagesMapped: 0, pagesUnmapped: 0, evictions: 0 };
  private readonly buckets = new Map<number, Bucket>();
  private tick = 0;
  private lockedFrom = Number.MAX_SAFE_INTEGER;
  private readonly idxs = new Int32Array(BUCKET_PAGES);
  private readonly gpfns = new Int32Array(BUCKET_PAGES);
  private readonly errs = new Int32Array(BUCKET_PAGES);

  constructor(private readonly k: Kernel, readonly domid: number, readonly maxBuckets = 64) {}

  /** Guest page `gfn` as a writable view, or null if the guest has no RAM there. */
  page(gfn: number): Uint8Array | null {
    if (!(Number.isInteger(gfn) && gfn >= 0)) return null;
    const index = gfn >>> BUCKET_SHIFT;
    let b = this.buckets.get(index);
    if (b === undefined) {
      this.stats.misses++;
      const filled = this.fill(index);
      if (filled === null) return null;
      b = filled;
    } else {
      this.stats.hits++;
    }
    b.lastUse = ++this.tick;
    return b.pages[gfn & (BUCKET_PAGES - 1)];
  }

  /** A DMA starts: buckets it touches from now on are not evicted until unlock(). */
  lock(): void {
    this.lockedFrom = this.tick + 1;
  }

  unlock(): void {
    this.lockedFrom = Number.MAX_SAFE_INTEGER;
  }

  /**
   * Map bucket `index`: into a new bucket slot while the cache may grow and Dom0 has physmap
   * holes to spare, else into the least recently used unlocked one. Null if none can be had.
   */
  private fill(index: number): Bucket | null {
    let b = this.buckets.size < this.maxBuckets ? this.newBucket() : null;
    if (b === null) {
      for (const cand of this.buckets.values()) {
        if (cand.lastUse < this.lockedFrom && (b === null || cand.lastUse < b.lastUse)) b = cand;
      }
      if (b === null) return null;
      this.unmapBucket(b);
      this.buckets.delete(b.index);
      this.stats.evictions++;
    }
    b.index = index;
    for (let i = 0; i < BUCKET_PAGES; i++) {
      this.idxs[i] = index * BUCKET_PAGES + i;
      this.gpfns[i] = b.holes[i];
    }
    const rc = this.k.hypercall.memory_add_to_physmap_batch(XENMAPSPACE_gmfn_foreign, this.domid, this.idxs, this.gpfns, this.errs, BUCKET_PAGES);
    this.stats.mapHypercalls++;
    for (let i = 0; i < BUCKET_PAGES; i++) {
      const ok = rc === 0 && this.errs[i] === 0;
      b.pages[i] = ok ? this.k.memory.page(b.holes[i], true) : null;
      if (ok) this.stats.pagesMapped++;
    }
    this.buckets.set(index, b);
    return b;
  }

  /** A bucket slot with its own holes, or null if Dom0's physmap has no more (shared with grant maps). */
  private newBucket(): Bucket | null {
    const holes: number[] = [];
    try {
      for (let i = 0; i < BUCKET_PAGES; i++) holes.push(this.k.pages.allocHole());
    } catch {
      for (const h of holes) this.k.pages.releaseHole(h);
      return null;
    }
    return { index: 0, holes, pages: new Array<Uint8Array | null>(BUCKET_PAGES).fill(null), lastUse: 0 };
  }

  private unmapBucket(b: Bucket): void {
    for (let i = 0; i < BUCKET_PAGES; i++) {
      if (b.pages[i] === null) continue;
      const rc = this.k.hypercall.memory_remove_from_physmap(b.holes[i]);
      if (rc < 0) throw new Error(`mapcache: unmapping d${this.domid} gfn ${b.index * BUCKET_PAGES + i} failed: ${errnoName(rc)}`);
      b.pages[i] = null;
      this.stats.pagesUnmapped++;
    }
  }

  /** Unmap everything and give the holes back (invalidate, or the model shutting down). */
  flush(): void {
    for (const b of this.buckets.values()) {
      this.unmapBucket(b);
      for (const hole of b.holes) this.k.pages.releaseHole(hole);
    }
    this.buckets.clear();
  }

  /** Guest pages currently mapped (for leak checks). */
  get mapped(): number {
    let n = 0;
    for (const b of this.buckets.values()) for (const p of b.pages) if (p !== null) n++;
    return n;
  }
}
