/*
 * The credit scheduler: which vCPUs hold the host's pCPU slots.
 *
 * Xen: xen/common/sched/credit.c (csched_unit_wake, csched_schedule, csched_load_balance,
 * csched_tick, csched_acct, __runq_tickle, burn_credits). The facts it follows are in
 * XEN-FACTS Part 2 §2.1; the numbers are credit.c's: weight 256, 30 ms timeslice, ticks of
 * 10 ms, accounting once per timeslice, 10 credits per ms, 1 ms ratelimit.
 *
 * Who runs it. Xen runs schedule() on the pCPU that must decide; ringvisor runs it in the thread
 * that must decide: the vCPU that blocks gives its slot to the best waiting vCPU
 * (`release`); the vCPU that wakes takes an idle slot or queues and "tickles" a slot running
 * something of lower priority (`wake`); a vCPU asked to reschedule, at its next preemption
 * point, keeps its slot or hands it over (`schedule`). The control thread's timer interrupt
 * runs `tick` (charge the running, drop BOOST, ask for preemption where due, fill idle slots)
 * and `acct` (share out credit by weight, park capped domains: ./credit-acct.ts). One lock word
 * guards it all.
 *
 * Priorities: BOOST > UNDER > OVER; a slot's runqueue is served highest priority first, FIFO
 * within one. A slot whose best local candidate is OVER (or that has none) steals from the other
 * slots' queues (csched_load_balance), respecting hard affinity.
 *
 * Simplifications, said where they matter: credit is charged exactly at every change (Xen's
 * burn_credits does the same since 2009); accounting's "excess" redistribution is one pass by
 * weight rather than credit.c's sorted walk; a vCPU is never preempted inside a hypercall.
 */
import { spin_lock, spin_unlock } from '../spinlock.ts';
import { D, V, VREQ_RESCHED, type HypervisorState } from '../state.ts';
import {
  CSCHED_CREDITS_PER_MSEC, CSCHED_PRI_IDLE, CSCHED_PRI_TS_BOOST, CSCHED_PRI_TS_OVER, CSCHED_PRI_TS_UNDER,
  DM, G, GF, MAX_PCPUS, P, PF, U, UF_ACTIVE, UF_PARKED, UFL, allSlots, type SchedTables,
} from './tables.ts';
import { MAX_VCPUS } from '../state.ts';
import { csched_acct } from './credit-acct.ts';
import type { TraceWriter } from '../trace.ts';
import {
  TRC_BEGIN, TRC_CSCHED_ACCT, TRC_CSCHED_TICK, TRC_CSCHED_TICKLE, TRC_END, TRC_SCHED, TRC_SCHED_SWITCH,
} from '../../shared/public/trace.ts';

/** What the scheduler needs of a trace buffer (NO_TRACE: none, for the simulator and the bench). */
type SchedTrace = Pick<TraceWriter, 'on' | 'write'>;
const NO_TRACE: SchedTrace = { on: () => false, write: () => {} };

export class CreditScheduler {
  /**
   * `trace`: the deciding thread's trace buffer, for TRC_SCHED_SWITCH (Xen's schedule() records every
   * switch on the pCPU that makes it) and the credit scheduler's own records (TRC_CSCHED_*). A
   * vCPU thread passes its own; the control thread passes the control slot's (./host-sched.ts),
   * so what its timer interrupt decides (ticks, accounting, slots given, tickles) is on its track.
   */
  constructor(readonly hv: HypervisorState, readonly t: SchedTables, private readonly trace: SchedTrace = NO_TRACE) {}

  /**
   * Threads to wake once the lock is dropped: the vCPUs another thread gave a slot while it was
   * held. A wake-up is a futex system call of several microseconds; made
   * under the lock, every other thread that reaches a scheduling decision meanwhile spins or
   * sleeps on the lock (Xen raises the schedule softirq under its runqueue lock, but an IPI is not
   * a system call). The slot word is stored under the lock, so a vCPU that looks finds its slot;
   * one already asleep on the word is woken just after.
   */
  private readonly toWake = new Int32Array(MAX_PCPUS + 1);
  private nrToWake = 0;

