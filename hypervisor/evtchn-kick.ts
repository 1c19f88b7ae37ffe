/*
 * Waking the vCPU an event is for: vcpu_kick, and vcpu_wake on the sender's side.
 *
 * Xen: xen/common/event_channel.c's delivery ends in vcpu_kick (evtchn_2l_set_pending ->
 * vcpu_mark_events_pending -> vcpu_kick), and an event for a blocked vCPU wakes it through
 * vcpu_unblock -> vcpu_wake -> the scheduler's wake hook, all run by the sending pCPU
 * (xen/common/sched/core.c). Here a blocked vCPU is a host thread asleep on its
 * evtchn_upcall_pending word; the delivery steps are ./event-channel.ts's, the scheduler's side
 * ./sched/credit.ts wakeBlocked.
 */
import { vcpu_info } from '../shared/public/xen.ts';
import { MAX_VCPUS, type HypervisorState } from './state.ts';
import { schedulerOf } from './sched/credit.ts';
import { G, U, UFL, schedTables } from './sched/tables.ts';

const VCPU_WORDS = vcpu_info.SIZE >> 2;
const UPCALL_PENDING = vcpu_info.evtchn_upcall_pending >> 2;

/**
 * Wake vCPU `v` of domain `d` if it sleeps in SCHEDOP_block. Only a vCPU that said it waits
 * (sched/tables.ts U.ASLEEP) is notified: V8 serializes every Atomics.notify, Atomics.wait and
 * waitAsync resolution of the process on one mutex, which 17 threads contend (scenarios/bench/scale.ts).
 */
export function evtchn_kick(hv: HypervisorState, d: number, v: number, sender = -1): void {
  const t = schedTables(hv.buffers.sched);
  if (Atomics.load(t.i32, t.u(d * MAX_VCPUS + v, U.ASLEEP)) === 0) return;
  // vcpu_wake on the sender's side: one that gave its slot up to sleep may just be queued for a
  // slot, its thread woken only once it has one (sched/credit.ts wakeBlocked).
  // `sender`: the sending vCPU (d * MAX_VCPUS + v; -1: the control thread), whose slot the wake does not tickle.
  if (schedulerOf(hv)?.wakeBlocked(d * MAX_VCPUS + v, performance.timeOrigin + performance.now(), sender)) return;
  vcpu_notify(hv, d, v);
}

/** Wake vCPU `v`'s thread if it sleeps in SCHEDOP_block (the caller saw U.ASLEEP), counted. */
function vcpu_notify(hv: HypervisorState, d: number, v: number): void {
  const t = schedTables(hv.buffers.sched);
  // Counted when it found the vCPU's thread asleep (a host thread wake-up): sched/tables.ts G.EVT_WAKES.
  if (Atomics.notify(hv.sharedInfo[d], v * VCPU_WORDS + UPCALL_PENDING, 1) > 0) {
    Atomics.add(t.i32, G.EVT_WAKES, 1);
    t.f64[t.uf(d * MAX_VCPUS + v, UFL.KICKED)] = performance.timeOrigin + performance.now();
  }
}

/**
 * Raise vCPU `v`'s upcall flag and wake it, with no port: the control thread's "IPI" (stop,
 * pause, VCPUOP_down). Its thread must run to see why, so it is woken even without a slot.
 */
export function vcpu_kick(hv: HypervisorState, d: number, v: number): void {
  Atomics.store(hv.sharedInfo[d], v * VCPU_WORDS + UPCALL_PENDING, 1);
  const t = schedTables(hv.buffers.sched);
  if (Atomics.load(t.i32, t.u(d * MAX_VCPUS + v, U.ASLEEP)) !== 0) vcpu_notify(hv, d, v);
}
