/*
 * Populate on demand: a guest's RAM costs the host a frame only when the guest first touches it.
 *
 * Xen: xen/arch/x86/mm/p2m-pod.c. The builder marks a guest's RAM p2m_populate_on_demand instead
 * of allocating it (XENMEMF_populate_on_demand), and the first access to such an entry faults into
 * p2m_pod_demand_populate, which backs it with a zeroed frame. Xen takes that frame from a
 * per-domain PoD cache sized to the balloon target; ringvisor takes it straight from the host's free
 * frames, so the guest's `memory` may exceed what the host has free (the overcommit the lecture
 * describes), and what limits a domain is d->max_pages. A guest always sees its configured size.
 *
 * When a PoD entry is touched and the host has no frame left, Xen has nothing to give and crashes
 * the domain ("PoD: out of memory" in p2m_pod_demand_populate → domain_crash). So does ringvisor:
 * the gate's fault path (./fault.ts) reports it, and the faulting vCPU crashes its own domain with
 * that reason; nobody else is touched.
 *
 * The frame comes from alloc_domheap_page, which hands out only clean frames (a frame freed
 * need-scrub is zeroed by the idle scrubber or by the allocation that takes it), so a populated
 * page reads as zeros, as Xen's PoD pages do.
 */
import { alloc_domheap_page, free_domheap_page } from '../page-alloc.ts';
import { D, DOMSTATE_DYING, MAX_GUEST_PAGES, P2M_POD, P2M_PRESENT, type HypervisorState } from '../state.ts';
import { MH, MD, md } from './mm-state.ts';

/** p2m_pod_demand_populate's results besides a frame number. */
export const POD_RETRY = -1;   // the entry changed under us: look again
export const POD_ENOMEM = -2;  // the host has no free frame: the domain must crash
export const POD_DYING = -3;   // the domain is being torn down: no frame for it (Xen: d->is_dying)

/**
 * Back the PoD entry `e` of `d`'s `gfn` with a zeroed frame. Two vCPUs may fault on one entry at
 * once: the compare-and-swap decides who populates it, and the loser gives its frame back.
 */
export function p2m_pod_demand_populate(hv: HypervisorState, d: number, gfn: number, e: number): number {
  const state = d * D.WORDS + D.STATE;
  if (Atomics.load(hv.domains, state) === DOMSTATE_DYING) return POD_DYING;
  const mfn = alloc_domheap_page(hv, d);
  if (mfn < 0) return POD_ENOMEM;
  const idx = d * MAX_GUEST_PAGES + gfn;
  const filled = (mfn | P2M_PRESENT) >>> 0;
  if (Atomics.compareExchange(hv.p2m, idx, e, filled) !== e) {
    free_domheap_page(hv, mfn);
    return POD_RETRY;
  }
  Atomics.sub(hv.mm, md(d, MD.POD_ENTRIES), 1);
  // domain_kill sets DYING before it scans the P2M. If it is set now, the scan may already have
  // passed this gfn: take the frame back out (unless the scan got it first) so nothing leaks.
  if (Atomics.load(hv.domains, state) === DOMSTATE_DYING) {
    if (Atomics.compareExchange(hv.p2m, idx, filled, 0) === filled) free_domheap_page(hv, mfn);
    return POD_DYING;
  }
  Atomics.add(hv.domains, d * D.WORDS + D.TOT_PAGES, 1);
  Atomics.add(hv.mm, md(d, MD.POD_FILLS), 1);
  Atomics.add(hv.mm, MH.POD_FILLS, 1);
  return mfn;
}

/** The builder's part: `count` gfns from `first` become PoD entries (no frame yet). */
export function p2m_pod_mark(hv: HypervisorState, d: number, first: number, count: number): void {
  hv.p2m.fill(P2M_POD >>> 0, d * MAX_GUEST_PAGES + first, d * MAX_GUEST_PAGES + first + count);
  Atomics.add(hv.mm, md(d, MD.POD_ENTRIES), count);
}

/** A PoD entry `e` leaves the physmap (decrease_reservation, destroy): no frame to free, one entry fewer. */
export function p2m_pod_drop(hv: HypervisorState, d: number, gfn: number, e: number): boolean {
  if (Atomics.compareExchange(hv.p2m, d * MAX_GUEST_PAGES + gfn, e, 0) !== e) return false;
  Atomics.sub(hv.mm, md(d, MD.POD_ENTRIES), 1);
  return true;
}
