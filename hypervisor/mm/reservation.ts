/*
 * XENMEM_decrease_reservation and XENMEM_populate_physmap: a guest giving RAM back to the
 * hypervisor (its balloon inflating) and taking it again (deflating).
 *
 * Xen: xen/common/memory.c (decrease_reservation → guest_remove_page; populate_physmap), with
 * extent_order 0 (one page per extent, what Linux's balloon uses). Both return how many extents
 * they did; the guest retries the rest later. A page the guest gives back may be a plain frame
 * (freed: back on the host's free list marked need-scrub, ../page-alloc.ts), a PoD entry never touched (nothing to
 * free: the cheapest balloon there is, and what a guest booted with memory < maxmem gives back),
 * a shared entry (one reference dropped) or a paged-out one (forgotten). A page something else
 * still holds (a grant or foreign mapping, an unchecked view: P2M_PINNED) is refused, as Xen's
 * guest_remove_page refuses a page with extra references, and the count stops there.
 *
 * populate_physmap fills holes only, and only while the domain stays within d->max_pages, which
 * `xl mem-max` and `xl mem-set` set (domctl max_mem). The frame comes from the host's free list;
 * when there is none, the call stops short and the guest's balloon tries again later.
 */
import { p2m_take_back } from '../guest-memory.ts';
import { alloc_domheap_page, free_domheap_page, frameOwner } from '../page-alloc.ts';
import {
  D, F, MAX_GUEST_PAGES, P2M_FOREIGN, P2M_MFN_MASK, P2M_PINNED, P2M_PRESENT, P2M_RESERVED, type HypervisorState,
} from '../state.ts';
import { MD, md } from './mm-state.ts';
import { p2m_release_entry } from './release.ts';

/** Pages `d` has in its physmap as RAM, whatever backs them: Xen's tot_pages + PoD entries + shared + paged. */
export function domain_ram_pages(hv: HypervisorState, d: number): number {
  return Atomics.load(hv.domains, d * D.WORDS + D.TOT_PAGES) + Atomics.load(hv.mm, md(d, MD.POD_ENTRIES)) +
    Atomics.load(hv.mm, md(d, MD.SHARED)) + Atomics.load(hv.mm, md(d, MD.PAGED));
}

/** decrease_reservation for `d`: give back each gfn in `gfns[0..n)`. Returns how many were. */
export function decrease_reservation(hv: HypervisorState, d: number, gfns: ArrayLike<number>, n: number): number {
  let done = 0;
  for (; done < n; done++) {
    const gfn = gfns[done];
    if (!(Number.isInteger(gfn) && gfn >= 0 && gfn < MAX_GUEST_PAGES)) break;
    if (!guest_remove_page(hv, d, gfn)) break;
  }
  if (done > 0) p2m_take_back(hv, d);
  return done;
}

function guest_remove_page(hv: HypervisorState, d: number, gfn: number): boolean {
  const idx = d * MAX_GUEST_PAGES + gfn;
  for (;;) {
    const e = Atomics.load(hv.p2m, idx);
    if (e === 0 || (e & (P2M_FOREIGN | P2M_PINNED | P2M_RESERVED)) !== 0) return false;
    if (p2m_release_entry(hv, d, gfn, e)) {
      if (Atomics.load(hv.p2m, idx) === 0) return true;
      continue; // it changed type under us (paged in, populated): look again
    }
    if ((e & P2M_PRESENT) === 0) return false;
    const mfn = e & P2M_MFN_MASK;
    if (frameOwner(hv, mfn) !== d) return false; // not its own RAM (shared_info, a grant frame)
    if (Atomics.load(hv.frames, mfn * F.WORDS + F.REF) !== 0) return false; // mapped by another domain (a foreign mapping's pin may be off already)
    if (Atomics.compareExchange(hv.p2m, idx, e, 0) !== e) continue;
    p2m_take_back(hv, d); // before the frame can go to anyone else
    free_domheap_page(hv, mfn);
    Atomics.sub(hv.domains, d * D.WORDS + D.TOT_PAGES, 1);
    return true;
  }
}

/** populate_physmap for `d`: back each hole `gfns[0..n)` with a new frame. Returns how many were. */
export function populate_physmap(hv: HypervisorState, d: number, gfns: ArrayLike<number>, n: number): number {
  const max = Atomics.load(hv.domains, d * D.WORDS + D.MAX_PAGES);
  let done = 0;
  for (; done < n; done++) {
    const gfn = gfns[done];
    if (!(Number.isInteger(gfn) && gfn >= 0 && gfn < MAX_GUEST_PAGES)) break;
    if (domain_ram_pages(hv, d) >= max) break; // d->max_pages
    const mfn = alloc_domheap_page(hv, d);
    if (mfn < 0) break; // the host has none: the balloon retries later
    if (Atomics.compareExchange(hv.p2m, d * MAX_GUEST_PAGES + gfn, 0, (mfn | P2M_PRESENT) >>> 0) !== 0) {
      free_domheap_page(hv, mfn); // not a hole
      break;
    }
    Atomics.add(hv.domains, d * D.WORDS + D.TOT_PAGES, 1);
  }
  return done;
}
