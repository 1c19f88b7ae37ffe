/*
 * Resuming a suspended domain where it is, after a save or a migration that failed.
 *
 * Xen: XEN_DOMCTL_resumedomain (domain_resume in xen/common/domain.c: clear the shutdown state,
 * let the vCPUs run again) as libxc's xc_domain_resume uses it (tools/libs/guest/xg_resume.c).
 * Xen has two ways. The cooperative one ("fast", what xl's migrate uses when the sender must take
 * its guest back) makes the guest's SCHEDOP_shutdown(SHUTDOWN_suspend) return 1, "cancelled",
 * and the guest carries on with its devices as they were. The other (xc_domain_resume_any) makes
 * the guest believe it was restored: it goes through its whole resume path and reconnects.
 *
 * ringvisor can only take the second way: a vCPU thread that made SCHEDOP_shutdown(suspend) has
 * ended (hypervisor/vcpu.ts), and the frontends' ring state was on its heap, so there is nothing to
 * return into. The kernel does not close its frontends at suspend (domu/kernel.ts suspend()), so
 * the backends are still Connected to the old rings: the toolstack makes them let go before it
 * asks for this (dom0/toolstack/resume-reset.ts). The domain keeps its id, its memory, its
 * start_info, its xenstore and console rings and their two ports (the builder's, still bound to
 * xenstored and xenconsoled); every other port the old kernel bound is closed, as on a restored
 * domain, where the kernel binds its timers and its frontends' channels anew. Then fresh vCPU
 * threads boot the kernel in resume mode with the saved context, exactly as on the target of a
 * migration (domu/resume.ts), and it reconnects to the same backends through xenbus.
 */
import type { CreatedDomain } from '../shared/public/hypercall.ts';
import { evtchn_close_port } from './event-channel.ts';
import { D, DOMSTATE_RUNNING, DOMSTATE_SHUTDOWN, MAX_VCPUS, V, type HypervisorState } from './state.ts';
import { SHUTDOWN_NAMES } from '../shared/public/xen.ts';
import { NR_EVTCHN_PORTS } from '../shared/public/event_channel.ts';

/**
 * The hypervisor's half of domain_resume, for a domain whose vCPU threads have all ended: -1 if it
 * is not shut down with reason suspend (then nothing is changed), else the saved context's gfn.
 */
export function domain_resume_prepare(hv: HypervisorState, built: CreatedDomain, online: number): number {
  const d = built.domid;
  const base = d * D.WORDS;
  if (Atomics.load(hv.domains, base + D.STATE) !== DOMSTATE_SHUTDOWN) return -1;
  if (hv.domains[base + D.SHUTDOWN_REASON] !== SHUTDOWN_NAMES.indexOf('suspend')) return -1;
  const saved = Atomics.load(hv.domains, base + D.RESUME_GFN) - 1;
  if (saved < 0) return -1;
  // A closed port answers EINVAL and stays closed; a bound one is closed (its peer's end unbound).
  for (let p = 1; p < NR_EVTCHN_PORTS; p++) {
    if (p !== built.store_evtchn && p !== built.console_evtchn) evtchn_close_port(hv, d, p);
  }
  // The vCPUs as the builder leaves them: no requests pending, the first `online` up.
  const nr = hv.domains[base + D.NR_VCPUS];
  hv.vcpus.fill(0, hv.vcpu(d, 0, 0), hv.vcpu(d, MAX_VCPUS, 0));
  for (let v = online; v < nr; v++) hv.vcpus[hv.vcpu(d, v, V.DOWN)] = 1;
  hv.domains[base + D.ONLINE_VCPUS] = Math.min(online, nr);
  hv.domains[base + D.PAUSE_COUNT] = 0;
  hv.domains[base + D.SHUTDOWN_REASON] = -1;
  Atomics.store(hv.domains, base + D.STATE, DOMSTATE_RUNNING);
  return saved;
}
