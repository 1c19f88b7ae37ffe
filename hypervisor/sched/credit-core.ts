/*
 * The credit scheduler's working parts: its lock, how a vCPU is charged, put on a runqueue,
 * given a slot, and asked to give one back.
 *
 * Xen: xen/common/sched/credit.c's helpers: burn_credits (charge the time run), __runq_insert
 * (queue behind everyone of one's priority), the context switch's bookkeeping (a pCPU's curr,
 * v->processor) and cpu_raise_softirq(SCHEDULE_SOFTIRQ) (ask a pCPU to reschedule). The decisions
 * that use them are in ./credit.ts (schedule, release), ./credit-wake.ts (csched_unit_wake),
 * ./credit-tick.ts (csched_tick) and ./credit-runq.ts (which queued vCPU runs next); the tables
 * they work on are ./tables.ts. All of them run with the one lock word G.LOCK held.
 */
import { spin_lock, spin_unlock } from '../spinlock.ts';
import { MAX_VCPUS, V, VREQ_RESCHED, type HypervisorState } from '../state.ts';
import { BLK_QUEUED, BLK_RUNNING, CSCHED_CREDITS_PER_MSEC, G, MAX_PCPUS, P, PF, U, UF_ACTIVE, UFL, allSlots, type SchedTables } from './tables.ts';
import { vcpu_info } from '../../shared/public/xen.ts';
import type { TraceWriter } from '../trace.ts';
import { TRC_CSCHED_TICKLE, TRC_SCHED, TRC_SCHED_SWITCH } from '../../shared/public/trace.ts';

const VCPU_WORDS = vcpu_info.SIZE >> 2;
const UPCALL_PENDING = vcpu_info.evtchn_upcall_pending >> 2;

/** What the scheduler needs of a trace buffer (NO_TRACE: none, for the simulator and the bench). */
export type SchedTrace = Pick<TraceWriter, 'on' | 'write'>;
const NO_TRACE: SchedTrace = { on: () => false, write: () => {} };

/**
 * The state and helpers every decision shares. Its members are the scheduler's internals, used by
 * the files of this directory only; the rest of the hypervisor uses ./credit.ts's CreditScheduler.
 */
export class CreditCore {
  /**
   * `trace`: the deciding thread's trace buffer, for TRC_SCHED_SWITCH (Xen's schedule() records every
   * switch on the pCPU that makes it) and the credit scheduler's own records (TRC_CSCHED_*). A
   * vCPU thread passes its own; the control thread passes the control slot's (./host-sched.ts),
   * so what its timer interrupt decides (ticks, accounting, slots given, tickles) is on its track.
   */
  constructor(readonly hv: HypervisorState, readonly t: SchedTables, readonly trace: SchedTrace = NO_TRACE) {}

  /**
   * Threads to wake once the lock is dropped: the vCPUs another thread gave a slot while it was
   * held. A wake-up is a futex system call of several microseconds; made
   * under the lock, every other thread that reaches a scheduling decision meanwhile spins or
   * sleeps on the lock (Xen raises the schedule softirq under its runqueue lock, but an IPI is not
   * a system call). The slot word is stored under the lock, so a vCPU that looks finds its slot;
   * one already asleep on the word is woken just after. A unit stored as ~unit (negative) sleeps
   * in SCHEDOP_block, queued by an event's sender (U.BLOCKED BLK_QUEUED): it is woken on its
   * evtchn_upcall_pending word instead.
   */
  private readonly toWake = new Int32Array(MAX_PCPUS + 1);
  private nrToWake = 0;

  lock(): void {
    spin_lock(this.t.i32, G.LOCK);
  }
  unlock(): void {
    const n = this.nrToWake;
    this.nrToWake = 0;
    spin_unlock(this.t.i32, G.LOCK);
    for (let k = 0; k < n; k++) this.wakeThread(this.toWake[k]);
  }

  /** Wake the thread of a unit given a slot (see toWake); counted if it slept. */
  private wakeThread(w: number): void {
    const woke = w >= 0 ? Atomics.notify(this.t.i32, this.t.u(w, U.SLOT))
      : Atomics.notify(this.hv.sharedInfo[Math.floor(~w / MAX_VCPUS)], (~w % MAX_VCPUS) * VCPU_WORDS + UPCALL_PENDING, 1);
    if (woke > 0) Atomics.add(this.t.i32, G.SLOT_WAKES, 1);
  }

  get enabled(): boolean {
    return this.t.nrPcpus > 0;
  }

  /* ---- small accessors ---- */
  i(unit: number, w: number): number {
    return this.t.i32[this.t.u(unit, w)];
  }
  set(unit: number, w: number, v: number): void {
    this.t.i32[this.t.u(unit, w)] = v;
  }
  pri(unit: number): number {
    return this.t.i32[this.t.u(unit, U.PRI)];
  }
  /** Hard affinity within this host's slots; none of them (cpus= naming absent pCPUs) means all, as libxl falls back. */
  hard(unit: number): number {
    const all = allSlots(this.t.nrPcpus);
    return (this.t.i32[this.t.u(unit, U.HARD)] & all) || all;
  }
  curr(slot: number): number {
    return this.t.i32[this.t.p(slot, P.CURR)] - 1;
  }
  get tsliceMs(): number {
    return this.t.i32[G.TSLICE_US] / 1000;
  }
  get ratelimitMs(): number {
    return this.t.i32[G.RATELIMIT_US] / 1000;
  }

