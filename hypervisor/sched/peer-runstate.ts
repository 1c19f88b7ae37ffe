/*
 * What a guest may ask of the scheduler about its device peers: does a vCPU hold a pCPU slot now,
 * and is the vCPU behind an event channel preempted. A spinner asks before it spins on.
 *
 * Xen/Linux: vcpu_is_preempted (the runstate area, VCPUOP_register_runstate_memory_area) and KVM's
 * adaptive halt-polling. Xen shows a guest only its own vCPUs' runstate; ringvisor's guests see
 * their device peers' (shared/wait.ts says why). The vCPU side that answers them is
 * ../schedule.ts (GuestSched.vcpu_is_running, evtchn_peer_preempted); the words read are the
 * slot tables (./tables.ts) and the runstate word of hypervisor/state.ts.
 */
import { evtchn_remote_runstate } from '../event-channel.ts';
import { MAX_DOMAINS, MAX_VCPUS, RUNSTATE_blocked, RUNSTATE_runnable, RUNSTATE_running, V, type HypervisorState } from '../state.ts';
import { P, U, unitOf, type SchedTables } from './tables.ts';

/** Does (domid, vcpu) run now? With slots, whether it holds one; without (`slots` false), its runstate says. */
export function vcpu_is_running(hv: HypervisorState, t: SchedTables, slots: boolean, domid: number, vcpu: number): boolean {
  if (!(domid >= 0 && domid < MAX_DOMAINS && vcpu >= 0 && vcpu < MAX_VCPUS)) return false;
  if (!slots) return Atomics.load(hv.vcpus, hv.vcpu(domid, vcpu, V.RUNSTATE)) === RUNSTATE_running
    && Atomics.load(hv.vcpus, hv.vcpu(domid, vcpu, V.ALIVE)) === 1;
  return Atomics.load(t.i32, t.u(unitOf(domid, vcpu), U.SLOT)) !== 0;
}

/**
 * The vCPU an event on `domid`'s `port` would wake cannot run until some vCPU gives up its pCPU
 * slot: it is runnable and waits for one (Linux's vcpu_is_preempted), or it sleeps while every
 * slot is taken, so the event that wakes it will leave it waiting too. A sleeping peer with a free
 * slot to wake onto is not preempted: it answers after one wake-up, which is what a spin budget is
 * for. Without slots the host OS decides and its preemption is invisible: the caller says never.
 */
export function evtchn_peer_preempted(hv: HypervisorState, t: SchedTables, domid: number, port: number): boolean {
  const idx = evtchn_remote_runstate(hv, domid, port);
  if (idx < 0) return false;
  const unit = (idx - V.RUNSTATE) / V.WORDS;
  if (Atomics.load(t.i32, t.u(unit, U.SLOT)) !== 0) return false;
  const rs = Atomics.load(hv.vcpus, idx);
  if (rs === RUNSTATE_runnable) return true;
  if (rs !== RUNSTATE_blocked) return false;
  for (let p = 0, n = t.nrPcpus; p < n; p++) if (Atomics.load(t.i32, t.p(p, P.CURR)) === 0) return false;
  return true;
}