  private lock(): void {
    spin_lock(this.t.i32, G.LOCK);
  }
  private unlock(): void {
    const n = this.nrToWake;
    this.nrToWake = 0;
    spin_unlock(this.t.i32, G.LOCK);
    for (let k = 0; k < n; k++) {
      if (Atomics.notify(this.t.i32, this.t.u(this.toWake[k], U.SLOT)) > 0) Atomics.add(this.t.i32, G.SLOT_WAKES, 1);
    }
  }

  get enabled(): boolean {
    return this.t.nrPcpus > 0;
  }

  /* ---- small accessors ---- */
  private i(unit: number, w: number): number {
    return this.t.i32[this.t.u(unit, w)];
  }
  private set(unit: number, w: number, v: number): void {
    this.t.i32[this.t.u(unit, w)] = v;
  }
  private pri(unit: number): number {
    return this.t.i32[this.t.u(unit, U.PRI)];
  }
  /** Hard affinity within this host's slots; none of them (cpus= naming absent pCPUs) means all, as libxl falls back. */
  private hard(unit: number): number {
    const all = allSlots(this.t.nrPcpus);
    return (this.t.i32[this.t.u(unit, U.HARD)] & all) || all;
  }
  private curr(slot: number): number {
    return this.t.i32[this.t.p(slot, P.CURR)] - 1;
  }
  private get tsliceMs(): number {
    return this.t.i32[G.TSLICE_US] / 1000;
  }
  private get ratelimitMs(): number {
    return this.t.i32[G.RATELIMIT_US] / 1000;
  }

  /** burn_credits: charge `unit` for the time since it was last charged, and mark it active. */
  private burn(unit: number, now: number): void {
    const f = this.t.f64;
    const last = this.t.uf(unit, UFL.LAST_BURN);
    f[this.t.uf(unit, UFL.CREDIT)] -= Math.max(0, now - f[last]) * CSCHED_CREDITS_PER_MSEC;
    f[last] = now;
    this.t.i32[this.t.u(unit, U.FLAGS)] |= UF_ACTIVE;
  }

  /** Put `unit` on `slot`'s runqueue, behind everyone of its priority. */
  private enqueue(unit: number, slot: number): void {
    this.set(unit, U.RUNQ, slot + 1);
    this.set(unit, U.SEQ, ++this.t.i32[G.SEQ]);
  }

  /**
   * The slot changes hands: to `unit`, or to nobody (-1). `handover`: another thread gives it
   * (counted in G.HANDOVERS), and wakes its thread once the lock is dropped (G.SLOT_WAKES if it slept).
   */
  private setCurr(slot: number, unit: number, now: number, handover = false): void {
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
    if (!handover) return;
    t.i32[G.HANDOVERS]++;
    if (this.nrToWake < this.toWake.length) this.toWake[this.nrToWake++] = unit;
    else if (Atomics.notify(t.i32, t.u(unit, U.SLOT)) > 0) Atomics.add(t.i32, G.SLOT_WAKES, 1);
  }

  /**
   * The best vCPU queued for `slot` (csched_runq's head), or, if that is OVER or there is none,
   * a better one stolen from another slot's queue that may run here (csched_load_balance).
   * Parked vCPUs are skipped (they may not run until accounting unparks them), and so are those
   * of paused domains. -1: nothing.
   */
  private pickNext(slot: number): number {
    const t = this.t;
    const high = t.i32[G.HIGH];
    let best = -1;
    let bestPri = CSCHED_PRI_IDLE;
    let bestSeq = 0;
    for (let pass = 0; pass < 2; pass++) {
      // pass 0: the local runqueue; pass 1: everyone else's, only if the local best is OVER or worse.
      if (pass === 1 && bestPri > CSCHED_PRI_TS_OVER) break;
      const floor = bestPri;
      for (let u = 0; u < high; u++) {
        const q = t.i32[t.u(u, U.RUNQ)];
        if (q === 0 || (pass === 0) !== (q === slot + 1)) continue;
        if ((t.i32[t.u(u, U.FLAGS)] & UF_PARKED) !== 0) continue;
        if ((this.hard(u) & (1 << slot)) === 0) continue;
        // Paused while it waited: not runnable (Xen takes it off the runqueue at once).
        if (Atomics.load(this.hv.domains, Math.floor(u / MAX_VCPUS) * D.WORDS + D.PAUSE_COUNT) !== 0) continue;
        const pri = t.i32[t.u(u, U.PRI)];
        const seq = t.i32[t.u(u, U.SEQ)];
        if (pass === 1 && pri <= floor) continue;
        if (best < 0 || pri > bestPri || (pri === bestPri && seq < bestSeq)) {
          best = u;
          bestPri = pri;
          bestSeq = seq;
        }
      }
      if (pass === 1 && best >= 0 && t.i32[t.u(best, U.RUNQ)] !== slot + 1) t.i32[G.STEALS]++;
    }
    return best;
  }