  /** burn_credits: charge `unit` for the time since it was last charged, and mark it active. */
  burn(unit: number, now: number): void {
    const f = this.t.f64;
    const last = this.t.uf(unit, UFL.LAST_BURN);
    f[this.t.uf(unit, UFL.CREDIT)] -= Math.max(0, now - f[last]) * CSCHED_CREDITS_PER_MSEC;
    f[last] = now;
    this.t.i32[this.t.u(unit, U.FLAGS)] |= UF_ACTIVE;
  }

  /** Put `unit` on `slot`'s runqueue, behind everyone of its priority (its ticket, U.SEQ). */
  enqueue(unit: number, slot: number): void {
    this.set(unit, U.RUNQ, slot + 1);
    this.set(unit, U.SEQ, ++this.t.i32[G.SEQ]);
  }

  /**
   * The slot changes hands: to `unit`, or to nobody (-1). `handover`: another thread gives it
   * (counted in G.HANDOVERS), and wakes its thread once the lock is dropped (G.SLOT_WAKES if it slept).
   */
  setCurr(slot: number, unit: number, now: number, handover = false): void {
    const t = this.t;
    const prev = this.curr(slot);
    if (prev >= 0 && unit < 0) {
      t.f64[t.pf(slot, PF.BUSY)] += now - t.f64[t.pf(slot, PF.START)];
      t.f64[t.pf(slot, PF.START)] = now;
    } else if (prev < 0 && unit >= 0) {
      t.f64[t.pf(slot, PF.START)] = now;
    }
    const tr = this.trace;
    if (tr.on(TRC_SCHED)) tr.write(TRC_SCHED_SWITCH, slot, traceUnit(prev), traceUnit(unit), 0);
    t.i32[t.p(slot, P.CURR)] = unit + 1;
    t.i32[t.p(slot, P.PENDING)] = 0;
    t.f64[t.pf(slot, PF.RESCHED_AT)] = 0;
    if (unit < 0) return;
    t.f64[t.pf(slot, PF.SLICE)] = now;
    this.set(unit, U.RUNQ, 0);
    this.set(unit, U.PROCESSOR, slot);
    this.set(unit, U.RAN_ON, this.i(unit, U.RAN_ON) | (1 << slot));
    t.f64[t.uf(unit, UFL.LAST_BURN)] = now;
    t.f64[t.uf(unit, UFL.GIVEN)] = now;
    Atomics.store(t.i32, t.u(unit, U.SLOT), slot + 1);
    // A vCPU that takes a slot itself (handover false: wake, schedule's move) is awake already;
    // one given a slot by another thread is woken when the lock is dropped (see toWake).
    // A unit an event's sender queued while its thread slept in SCHEDOP_block is woken on its
    // upcall word, where that thread sleeps (./credit.ts wakeBlocked), whoever gives the slot.
    const queued = this.i(unit, U.BLOCKED) === BLK_QUEUED;
    if (queued) this.set(unit, U.BLOCKED, BLK_RUNNING);
    if (!handover || queued) this.set(unit, U.DISPLACED, 0); // it runs now, or is woken to: never taken over
    if (!handover && !queued) return;
    // Given to a thread that waits on U.SLOT: held, idle, until the host runs that thread.
    if (handover && !queued) t.i32[t.p(slot, P.PENDING)] = 1;
    if (handover) t.i32[G.HANDOVERS]++;
    const w = queued ? ~unit : unit;
    if (this.nrToWake < this.toWake.length) this.toWake[this.nrToWake++] = w;
    else this.wakeThread(w);
  }

  /** Ask the vCPU holding `slot` to reschedule at its next preemption point. */
  resched(slot: number, now = performance.timeOrigin + performance.now()): void {
    const cur = this.curr(slot);
    if (cur < 0) return;
    const at = this.t.pf(slot, PF.RESCHED_AT);
    if (this.t.f64[at] === 0) this.t.f64[at] = now;
    const tr = this.trace;
    if (tr.on(TRC_SCHED)) tr.write(TRC_CSCHED_TICKLE, slot, traceUnit(cur), 0, 0);
    const d = Math.floor(cur / MAX_VCPUS);
    Atomics.or(this.hv.vcpus, this.hv.vcpu(d, cur % MAX_VCPUS, V.REQUEST), VREQ_RESCHED);
  }
}

/** A unit as the trace shows it: domid << 8 | vcpu (the record's cpu field's form), -1 for idle. */
export function traceUnit(unit: number): number {
  return unit < 0 ? -1 : (Math.floor(unit / MAX_VCPUS) << 8) | (unit % MAX_VCPUS);
}
