/*
 * Content-based page sharing: identical frames of one or several domains become one read-only
 * frame, and a write to it gets the writer a private copy (copy-on-write).
 *
 * Xen: xen/arch/x86/mm/mem_sharing.c. A shared frame belongs to dom_cow (DOMID_COW) and every gfn
 * that uses it has p2m type p2m_ram_shared, which is read-only; nominate_page turns a domain's
 * page into a shareable one, share_pages points a second gfn at the first's frame and frees the
 * second frame, and a write faults into mem_sharing_unshare_page, which copies the frame for the
 * writer (or, if the writer holds the last reference, simply gives the frame back to it). The
 * counters are nr_shared_mfns (XENMEM_get_sharing_shared_pages) and nr_saved_mfns
 * (XENMEM_get_sharing_freed_pages); KSM calls them pages_shared and pages_sharing.
 *
 * The reference count of a shared frame is its page_info REF word (a shared frame is never
 * grant-mapped: p2m_pin_private unshares first). Who may change it, and how:
 *   - the scanner adds a mapping by a compare-and-swap from n ≥ 1 to n + 1, so it never revives
 *     a frame whose last holder has just taken it back;
 *   - the last holder takes the frame back as its own private page by a swap from 1 to 0;
 *   - any other holder that writes copies the frame, then drops its reference; whoever drops
 *     the count to 0 frees the frame.
 * Each P2M change is followed by p2m_take_back, so cached page views refill (guest-memory.ts).
 *
 * Finding what to share is the scanner's job (./share-scan.ts), on the control thread.
 */
import { PAGE_SIZE } from '../../shared/public/xen.ts';
import { p2m_take_back } from '../guest-memory.ts';
import { alloc_domheap_page, free_domheap_page } from '../page-alloc.ts';
import { D, F, MAX_GUEST_PAGES, P2M_MFN_MASK, P2M_PRESENT, P2M_READONLY, P2M_SHARED, type HypervisorState } from '../state.ts';
import { MD, MH, md } from './mm-state.ts';
import { POD_ENOMEM, POD_RETRY } from './pod.ts';

/** DOMID_COW (xen.h 0x7FF3), stored as owner + 1 in the frame table like every owner. */
export const COW_OWNER = 0x7ff3 + 1;

/** A shared entry for frame `mfn`. */
export function sharedEntry(mfn: number): number {
  return (mfn | P2M_PRESENT | P2M_READONLY | P2M_SHARED) >>> 0;
}

/**
 * The COW break: `d` wrote to `gfn`, whose entry `e` maps a shared frame. Returns the private
 * frame now mapped, POD_RETRY if the entry changed meanwhile, or POD_ENOMEM.
 */
export function mem_sharing_unshare_page(hv: HypervisorState, d: number, gfn: number, e: number): number {
  const smfn = e & P2M_MFN_MASK;
  const ref = smfn * F.WORDS + F.REF;
  const idx = d * MAX_GUEST_PAGES + gfn;
  let mfn: number;
  if (Atomics.compareExchange(hv.frames, ref, 1, 0) === 1) {
    // The last holder: the frame becomes this domain's own again, nothing to copy.
    Atomics.store(hv.frames, smfn * F.WORDS + F.OWNER, d + 1);
    if (Atomics.compareExchange(hv.p2m, idx, e, (smfn | P2M_PRESENT) >>> 0) !== e) {
      // Only a teardown of `d` changes its entries under it; leave the frame to the teardown.
      Atomics.store(hv.frames, smfn * F.WORDS + F.OWNER, COW_OWNER);
      Atomics.store(hv.frames, ref, 1);
      return POD_RETRY;
    }
    Atomics.sub(hv.mm, MH.SHARED_FRAMES, 1);
    mfn = smfn;
  } else {
    mfn = alloc_domheap_page(hv, d);
    if (mfn < 0) return POD_ENOMEM;
    hv.mem8.copyWithin(mfn * PAGE_SIZE, smfn * PAGE_SIZE, (smfn + 1) * PAGE_SIZE);
    if (Atomics.compareExchange(hv.p2m, idx, e, (mfn | P2M_PRESENT) >>> 0) !== e) {
      free_domheap_page(hv, mfn);
      return POD_RETRY;
    }
    put_shared(hv, smfn);
  }
  Atomics.sub(hv.mm, MH.SHARING_MAPPINGS, 1);
  Atomics.sub(hv.mm, md(d, MD.SHARED), 1);
  Atomics.add(hv.domains, d * D.WORDS + D.TOT_PAGES, 1);
  Atomics.add(hv.mm, MH.COW_BREAKS, 1);
  Atomics.add(hv.mm, md(d, MD.COW_BREAKS), 1);
  p2m_take_back(hv, d);
  return mfn;
}

