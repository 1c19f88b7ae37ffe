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
 * and accounting (share out credit by weight, park capped domains). One lock word guards it all.
 *
 * The files: this one, the decisions a vCPU's thread and the toolstack ask for; ./credit-core.ts,
 * the lock and the helpers every decision uses (burn_credits, runqueue insert, the switch);
 * ./credit-runq.ts, which queued vCPU a slot runs next (one order for all slots: it says why);
 * ./credit-wake.ts, csched_unit_wake and __runq_tickle; ./credit-tick.ts, csched_tick;
 * ./credit-acct.ts, csched_acct; ./tables.ts, the shared-memory state.
 *
 * Priorities: BOOST > UNDER > OVER; a freed slot takes the best priority waiting for any slot it
 * may serve, FIFO within one.
 *
 * Charging. A vCPU is charged for the time its thread holds a slot and runs (burn_credits), from
 * when its thread runs: a slot handed to a sleeping thread is held, idle, for the host's wake-up
 * (claim says why that is nobody's credit), and a vCPU whose thread is awake may take such a slot
 * over meanwhile (./credit-wake.ts takeOver: work conservation).
 *
 * Left as credit.c has them, and why (issue 17's 16-guest scale row, measured): the timeslice
 * (sched_credit_tslice_ms, 30 ms) and the ratelimit (sched_ratelimit_us, 1 ms) bound how long a
 * vCPU that does not block keeps its slot; an I/O-bound guest blocks after every batch, long
 * before either, and wake-ups that asked a running vCPU to give its slot up (tickles) were
 * 0.004–0.02 per request. BOOST on wake (csched_unit_wake) stays: without it a woken guest or
 * Dom0 would wait behind every CPU-bound vCPU. What bounds that row is the host's cost of a
 * slot changing hands (a sleeping thread woken, ~1 per 8 requests): scenarios/bench/scale.ts.
 *
 * Simplifications, said where they matter: credit is charged exactly at every change (Xen's
 * burn_credits does the same since 2009); accounting's "excess" redistribution is one pass by
 * weight rather than credit.c's sorted walk; a vCPU is never preempted inside a hypercall.
 */
import {
  BLK_ASLEEP, BLK_QUEUED, BLK_RUNNING, CSCHED_PRI_IDLE, CSCHED_PRI_TS_BOOST, CSCHED_PRI_TS_UNDER, DM, G, GF, MAX_PCPUS, P, PF, U, UF_PARKED, UFL,
  allSlots, schedTables,
} from './tables.ts';
import type { HypervisorState } from '../state.ts';
import { MAX_VCPUS } from '../state.ts';
import { CreditCore } from './credit-core.ts';
import { pickNext } from './credit-runq.ts';
import { unitWake } from './credit-wake.ts';
import { acctIfDue, chargeTick, tickAll } from './credit-tick.ts';
import { TRC_BEGIN, TRC_CSCHED_TICK, TRC_END, TRC_SCHED } from '../../shared/public/trace.ts';

export class CreditScheduler extends CreditCore {
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
   * csched_unit_wake (./credit-wake.ts): `unit` became runnable. True if it holds a slot (it had
   * one, or took an idle one); false if it waits on its U.SLOT word for a hand-over.
   */
  wake(unit: number, now: number): boolean {
    this.lock();
    try {
      // Our thread is awake, whoever woke it: a slot given from now on wakes it on U.SLOT.
      this.set(unit, U.BLOCKED, BLK_RUNNING);
      this.t.f64[this.t.uf(unit, UFL.WOKEN)] = 0;
      if (this.i(unit, U.SLOT) !== 0) return true;
      if (this.i(unit, U.RUNQ) !== 0) return false;
      return unitWake(this, unit, now, -1, true);
    } finally {
      this.unlock();
    }
  }

  /**
   * vcpu_wake on the sender's side (Xen: evtchn_set_pending → vcpu_kick → vcpu_wake →
   * csched_unit_wake, all run by the pCPU that sent the event): an event is for `unit`, whose
   * thread gave its slot up in SCHEDOP_block and sleeps on its upcall word (U.BLOCKED BLK_ASLEEP).
   * It becomes runnable here, under the lock: it takes an idle slot (and its thread is woken once
   * the lock is dropped), or it queues (BOOST and tickle as any wake-up) and its thread sleeps on
   * until a slot is handed to it, which wakes it once. Before, the event woke the thread only for
   * it to find every slot taken, queue, and sleep again on U.SLOT until the hand-over: two host
   * wake-ups and two thread switches where Xen, whose blocked vCPUs are not threads, has none
   * (issue 17's 16-guest row: 0.1 such double wake-ups per request, 3 in 4 guest turns).
   * Measured (scale-one.ts 16, same build, RINGVISOR_SENDER_WAKE 0 then 1, back to back, load
   * 20-25 on 2 cores): host thread sleeps per request 0.40-0.50 -> 0.27-0.28, futex calls 0.53-1.0
   * -> 0.32-0.38, context switches 0.55-0.78 -> 0.41-0.44, Jain 0.999-1.0 -> 0.984-0.991; but a slot
   * handed to a thread asleep in waitAsync is held idle longer (slot dead 0.19-0.35 -> 0.49-0.66 of
   * slot time), Dom0 waited for a slot 0.48-0.69 of its busy time (0.09-0.31), and neither the rate
   * nor the CPU per request moved clearly (35.5K/35.5K -> 31.4K/39.3K IOPS; 22/35 -> 29/24 µs).
   * So it is off by default (G.SENDER_WAKE; RINGVISOR_SENDER_WAKE=1) until a quiet machine says.
   * `sender`: the vCPU sending the event: a BOOSTed wake does not tickle its slot (unitWake), since
   * here giving a slot away costs its thread a sleep and a wake-up, and it answers a batch of
   * requests; the wakee runs when a slot frees (a guest blocks after each batch) or at the tick
   * (csched_tick asks a lower priority to give way), as the ratelimit lets a vCPU run on.
   * True: handled (the caller notifies nobody). False: it is not asleep in SCHEDOP_block without
   * a slot (it runs, holds a slot, or waits on U.SLOT): the caller wakes its thread as before.
   */
  wakeBlocked(unit: number, now: number, sender = -1): boolean {
    const t = this.t;
    if (Atomics.load(t.i32, t.u(unit, U.BLOCKED)) !== BLK_ASLEEP || t.i32[G.SENDER_WAKE] === 0) return false;
    this.lock();
    try {
      if (this.i(unit, U.BLOCKED) !== BLK_ASLEEP || this.i(unit, U.SLOT) !== 0 || this.i(unit, U.RUNQ) !== 0) return false;
      this.set(unit, U.BLOCKED, BLK_QUEUED);
      t.f64[t.uf(unit, UFL.WOKEN)] = now;
      // An idle slot: setCurr sees BLK_QUEUED and wakes the thread on its upcall word.
      if (!unitWake(this, unit, now, sender)) t.i32[G.WAKES_QUEUED]++;
      return true;
    } finally {
      this.unlock();
    }
  }

  /**
   * The thread of `unit`, given a slot while it slept, runs at last: charge it from now, not from
   * when the slot was given (burn_credits charges a vCPU for the time it ran). Where ringvisor
   * differs: Xen's context switch takes a microsecond; here the host OS takes one futex wake-up
   * (~45 µs quiet, hundreds under load, milliseconds when the host preempts) to run the thread,
   * and the slot is held meanwhile with nothing running ("slot dead" in the scale suite). Charged
   * to the vCPU, that host delay drove guests OVER at random (the unlucky ones), and then they
   * waited behind every BOOSTed wake for whole accounting periods (branch `sched`: 6 of 16 guests
   * at 450 IOPS beside others at 2,000–8,400, Jain 0.56). The dead time is the host's cost.
   * False if the slot is no longer its: an awake vCPU took it over before this thread ran
   * (./credit-wake.ts takeOver), and it is queued again; its thread waits on.
   */
  claim(unit: number, now: number): boolean {
    const t = this.t;
    this.lock();
    try {
      const slot = this.i(unit, U.SLOT) - 1;
      if (slot < 0) return false;
      if (this.curr(slot) === unit) t.i32[t.p(slot, P.PENDING)] = 0;
      this.set(unit, U.DISPLACED, 0);
      const last = t.uf(unit, UFL.LAST_BURN);
      if (now > t.f64[last]) t.f64[last] = now;
      return true;
    } finally {
      this.unlock();
    }
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
        acctIfDue(this, now);
        chargeTick(this, unit, now);
      }
      t.i32[G.SCHEDULES]++;
      this.burn(unit, now);
      const mine = this.pri(unit);
      const parked = (this.i(unit, U.FLAGS) & UF_PARKED) !== 0;
      const ran = now - t.f64[t.pf(slot, PF.SLICE)];
      const next = pickNext(this, slot);
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
   * waiting vCPU that may use it, local or stolen, or idles; holding none, it leaves any runqueue
   * an event's sender put it on while it slept (wakeBlocked). With `gone`, the vCPU leaves the
   * scheduler for good (its thread ended). With `asleep`, it gave its slot up in SCHEDOP_block
   * and its thread sleeps on its upcall word: an event's sender may make it runnable (wakeBlocked).
   */
  release(unit: number, now: number, gone = false, asleep = false): void {
    const t = this.t;
    this.lock();
    try {
      const slot = this.i(unit, U.SLOT) - 1;
      this.set(unit, U.BLOCKED, asleep && !gone ? BLK_ASLEEP : BLK_RUNNING);
      t.f64[t.uf(unit, UFL.WOKEN)] = 0;
      if (gone) {
        this.set(unit, U.EXISTS, 0);
        this.set(unit, U.FLAGS, 0);
      }
      if (slot < 0) {
        this.set(unit, U.RUNQ, 0);
        return;
      }
      if (gone) this.set(unit, U.RUNQ, 0);
      t.i32[G.SCHEDULES]++;
      this.burn(unit, now);
      Atomics.store(t.i32, t.u(unit, U.SLOT), 0);
      if (this.curr(slot) === unit) {
        const next = pickNext(this, slot);
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

  /** csched_tick for every slot at once, and accounting when due (./credit-tick.ts). */
  tick(now: number): void {
    const tr = this.trace;
    if (tr.on(TRC_SCHED)) tr.write(TRC_CSCHED_TICK | TRC_BEGIN, this.t.nrPcpus, 0, 0, 0);
    this.lock();
    try {
      tickAll(this, now);
    } finally {
      this.unlock();
      if (tr.on(TRC_SCHED)) tr.write(TRC_CSCHED_TICK | TRC_END, this.t.i32[G.SWITCHES], 0, 0, 0);
    }
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

const waker = new WeakMap<HypervisorState, CreditScheduler>();
/**
 * This thread's scheduler for waking others (event-channel.ts evtchn_kick), made on first use;
 * null when the host has no slots (the host OS decides: an event always wakes the thread).
 */
export function schedulerOf(hv: HypervisorState): CreditScheduler | null {
  let s = waker.get(hv);
  if (s === undefined) {
    s = new CreditScheduler(hv, schedTables(hv.buffers.sched));
    waker.set(hv, s);
  }
  return s.enabled ? s : null;
}
