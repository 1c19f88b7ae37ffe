/*
 * One P2M entry of RAM leaves a domain's physmap, whatever its type: the common step of
 * XENMEM_decrease_reservation (guest_remove_page in xen/common/memory.c) and of a domain's
 * teardown (relinquish_memory), for the types the mm features add.
 *
 * A PoD entry has no frame to free; a shared one drops its reference to dom_cow's frame (the
 * last reference frees it); a paged one has its contents in the paging file only, which goes
 * with the domain. Ordinary frames stay with their callers, which know about grants and orphans.
 */
import { P2M_PAGED, P2M_POD, P2M_SHARED, type HypervisorState } from '../state.ts';
import { p2m_mem_paging_drop } from './paging.ts';
import { p2m_pod_drop } from './pod.ts';
import { mem_sharing_drop } from './sharing.ts';

/**
 * If entry `e` of `d`'s `gfn` is PoD, shared or paged, remove it and return true (also when it
 * changed meanwhile and someone else's step removed it; the caller looks again if it cares).
 */
export function p2m_release_entry(hv: HypervisorState, d: number, gfn: number, e: number): boolean {
  if ((e & P2M_POD) !== 0) return p2m_pod_drop(hv, d, gfn, e) || true;
  if ((e & P2M_SHARED) !== 0) return mem_sharing_drop(hv, d, gfn, e) || true;
  if ((e & P2M_PAGED) !== 0) return p2m_mem_paging_drop(hv, d, gfn, e) || true;
  return false;
}
