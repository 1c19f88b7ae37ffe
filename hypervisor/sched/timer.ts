/*
 * Guest time and the singleshot timer: the clock a guest reads and the VIRQ_TIMER it sleeps on.
 *
 * Xen: do_set_timer_op / VCPUOP_set_singleshot_timer and the vCPU's singleshot_timer
 * (xen/common/sched/core.c: vcpu_singleshot_timer_fn sends VIRQ_TIMER), update_vcpu_system_time
 * (xen/arch/x86/time.c: vcpu_time_info) and update_domain_wallclock_time (shared_info wc_*).
 *
 * Time here: Xen's system time is nanoseconds since the host booted (GF.BOOT on the shared clock).
 * A timer is one deadline per vCPU (UFL.TIMER, ms on the shared clock; 0 = none). It expires in
 * one of two places, whichever comes first, never before the deadline: a vCPU blocked in
 * SCHEDOP_block sleeps with the deadline as its timeout and raises the virq itself when it wakes
 * (precise to the host's futex timeout); a vCPU that is running or waiting for a slot gets it from
 * the control thread's tick (precise to the tick, 10 ms). Taking the deadline under the scheduler's
 * lock makes sure only one of them raises it.
 */
import { VIRQ_TIMER } from '../../shared/public/event_channel.ts';
import { shared_info, vcpu_info, vcpu_time_info } from '../../shared/public/xen.ts';
import { spin_lock, spin_unlock } from '../spinlock.ts';
import { send_guest_vcpu_virq } from '../event-channel.ts';
import type { HypervisorState } from '../state.ts';
import { MAX_VCPUS } from '../state.ts';
import { G, GF, U, UFL, type SchedTables } from './tables.ts';
import { viewAs } from '../../shared/view.ts';

/** The singleshot deadline of `unit` (ms on the shared clock), or 0. */
export function timerDeadline(t: SchedTables, unit: number): number {
  return t.f64[t.uf(unit, UFL.TIMER)];
}

/**
 * do_set_timer_op: `timeoutNs` is absolute system time (ns since boot); 0 cancels. A deadline
 * already past fires at the next chance (the caller's block returns at once, or the next tick).
 */
export function setTimer(t: SchedTables, unit: number, timeoutNs: number): void {
  spin_lock(t.i32, G.LOCK);
  t.f64[t.uf(unit, UFL.TIMER)] = timeoutNs === 0 ? 0 : t.f64[GF.BOOT] + timeoutNs / 1e6;
  spin_unlock(t.i32, G.LOCK);
}

/** If `unit`'s timer has expired, disarm it and say so (exactly one caller gets true). */
export function takeExpiredTimer(t: SchedTables, unit: number, now: number): boolean {
  spin_lock(t.i32, G.LOCK);
  const i = t.uf(unit, UFL.TIMER);
  const due = t.f64[i] !== 0 && t.f64[i] <= now;
  if (due) t.f64[i] = 0;
  spin_unlock(t.i32, G.LOCK);
  return due;
}

export function sendTimerVirq(hv: HypervisorState, domid: number, vcpu: number): void {
  send_guest_vcpu_virq(hv, domid, vcpu, VIRQ_TIMER);
}

/** The tick's share of timers: every registered vCPU whose deadline passed gets its VIRQ_TIMER. */
export function fireDueTimers(hv: HypervisorState, t: SchedTables, now: number): void {
  const high = t.i32[G.HIGH];
  for (let u = 0; u < high; u++) {
    if (t.i32[t.u(u, U.EXISTS)] !== 1) continue;
    const d = t.f64[t.uf(u, UFL.TIMER)];
    if (d === 0 || d > now) continue;
    if (takeExpiredTimer(t, u, now)) sendTimerVirq(hv, Math.floor(u / MAX_VCPUS), u % MAX_VCPUS);
  }
}

/** System time now, in ns (the hypervisor's NOW()). */
export function systemTimeNs(t: SchedTables, now: number): number {
  return (now - t.f64[GF.BOOT]) * 1e6;
}

/**
 * update_vcpu_system_time and the wall clock, written once when the domain is built: with an
 * identity scale, system_time 0 at tsc_timestamp = the boot's TSC stays right forever (Xen rewrites
 * them as the TSC drifts; ringvisor's TSC is the host clock, which does not).
 */
export function publishGuestTime(hv: HypervisorState, t: SchedTables, domid: number, nrVcpus: number): void {
  const si = hv.sharedInfo[domid];
  const f64 = viewAs(si, Float64Array);
  const boot = t.f64[GF.BOOT];
  for (let v = 0; v < nrVcpus; v++) {
    const base = v * vcpu_info.SIZE + vcpu_info.time;
    const ver = (base + vcpu_time_info.version) >> 2;
    Atomics.add(si, ver, 1); // odd: being rewritten
    f64[(base + vcpu_time_info.tsc_timestamp) >> 3] = boot * 1e6;
    f64[(base + vcpu_time_info.system_time) >> 3] = 0;
    si[(base + vcpu_time_info.tsc_to_system_mul) >> 2] = 0x8000_0000 | 0;
    si[(base + vcpu_time_info.tsc_shift) >> 2] = 1;
    Atomics.add(si, ver, 1); // even again
  }
  const wc = Date.now() - (performance.timeOrigin + performance.now() - boot); // Unix ms at system time 0
  Atomics.add(si, shared_info.wc_version >> 2, 1);
  si[shared_info.wc_sec >> 2] = Math.floor(wc / 1000);
  si[shared_info.wc_nsec >> 2] = Math.round((wc % 1000) * 1e6);
  Atomics.add(si, shared_info.wc_version >> 2, 1);
}
