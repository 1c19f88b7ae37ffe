/*
 * The two memory_op calls whose checks the hypercall table made inline: XENMEM_add_to_physmap for
 * the hypervisor's own pages, and XENMEM_decrease_reservation aimed at another domain.
 *
 * Xen: xen/common/memory.c (do_memory_op: XENMEM_add_to_physmap → xenmem_add_to_physmap_one in
 * xen/arch/x86/mm.c for XENMAPSPACE_shared_info and XENMAPSPACE_grant_table;
 * XENMEM_decrease_reservation's domain lookup, rcu_lock_domain_by_any_id plus the XSM check).
 * The work itself is elsewhere: the frames in ./state.ts, the balloon's in ./mm/reservation.ts.
 *
 * Apart from hypercall.ts so the table stays a list of entries, each one line of dispatch, and
 * the argument checks read next to what they protect.
 */
import { XENMAPSPACE_grant_table, XENMAPSPACE_shared_info } from '../shared/public/hypercall.ts';
import { DOMID_SELF, XEN_EEXIST, XEN_EINVAL, XEN_EPERM, XEN_ESRCH } from '../shared/public/xen.ts';
import type { Caller } from './caller.ts';
import { decrease_reservation } from './mm/reservation.ts';
import { GRANT_FRAMES, MAX_DOMAINS, MAX_GUEST_PAGES, P2M_PRESENT, grantFrameMfn, sharedInfoMfn } from './state.ts';

/* XENMAPSPACE_shared_info (idx 0) or one grant-table frame, mapped at `gfn`. */
export function add_to_physmap(c: Caller, space: number, idx: number, gfn: number): number {
  let mfn: number;
  if (space === XENMAPSPACE_shared_info && idx === 0) mfn = sharedInfoMfn(c.domid);
  else if (space === XENMAPSPACE_grant_table && Number.isInteger(idx) && idx >= 0 && idx < GRANT_FRAMES) mfn = grantFrameMfn(c.domid, idx);
  else return -XEN_EINVAL;
  if (!Number.isInteger(gfn) || gfn < 0 || gfn >= MAX_GUEST_PAGES) return -XEN_EINVAL;
  const index = c.domid * MAX_GUEST_PAGES + gfn;
  // Only into a hole: ringvisor does not free RAM behind the guest's back to make room.
  if (Atomics.compareExchange(c.hv.p2m, index, 0, (mfn | P2M_PRESENT) >>> 0) !== 0) return -XEN_EEXIST;
  return 0;
}

/* decrease_reservation on the caller's own RAM, or, for the control domain, on a DomU's. */
export function decrease_reservation_op(c: Caller, gfns: ArrayLike<number>, nr: number, domid: number): number {
  if (!(Number.isInteger(nr) && nr >= 0 && nr <= gfns.length)) return -XEN_EINVAL;
  let d = c.domid;
  if (domid !== DOMID_SELF && domid !== d) {
    // Another domain's: the control domain only, and a DomU that exists (Xen's rcu_lock_domain_by_any_id + XSM check).
    if (!c.privileged) return -XEN_EPERM;
    if (!(Number.isInteger(domid) && domid > 0 && domid < MAX_DOMAINS) || !c.hv.isAlive(domid)) return -XEN_ESRCH;
    d = domid;
  }
  return decrease_reservation(c.hv, d, gfns, nr);
}