/** One mapping of shared frame `smfn` is gone; the last one frees the frame. */
function put_shared(hv: HypervisorState, smfn: number): void {
  if (Atomics.sub(hv.frames, smfn * F.WORDS + F.REF, 1) === 1) {
    Atomics.sub(hv.mm, MH.SHARED_FRAMES, 1);
    free_domheap_page(hv, smfn);
  }
}

/**
 * nominate_page: `d`'s private frame behind entry `e` of `gfn` becomes a shared frame with one
 * mapping (its own). The caller has checked the frame is `d`'s, unpinned and unmapped, and has
 * `d` paused. Returns false if the entry changed meanwhile.
 */
export function mem_sharing_nominate_page(hv: HypervisorState, d: number, gfn: number, e: number): boolean {
  const mfn = e & P2M_MFN_MASK;
  if (Atomics.compareExchange(hv.p2m, d * MAX_GUEST_PAGES + gfn, e, sharedEntry(mfn)) !== e) return false;
  Atomics.store(hv.frames, mfn * F.WORDS + F.REF, 1);
  Atomics.store(hv.frames, mfn * F.WORDS + F.OWNER, COW_OWNER);
  Atomics.add(hv.mm, MH.SHARED_FRAMES, 1);
  Atomics.add(hv.mm, MH.SHARING_MAPPINGS, 1);
  Atomics.add(hv.mm, md(d, MD.SHARED), 1);
  Atomics.sub(hv.domains, d * D.WORDS + D.TOT_PAGES, 1);
  p2m_take_back(hv, d);
  return true;
}

/**
 * share_pages: `d`'s `gfn` (entry `e`, a private frame with the same bytes, checked by the caller
 * with `d` paused) now maps shared frame `smfn`, and its own frame is freed. Returns false if
 * the shared frame was taken back by its last holder, or the entry changed, meanwhile.
 */
export function mem_sharing_share_pages(hv: HypervisorState, smfn: number, d: number, gfn: number, e: number): boolean {
  const ref = smfn * F.WORDS + F.REF;
  for (;;) {
    const n = Atomics.load(hv.frames, ref);
    if (n < 1 || Atomics.load(hv.frames, smfn * F.WORDS + F.OWNER) !== COW_OWNER) return false;
    if (Atomics.compareExchange(hv.frames, ref, n, n + 1) === n) break;
  }
  if (Atomics.compareExchange(hv.p2m, d * MAX_GUEST_PAGES + gfn, e, sharedEntry(smfn)) !== e) {
    put_shared(hv, smfn);
    return false;
  }
  Atomics.add(hv.mm, MH.SHARING_MAPPINGS, 1);
  Atomics.add(hv.mm, md(d, MD.SHARED), 1);
  Atomics.sub(hv.domains, d * D.WORDS + D.TOT_PAGES, 1);
  p2m_take_back(hv, d);
  free_domheap_page(hv, e & P2M_MFN_MASK);
  return true;
}

/** A shared entry leaves `d`'s physmap (decrease_reservation, destroy): drop its reference. */
export function mem_sharing_drop(hv: HypervisorState, d: number, gfn: number, e: number): boolean {
  if (Atomics.compareExchange(hv.p2m, d * MAX_GUEST_PAGES + gfn, e, 0) !== e) return false;
  Atomics.sub(hv.mm, MH.SHARING_MAPPINGS, 1);
  Atomics.sub(hv.mm, md(d, MD.SHARED), 1);
  put_shared(hv, e & P2M_MFN_MASK);
  return true;
}
