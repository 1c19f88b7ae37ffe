/*
 * The machine frame allocator and frame ownership.
 *
 * Xen: xen/common/page_alloc.c (alloc_domheap_pages, free_domheap_pages, alloc_heap_pages,
 * free_heap_pages, scrub_free_pages) and the owner / reference fields of struct page_info. Xen uses
 * a buddy allocator because it needs contiguous runs for superpages and DMA; ringvisor never needs
 * contiguity (a multi-page ring is a list of frames), so two stacks of free frames under one lock
 * are enough, and O(1).
 *
 * Scrubbing (Xen 4.10 and later): a freed frame still holds its last owner's bytes, so it goes on
 * the free lists marked need-scrub (Xen: PGC_need_scrub) instead of being zeroed in
 * free_domheap_page. Clean frames are one stack, growing up from STACK; dirty frames another,
 * growing down from the table's end (Xen keeps dirty buddies at the tail of each free list, so
 * allocation finds clean ones first). alloc_domheap_page hands out a clean frame if there is one,
 * else takes a dirty one and scrubs it itself before anyone sees it (Xen's alloc_heap_pages): no
 * frame ever reaches a new owner with a previous owner's bytes. Who cleans the dirty stack while
 * nobody allocates is ./mm/scrub.ts, the idle scrubber (Xen's idle loop calling scrub_free_pages).
 * Destroying a domain is then a walk over its P2M that pushes frames, and the zeroing of its RAM
 * (tens of ms for a 64 MiB guest) happens when a core has nothing else to do.
 *
 * The boot option `scrub` (./host-options.ts): 'idle' as above; 'free' zeroes each frame in
 * free_domheap_page, as Xen 4.9 and earlier scrubbed a dying domain's pages, so that A/B is one
 * flag. The mode lives in the shared table because frames are freed on every thread.
 *
 * A frame that another domain still has mapped through a grant is not freed when its owner dies:
 * it is marked orphaned and the last unmap frees it (Xen keeps it alive by its page reference
 * count the same way).
 */
import { spin_lock, spin_unlock } from './spinlock.ts';
import { PAGE_SIZE } from '../shared/public/xen.ts';
import { F, XENHEAP_FRAMES, type HypervisorState } from './state.ts';

/*
 * The allocator's table (hv.allocator): A.* header words, then the clean stack from STACK up and
 * the dirty stack from the last word down. They never meet: at most nrFrames - XENHEAP_FRAMES
 * frames are free, and the table has room for nrFrames. SCRUBBING counts frames the idle scrubber
 * has taken off the dirty stack and not yet put on the clean one: free, but in nobody's list.
 */
export const A = {
  LOCK: 0, CLEAN: 1, DIRTY: 2, SCRUBBING: 3,
  MODE: 4,            // SCRUB_IDLE or SCRUB_AT_FREE
  SCRUBBER_IDLE: 5,   // 1 while the idle scrubber sleeps on this word; a free of a dirty frame wakes it
  SCRUBBER_STOP: 6,   // 1: the idle scrubber's thread leaves (host close)
  SCRUBBED_IDLE: 7,   // frames zeroed by the idle scrubber,
  SCRUBBED_ALLOC: 8,  // by an allocation that found no clean frame,
  SCRUBBED_FREE: 9,   // by free_domheap_page (mode SCRUB_AT_FREE)
  ALLOC_WAITS: 10,    // allocations that found only frames the scrubber held, and waited for them
  FREE: 11,           // free frames, whichever list they are on: one word, so a reader never sees a chunk in flight twice or not at all
} as const;
const STACK = 16; // hypervisor/state.ts sizes the table as 16 + nrFrames words
export const SCRUB_IDLE = 0;
export const SCRUB_AT_FREE = 1;

/** Called once by the control thread: every frame after the Xen heap starts free, and clean (fresh memory is zero). */
export function initAllocator(hv: HypervisorState, mode: 'idle' | 'free' = 'idle'): void {
  let top = 0;
  for (let mfn = hv.nrFrames - 1; mfn >= XENHEAP_FRAMES; mfn--) hv.allocator[STACK + top++] = mfn;
  hv.allocator[A.CLEAN] = top;
  hv.allocator[A.FREE] = top;
  hv.allocator[A.MODE] = mode === 'free' ? SCRUB_AT_FREE : SCRUB_IDLE;
}

/** Frames currently free, whether clean, dirty or being scrubbed. */
export function freeFrames(hv: HypervisorState): number {
  return Atomics.load(hv.allocator, A.FREE);
}

/** Frames in use as guest RAM (or orphaned grant targets). */
export function usedFrames(hv: HypervisorState): number {
  return hv.nrFrames - XENHEAP_FRAMES - freeFrames(hv);
}

/* The dirty stack's i-th slot, counting from its bottom (the table's last word). */
export const dirtySlot = (hv: HypervisorState, i: number): number => hv.allocator.length - 1 - i;
export const cleanSlot = (i: number): number => STACK + i;

/** Zero one frame (Xen: scrub_one_page). */
export function scrub_one_page(hv: HypervisorState, mfn: number): void {
  hv.mem8.fill(0, mfn * PAGE_SIZE, (mfn + 1) * PAGE_SIZE);
}