  /** Ask the vCPU holding `slot` to reschedule at its next preemption point. */
  private resched(slot: number, now = performance.timeOrigin + performance.now()): void {
    const cur = this.curr(slot);
    if (cur < 0) return;
    const at = this.t.pf(slot, PF.RESCHED_AT);
    if (this.t.f64[at] === 0) this.t.f64[at] = now;
    const tr = this.trace;
    if (tr.on(TRC_SCHED)) tr.write(TRC_CSCHED_TICKLE, slot, traceUnit(cur), 0, 0);
    const d = Math.floor(cur / MAX_VCPUS);
    Atomics.or(this.hv.vcpus, this.hv.vcpu(d, cur % MAX_VCPUS, V.REQUEST), VREQ_RESCHED);
  }

  /* ---- registration (control thread) ---- */

  /** csched_alloc_domdata: a new domain's weight and cap. */
  initDomain(domid: number, weight: number, cap: number): void {
    this.lock();
    this.t.i32[this.t.dm(domid, DM.WEIGHT)] = weight;
    this.t.i32[this.t.dm(domid, DM.CAP)] = cap;
    this.unlock();
  }

  /** csched_alloc_udata: a new vCPU, with its affinity masks (0 = every slot). */
  initUnit(unit: number, hard: number, soft: number): void {
    const t = this.t;
    this.lock();
    for (let w = 0; w < U.WORDS; w++) t.i32[t.u(unit, w)] = 0;
    t.f64[t.uf(unit, UFL.CREDIT)] = 0;
    t.f64[t.uf(unit, UFL.TIMER)] = 0;
    t.i32[t.u(unit, U.PRI)] = CSCHED_PRI_TS_UNDER;
    t.i32[t.u(unit, U.HARD)] = hard === 0 ? 0x7fff_ffff : hard;
    t.i32[t.u(unit, U.SOFT)] = soft;
    const n = Math.max(1, t.nrPcpus);
    const allowed = this.hard(unit) || allSlots(n);
    // Spread a domain's vCPUs over the slots they may use, as Xen's initial placement does.
    let p = unit % MAX_VCPUS % n;
    for (let k = 0; k < n && (allowed & (1 << p)) === 0; k++) p = (p + 1) % n;
    t.i32[t.u(unit, U.PROCESSOR)] = p;
    t.i32[t.u(unit, U.EXISTS)] = 1;
    if (unit + 1 > t.i32[G.HIGH]) t.i32[G.HIGH] = unit + 1;
    this.unlock();
  }

  /* ---- the vCPU's own thread ---- */

