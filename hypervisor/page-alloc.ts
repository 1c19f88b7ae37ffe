/*
 * The machine frame allocator and frame ownership.
 *
 * Xen: xen/common/page_alloc.c (alloc_domheap_pages, free_domheap_pages, scrubbing) and the
 * owner / reference fields of struct page_info. Xen uses a buddy allocator because it needs
 * contiguous runs for superpages and DMA; ringvisor never needs contiguity (a multi-page ring is
 * a list of frames), so a stack of free frames under one lock is enough, and O(1).
 *
 * Freed frames are scrubbed before they can be handed out again, as Xen scrubs them, so one
 * domain never reads another's old data. A frame that another domain still has mapped through
 * a grant is not freed when its owner dies: it is marked orphaned and the last unmap frees it
 * (Xen keeps it alive by its page reference count the same way).
 */
import { spin_lock, spin_unlock } from './spinlock.ts';
import { PAGE_SIZE } from '../shared/public/xen.ts';
import { F, XENHEAP_FRAMES, type HypervisorState } from './state.ts';

const LOCK = 0;
const TOP = 1;
const STACK = 4;

/** Called once by the control thread: every frame after the Xen heap starts free. */
export function initAllocator(hv: HypervisorState): void {
  let top = 0;
  for (let mfn = hv.nrFrames - 1; mfn >= XENHEAP_FRAMES; mfn--) hv.allocator[STACK + top++] = mfn;
  hv.allocator[TOP] = top;
}

/** Frames currently free. */
export function freeFrames(hv: HypervisorState): number {
  return Atomics.load(hv.allocator, TOP);
}

/** Frames in use as guest RAM (or orphaned grant targets). */
export function usedFrames(hv: HypervisorState): number {
  return hv.nrFrames - XENHEAP_FRAMES - freeFrames(hv);
}

/** Take one frame for `domid`, or -1 if the host is out of memory. */
export function alloc_domheap_page(hv: HypervisorState, domid: number): number {
  spin_lock(hv.allocator, LOCK);
  const top = hv.allocator[TOP];
  const mfn = top === 0 ? -1 : hv.allocator[STACK + top - 1];
  if (mfn >= 0) hv.allocator[TOP] = top - 1;
  spin_unlock(hv.allocator, LOCK);
  if (mfn >= 0) {
    hv.frames[mfn * F.WORDS + F.REF] = 0;
    hv.frames[mfn * F.WORDS + F.ORPHAN] = 0;
    hv.frames[mfn * F.WORDS + F.PIN] = 0;
    hv.frames[mfn * F.WORDS + F.GFN] = 0;
    hv.frames[mfn * F.WORDS + F.MAPS] = 0;
    Atomics.store(hv.frames, mfn * F.WORDS + F.OWNER, domid + 1);
  }
  return mfn;
}

/** Scrub a frame and give it back. The caller has made sure nothing maps it. */
export function free_domheap_page(hv: HypervisorState, mfn: number): void {
  hv.mem8.fill(0, mfn * PAGE_SIZE, (mfn + 1) * PAGE_SIZE);
  Atomics.store(hv.frames, mfn * F.WORDS + F.OWNER, 0);
  spin_lock(hv.allocator, LOCK);
  hv.allocator[STACK + hv.allocator[TOP]++] = mfn;
  spin_unlock(hv.allocator, LOCK);
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