/**
 * Take one frame for `domid`, or -1 if the host is out of memory. A clean frame if there is one;
 * else a dirty one, scrubbed here before it is handed out. If the only free frames are in the idle
 * scrubber's hands, wait for it to put them back (a chunk: tens of microseconds of its work).
 */
export function alloc_domheap_page(hv: HypervisorState, domid: number): number {
  const a = hv.allocator;
  let mfn = -1;
  let dirty = false;
  for (;;) {
    spin_lock(a, A.LOCK);
    const clean = a[A.CLEAN];
    if (clean > 0) {
      mfn = a[cleanSlot(clean - 1)];
      Atomics.store(a, A.CLEAN, clean - 1);
    } else if (a[A.DIRTY] > 0) {
      const n = a[A.DIRTY];
      mfn = a[dirtySlot(hv, n - 1)];
      Atomics.store(a, A.DIRTY, n - 1);
      dirty = true;
    }
    if (mfn >= 0) Atomics.sub(a, A.FREE, 1);
    const held = Atomics.load(a, A.SCRUBBING);
    spin_unlock(a, A.LOCK);
    if (mfn >= 0 || held === 0) break;
    Atomics.add(a, A.ALLOC_WAITS, 1);
    Atomics.wait(a, A.SCRUBBING, held, 1); // woken when the scrubber gives its chunk back
  }
  if (mfn < 0) return -1;
  if (dirty) {
    scrub_one_page(hv, mfn);
    Atomics.add(a, A.SCRUBBED_ALLOC, 1);
  }
  hv.frames[mfn * F.WORDS + F.REF] = 0;
  hv.frames[mfn * F.WORDS + F.ORPHAN] = 0;
  hv.frames[mfn * F.WORDS + F.PIN] = 0;
  hv.frames[mfn * F.WORDS + F.GFN] = 0;
  hv.frames[mfn * F.WORDS + F.MAPS] = 0;
  Atomics.store(hv.frames, mfn * F.WORDS + F.OWNER, domid + 1);
  return mfn;
}

/**
 * Give a frame back, marked need-scrub (or zeroed now, in mode SCRUB_AT_FREE). The caller has made
 * sure nothing maps it. The first dirty frame wakes the idle scrubber if it sleeps.
 */
export function free_domheap_page(hv: HypervisorState, mfn: number): void {
  const a = hv.allocator;
  Atomics.store(hv.frames, mfn * F.WORDS + F.OWNER, 0);
  if (a[A.MODE] === SCRUB_AT_FREE) {
    scrub_one_page(hv, mfn);
    Atomics.add(a, A.SCRUBBED_FREE, 1);
    spin_lock(a, A.LOCK);
    a[cleanSlot(a[A.CLEAN])] = mfn;
    Atomics.add(a, A.CLEAN, 1);
    Atomics.add(a, A.FREE, 1);
    spin_unlock(a, A.LOCK);
    return;
  }
  spin_lock(a, A.LOCK);
  a[dirtySlot(hv, a[A.DIRTY])] = mfn;
  Atomics.add(a, A.DIRTY, 1);
  Atomics.add(a, A.FREE, 1);
  spin_unlock(a, A.LOCK);
  if (Atomics.load(a, A.SCRUBBER_IDLE) === 1 && Atomics.compareExchange(a, A.SCRUBBER_IDLE, 1, 0) === 1) {
    Atomics.notify(a, A.SCRUBBER_IDLE, 1);
  }
}

/** The domain that owns `mfn` (-1 if free). */
export function frameOwner(hv: HypervisorState, mfn: number): number {
  return Atomics.load(hv.frames, mfn * F.WORDS + F.OWNER) - 1;
}

/** A foreign mapping starts holding `mfn` (grant map). */
export function get_page(hv: HypervisorState, mfn: number): void {
  Atomics.add(hv.frames, mfn * F.WORDS + F.REF, 1);
}

/**
 * A foreign mapping lets go of `mfn`. If it was the last one and the owner has died meanwhile,
 * the frame is freed here. The compare-and-swap on ORPHAN decides, between this thread and the
 * one tearing the owner down, which of the two frees it: exactly one wins.
 */
export function put_page(hv: HypervisorState, mfn: number): void {
  const base = mfn * F.WORDS;
  if (Atomics.sub(hv.frames, base + F.REF, 1) === 1 && Atomics.compareExchange(hv.frames, base + F.ORPHAN, 1, 0) === 1) {
    free_domheap_page(hv, mfn);
  }
}

/**
 * The owner is being destroyed: free the frame now if nobody maps it, else leave it to the
 * last put_page. Returns true if it was freed here.
 */
export function release_page_of_dying(hv: HypervisorState, mfn: number): boolean {
  const base = mfn * F.WORDS;
  Atomics.store(hv.frames, base + F.ORPHAN, 1);
  if (Atomics.load(hv.frames, base + F.REF) === 0 && Atomics.compareExchange(hv.frames, base + F.ORPHAN, 1, 0) === 1) {
    free_domheap_page(hv, mfn);
    return true;
  }
  return false;
}