  /**
   * csched_unit_wake: `unit` became runnable. BOOST if it wakes UNDER; an idle slot it may use is
   * taken at once (true); otherwise it queues, tickling the slot running the lowest priority
   * below its own, and waits on its U.SLOT word (false).
   */
  wake(unit: number, now: number): boolean {
    const t = this.t;
    this.lock();
    try {
      if (this.i(unit, U.SLOT) !== 0) return true;
      if (this.i(unit, U.RUNQ) !== 0) return false;
      const parked = (this.i(unit, U.FLAGS) & UF_PARKED) !== 0;
      if (!parked && this.pri(unit) === CSCHED_PRI_TS_UNDER && t.i32[G.BOOST] !== 0) this.set(unit, U.PRI, CSCHED_PRI_TS_BOOST);
      if (this.pri(unit) === CSCHED_PRI_TS_BOOST) {
        // (Still BOOST from the last wake if no tick has charged it since: it counts again.)
        t.i32[G.BOOSTS]++;
        this.set(unit, U.BOOSTS, this.i(unit, U.BOOSTS) + 1);
      }
      t.f64[t.uf(unit, UFL.LAST_BURN)] = now;
      const n = t.nrPcpus;
      const hard = this.hard(unit);
      const soft = this.i(unit, U.SOFT) & hard;
      const proc = this.i(unit, U.PROCESSOR);
      if (!parked) {
        const idle = this.pickIdle(hard, soft, proc, n);
        if (idle >= 0) {
          this.setCurr(idle, unit, now);
          return true;
        }
      }
      // __runq_tickle: the slot whose vCPU has the lowest priority below ours (soft affinity first).
      let target = (hard & (1 << proc)) !== 0 ? proc : 31 - Math.clz32(hard & -hard);
      let victim = -1;
      let victimPri = this.pri(unit);
      for (let p = 0; p < n && !parked; p++) {
        if ((hard & (1 << p)) === 0) continue;
        const c = this.curr(p);
        const cp = c < 0 ? CSCHED_PRI_IDLE : this.pri(c);
        const better = cp < victimPri || (cp === victimPri && victim >= 0 && (soft & (1 << p)) !== 0 && (soft & (1 << victim)) === 0);
        if (better) {
          victim = p;
          victimPri = cp;
        }
      }
      if (victim >= 0) {
        target = victim;
        // The ratelimit: a vCPU keeps its slot at least this long; the tick asks later if too soon.
        if (now - t.f64[t.pf(victim, PF.SLICE)] >= this.ratelimitMs) {
          t.i32[G.TICKLES]++;
          this.resched(victim);
        }
      }
      this.enqueue(unit, target);
      return false;
    } finally {
      this.unlock();
    }
  }

  /** An idle slot in `hard`: the last one it ran on, then soft affinity, then any. -1: none. */
  private pickIdle(hard: number, soft: number, proc: number, n: number): number {
    const idle = (p: number) => this.curr(p) < 0;
    if ((soft & (1 << proc)) !== 0 && idle(proc)) return proc;
    for (let p = 0; p < n; p++) if ((soft & (1 << p)) !== 0 && idle(p)) return p;
    if ((hard & (1 << proc)) !== 0 && proc < n && idle(proc)) return proc;
    for (let p = 0; p < n; p++) if ((hard & (1 << p)) !== 0 && idle(p)) return p;
    return -1;
  }

