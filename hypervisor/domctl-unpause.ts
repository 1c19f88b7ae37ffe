/*
 * XEN_DOMCTL_unpausedomain, answered in the caller's own thread.
 *
 * Xen: xen/common/domctl.c XEN_DOMCTL_unpausedomain → domain_unpause_by_systemcontroller
 * (xen/common/domain.c): drop the toolstack's pause reference and, when none is left, vcpu_wake
 * each vCPU. Like every domctl it runs on the CPU that made the hypercall, under the domctl lock;
 * nothing in it needs another CPU.
 *
 * Here a pause is a count in the domain's shared words (D.PAUSE_COUNT) that a paused vCPU thread
 * waits on at its preemption point (./schedule.ts), so the unpause is a decrement and a notify on
 * shared memory: it needs neither a thread made nor one ended, the only reasons a domctl travels to
 * the control thread (DESIGN.md section 2). It used to travel there anyway, and waited behind
 * whatever that thread was doing: it also runs every host's network card and the pieces of a
 * domain's destroy, which is what a migration's source host does at the very moment its target
 * unpauses the moved guest (0.2-18 ms of the go, measured in the migrate bench). The pause stays
 * on the control thread: it must also take a vCPU waiting for a slot off the runqueue.
 */
import { XEN_ESRCH } from '../shared/public/xen.ts';
import { D, type HypervisorState } from './state.ts';

/** Drop one pause reference (none held: nothing to drop) and wake the domain's paused vCPUs; -ESRCH for no such domain. */
export function unpausedomain(hv: HypervisorState, domid: number): number {
  if (!hv.isAlive(domid)) return -XEN_ESRCH;
  const w = hv.dom(domid, D.PAUSE_COUNT);
  // A compare-and-swap, not a load and a sub: the control thread's pause may run at the same time.
  for (let c = Atomics.load(hv.domains, w); c > 0;) {
    const was = Atomics.compareExchange(hv.domains, w, c, c - 1);
    if (was === c) break;
    c = was;
  }
  Atomics.notify(hv.domains, w);
  return 0;
}
