/*
 * The domctls a saver and a restorer call in a loop, answered in the caller's own thread: they
 * read or write shared state only, so they need not wait for the control thread.
 *
 * Xen: xen/common/domctl.c XEN_DOMCTL_getvcpucontext / XEN_DOMCTL_setvcpucontext (the vCPU's
 * saved context; here the gfn of the record the guest wrote at its suspend, hypervisor/vcpu.ts),
 * and xen/arch/x86/domctl.c XEN_DOMCTL_getpageframeinfo3 (./mm/pfinfo.ts). The privilege check,
 * Xen's XSM hook before the switch, is the hypercall table's (./hypercall.ts).
 *
 * Apart from hypercall.ts so the table stays a list of entries, each one line of dispatch.
 */
import { XEN_EBUSY, XEN_EINVAL, XEN_ENOENT, XEN_ESRCH } from '../shared/public/xen.ts';
import { getpageframeinfo3 } from './mm/pfinfo.ts';
import { D, MAX_GUEST_PAGES, type HypervisorState } from './state.ts';

/* The saved context's gfn, or ENOENT if the domain has none. */
export function getvcpucontext(hv: HypervisorState, domid: number): number {
  if (!hv.isAlive(domid)) return -XEN_ESRCH;
  const g = Atomics.load(hv.domains, hv.dom(domid, D.RESUME_GFN));
  return g === 0 ? -XEN_ENOENT : g - 1;
}

/* Set the context a paused domain's vCPU reads when it first runs. */
export function setvcpucontext(hv: HypervisorState, domid: number, resume_gfn: number): number {
  if (!hv.isAlive(domid)) return -XEN_ESRCH;
  // The vCPU reads its context when it first passes the pause (vcpu.ts): a running one has read it.
  if (Atomics.load(hv.domains, hv.dom(domid, D.PAUSE_COUNT)) === 0) return -XEN_EBUSY;
  if (!Number.isInteger(resume_gfn) || resume_gfn < 0 || resume_gfn >= MAX_GUEST_PAGES) return -XEN_EINVAL;
  Atomics.store(hv.domains, hv.dom(domid, D.RESUME_GFN), resume_gfn + 1);
  return 0;
}

/* Each of `n` gfns' type, for the saver (./mm/pfinfo.ts). */
export function getpageframeinfo3_op(hv: HypervisorState, domid: number, gfns: ArrayLike<number>, types: Int32Array, n: number): number {
  if (!hv.isAlive(domid)) return -XEN_ESRCH;
  if (!(Number.isInteger(n) && n >= 0 && n <= gfns.length && n <= types.length)) return -XEN_EINVAL;
  return getpageframeinfo3(hv, domid, gfns, types, n);
}