  /**
   * csched_schedule for the vCPU holding a slot, at a preemption point where it was asked to
   * reschedule: true if it keeps the slot (nobody better waits, its slice is not over, or the
   * ratelimit protects it); false if it queued itself and handed the slot on.
   */
  schedule(unit: number, now: number, tick = false): boolean {
    const t = this.t;
    this.lock();
    try {
      const slot = this.i(unit, U.SLOT) - 1;
      if (slot < 0) return false;
      if (tick) {
        // csched_tick on our own slot: accounting if a timeslice has passed, charge, drop BOOST.
        if (now - t.f64[GF.LAST_ACCT] >= this.tsliceMs) this.acct(now);
        this.burn(unit, now);
        if (this.pri(unit) === CSCHED_PRI_TS_BOOST) this.set(unit, U.PRI, CSCHED_PRI_TS_UNDER);
      }
      t.i32[G.SCHEDULES]++;
      this.burn(unit, now);
      const mine = this.pri(unit);
      const parked = (this.i(unit, U.FLAGS) & UF_PARKED) !== 0;
      const ran = now - t.f64[t.pf(slot, PF.SLICE)];
      const next = this.pickNext(slot);
      const nextPri = next < 0 ? CSCHED_PRI_IDLE : this.pri(next);
      const hard = this.hard(unit);
      const allowedHere = (hard & (1 << slot)) !== 0; // vcpu-pin may have moved it away
      const keep = !parked && allowedHere && (next < 0 || ran < this.ratelimitMs || nextPri < mine
        || (nextPri === mine && ran < this.tsliceMs));
      if (keep) {
        if (ran >= this.tsliceMs) t.f64[t.pf(slot, PF.SLICE)] = now; // a new slice, nobody to give it to
        t.f64[t.pf(slot, PF.RESCHED_AT)] = 0; // asked, and answered: keep
        return true;
      }
      if (next >= 0 && nextPri === CSCHED_PRI_TS_BOOST && mine < CSCHED_PRI_TS_BOOST) t.i32[G.BOOST_PREEMPTS]++;
      Atomics.store(t.i32, t.u(unit, U.SLOT), 0);
      this.set(unit, U.PREEMPTED, this.i(unit, U.PREEMPTED) + 1);
      const asked = t.f64[t.pf(slot, PF.RESCHED_AT)];
      if (asked !== 0 && now >= asked) {
        // How late the decision took effect: the vCPU's distance to its next preemption point.
        t.f64[GF.LATE_SUM] += now - asked;
        t.f64[GF.LATE_MAX] = Math.max(t.f64[GF.LATE_MAX], now - asked);
        t.i32[G.LATE_N]++;
      }
      this.setCurr(slot, next, now, true);
      t.i32[G.SWITCHES]++;
      const target = allowedHere ? slot : 31 - Math.clz32(hard & -hard);
      if (!parked && target !== slot && this.curr(target) < 0) {
        this.setCurr(target, unit, now);
        return true;
      }
      this.enqueue(unit, target);
      return false;
    } finally {
      this.unlock();
    }
  }

  /**
   * The vCPU stops being runnable (it blocks, is paused, goes offline): its slot goes to the best
   * waiting vCPU that may use it, local or stolen, or idles. With `gone`, the vCPU leaves the
   * scheduler for good (its thread ended): it is also taken off any runqueue.
   */
  release(unit: number, now: number, gone = false): void {
    const t = this.t;
    this.lock();
    try {
      const slot = this.i(unit, U.SLOT) - 1;
      if (gone) {
        this.set(unit, U.RUNQ, 0);
        this.set(unit, U.EXISTS, 0);
        this.set(unit, U.FLAGS, 0);
      }
      if (slot < 0) return;
      t.i32[G.SCHEDULES]++;
      this.burn(unit, now);
      Atomics.store(t.i32, t.u(unit, U.SLOT), 0);
      if (this.curr(slot) === unit) {
        const next = this.pickNext(slot);
        this.setCurr(slot, next, now, next >= 0);
      }
      t.i32[G.SWITCHES]++;
    } finally {
      this.unlock();
    }
  }

  /**
   * A queued vCPU was taken down (VCPUOP_down) before it got a slot: off its runqueue. False if a
   * slot was given to it meanwhile (it keeps it, and goes down at its next preemption point).
   */
  dequeue(unit: number): boolean {
    this.lock();
    try {
      if (this.i(unit, U.SLOT) !== 0) return false;
      this.set(unit, U.RUNQ, 0);
      return true;
    } finally {
      this.unlock();
    }
  }

  /* ---- the control thread's timer interrupt ---- */

  /**
   * csched_tick, for every slot at once: charge the running vCPU, drop its BOOST (credit.c:
   * "at the next tick that charges it"), ask it to reschedule if its slice is over and someone of
   * its priority waits, or if someone better waits past the ratelimit, or if it was parked; give
   * idle slots to whoever waits for them; run `acct` if a timeslice has passed since the last.
   * A running vCPU also runs the tick for its own slot at its preemption points (schedule with
   * `tick`), as each Xen pCPU runs its own: on a loaded host the control thread's timer can be
   * hundreds of milliseconds late, and accounting and caps must not wait for it.
   */
  tick(now: number): void {
    const t = this.t;
    const tr = this.trace;
    if (tr.on(TRC_SCHED)) tr.write(TRC_CSCHED_TICK | TRC_BEGIN, t.nrPcpus, 0, 0, 0);
    this.lock();
    try {
      if (now - t.f64[GF.LAST_ACCT] >= this.tsliceMs) this.acct(now);
      const n = t.nrPcpus;
      for (let p = 0; p < n; p++) {
        const cur = this.curr(p);
        if (cur < 0) {
          const next = this.pickNext(p);
          if (next >= 0) this.setCurr(p, next, now, true);
          continue;
        }
        this.burn(cur, now);
        if (this.pri(cur) === CSCHED_PRI_TS_BOOST) this.set(cur, U.PRI, CSCHED_PRI_TS_UNDER);
        const ran = now - t.f64[t.pf(p, PF.SLICE)];
        if ((this.i(cur, U.FLAGS) & UF_PARKED) !== 0) {
          this.resched(p);
          continue;
        }
        const next = this.peek(p);
        if (next < 0 || ran < this.ratelimitMs) continue;
        const np = this.pri(next);
        if (np > this.pri(cur) || (np === this.pri(cur) && ran >= this.tsliceMs)) this.resched(p);
      }
    } finally {
      this.unlock();
      if (tr.on(TRC_SCHED)) tr.write(TRC_CSCHED_TICK | TRC_END, t.i32[G.SWITCHES], 0, 0, 0);
    }
  }

  /** pickNext without counting a steal. */
  private peek(slot: number): number {
    const steals = this.t.i32[G.STEALS];
    const u = this.pickNext(slot);
    this.t.i32[G.STEALS] = steals;
    return u;
  }

  /** csched_acct (lock held): charge the running vCPUs, then share out credit (./credit-acct.ts). */
  private acct(now: number): void {
    const tr = this.trace;
    if (tr.on(TRC_SCHED)) tr.write(TRC_CSCHED_ACCT | TRC_BEGIN, this.t.nrPcpus, 0, 0, 0);
    for (let p = 0; p < this.t.nrPcpus; p++) {
      const cur = this.curr(p);
      if (cur >= 0) this.burn(cur, now);
    }
    csched_acct(this.t, now);
    if (tr.on(TRC_SCHED)) tr.write(TRC_CSCHED_ACCT | TRC_END, this.t.i32[G.ACCTS], this.t.i32[G.PARKS], 0, 0);
  }

  /** sched_credit -s: the pool's timeslice and ratelimit (µs). */
  setPool(tsliceUs: number, ratelimitUs: number): void {
    this.lock();
    this.t.i32[G.TSLICE_US] = tsliceUs;
    this.t.i32[G.RATELIMIT_US] = ratelimitUs;
    this.unlock();
  }

  /** sched_credit -d: a domain's weight and cap. */
  setDomain(domid: number, weight: number, cap: number): void {
    this.initDomain(domid, weight, cap);
  }

  /** vcpu-pin: new affinity masks (already checked non-empty by the caller). */
  setAffinity(unit: number, hard: number, soft: number): void {
    const t = this.t;
    this.lock();
    t.i32[t.u(unit, U.HARD)] = hard;
    t.i32[t.u(unit, U.SOFT)] = soft;
    // Running or queued where it may no longer be: reschedule or requeue.
    const slot = t.i32[t.u(unit, U.SLOT)] - 1;
    if (slot >= 0 && (hard & (1 << slot)) === 0) this.resched(slot);
    const q = t.i32[t.u(unit, U.RUNQ)] - 1;
    if (q >= 0 && (hard & (1 << q)) === 0) this.enqueue(unit, 31 - Math.clz32(hard & -hard));
    this.unlock();
  }
}

export { MAX_PCPUS };

/** A unit as the trace shows it: domid << 8 | vcpu (the record's cpu field's form), -1 for idle. */
function traceUnit(unit: number): number {
  return unit < 0 ? -1 : (Math.floor(unit / MAX_VCPUS) << 8) | (unit % MAX_VCPUS);
}
