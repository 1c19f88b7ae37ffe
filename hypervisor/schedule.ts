/*
 * The vCPU's side of scheduling: preemption points, holding a pCPU slot, blocking, pause,
 * runstate accounting.
 *
 * Xen: xen/common/sched/core.c (do_sched_op: SCHEDOP_block, SCHEDOP_yield, SCHEDOP_shutdown;
 * schedule() and context_switch on the pCPU; vcpu_runstate_change; domain_pause) and the
 * runstate area of xen/include/public/vcpu.h.
 *
 * Each vCPU is a host thread. With the scheduler on (a host with N pCPU slots, sched/credit.ts),
 * a vCPU runs guest code only while it holds a slot; without it (`pcpus = 0`) the host OS alone
 * decides, as before. Where the "timer interrupt" lands: the control thread never interrupts a
 * vCPU. It (or a waking vCPU) sets a request bit in the vCPU's record, and the vCPU acts on it at
 * its next preemption point: entering any hypercall, waking from SCHEDOP_block, and the guest's
 * own `preempt()` that every long guest loop calls (Linux's cond_resched; see
 * shared/public/hypercall.ts GuestSched). Nothing is held at a preemption point, so giving the
 * slot away or stopping there is always safe. A decision therefore takes effect as late as the
 * running vCPU's next preemption point (bench suite `sched` measures it).
 *
 * Every request is one load on the fast path. The bits (state.ts VREQ_*): CHECK (look at the
 * pause count), STOP (leave), RESCHED (the scheduler wants the slot: run csched_schedule), SLOT
 * (this vCPU holds no slot; get one before guest code runs on).
 *
 * A vCPU blocks by sleeping on its evtchn_upcall_pending word (Atomics.waitAsync), which event
 * delivery sets before it wakes the vCPU, so a wake-up between "nothing pending" and "sleep" is
 * never lost. Its slot goes once a whole turn of its thread's event loop has passed with no guest
 * code at a preemption point (a kernel's other tasks may still be running: see queueIdleCheck).
 * While it sleeps, host I/O may wake guest code on its thread (Dom0's sockets: its "device
 * interrupts"): the first preemption point of that code takes a slot as a wake-up would, and the
 * slot goes back the same way.
 * A vCPU waiting for a slot, or paused, sleeps synchronously (Atomics.wait): it runs nothing.
 */
import { vcpu_info } from '../shared/public/xen.ts';
import type { Caller } from './caller.ts';
import { evtchn_peer_preempted, vcpu_is_running } from './sched/peer-runstate.ts';
import { CreditScheduler } from './sched/credit.ts';
import { CSCHED_TICKS_PER_TSLICE, G, schedTables, U, UFL, unitOf, type SchedTables } from './sched/tables.ts';
import { sendTimerVirq, setTimer, takeExpiredTimer, timerDeadline } from './sched/timer.ts';
import {
  D, RUNSTATE_blocked, RUNSTATE_offline, RUNSTATE_runnable, RUNSTATE_running, V, VREQ_RESCHED, VREQ_SLOT, VREQ_STOP, VT,
  MAX_VCPUS,
} from './state.ts';

const UPCALL_PENDING = vcpu_info.evtchn_upcall_pending >> 2;
const VCPU_WORDS = vcpu_info.SIZE >> 2;

/** The wall clock in ms, comparable between threads (performance.now() is per thread). */
export function now(): number {
  return performance.timeOrigin + performance.now();
}

export class VcpuScheduler {
  private readonly request: number;
  private readonly upcall: number;
  private readonly pauseWord: number;
  /** Our _VPF_down word (state.ts V.DOWN). */
  private readonly downWord: number;
  private readonly timeBase: number;
  private readonly unit: number;
  private readonly tables: SchedTables;
  /** The credit scheduler, or null when the host has no slots (the host OS decides). */
  private readonly credit: CreditScheduler | null;
  private hasSlot = false;
  /** SCHEDOP_block calls in progress (host I/O may run guest code meanwhile). */
  private blocking = 0;
  private idleCheckQueued = false;
  /** Set at every preemption point: guest code ran (see block()). */
  private activity = false;
  /** When our slot's next tick is due (this thread's performance.now()). */
  private nextTick = 0;

  /** Set by the thread entry: how to leave the thread (it must not return into guest code). */
  exit: (code: number) => never = () => { throw new Error('vCPU exit not wired'); };

  constructor(private readonly c: Caller) {
    this.request = c.hv.vcpu(c.domid, c.vcpu, V.REQUEST);
    this.upcall = c.vcpu * VCPU_WORDS + UPCALL_PENDING;
    this.pauseWord = c.domid * D.WORDS + D.PAUSE_COUNT;
    this.downWord = c.hv.vcpu(c.domid, c.vcpu, V.DOWN);
    this.timeBase = (c.domid * MAX_VCPUS + c.vcpu) * VT.WORDS;
    this.unit = unitOf(c.domid, c.vcpu);
    this.tables = schedTables(c.hv.buffers.sched);
    this.credit = this.tables.nrPcpus > 0 ? new CreditScheduler(c.hv, this.tables, c.trace) : null;
  }

  /**
   * The thread has started: account from now. A vCPU built down (beyond `vcpus`, up to
   * `maxvcpus`) waits here, offline, until VCPUOP_up, before any guest code runs. With slots, it is
   * runnable until its first preemption point.
   */
  online(): void {
    this.c.hv.vcpuTime[this.timeBase + VT.SINCE] = now();
    Atomics.store(this.c.hv.vcpus, this.c.hv.vcpu(this.c.domid, this.c.vcpu, V.ALIVE), 1);
    if (Atomics.load(this.c.hv.vcpus, this.downWord) !== 0) {
      this.runstate(RUNSTATE_offline);
      this.waitWhileDown();
    }
    if (this.credit === null) {
      this.runstate(RUNSTATE_running);
    } else {
      this.runstate(RUNSTATE_runnable);
      Atomics.or(this.c.hv.vcpus, this.request, VREQ_SLOT);
    }
  }

  /**
   * Every hypercall passes through here: one load when nothing is asked of us, and while we hold
   * a slot one clock read, for our own slot's tick (csched_tick: charge us, maybe preempt us).
   */
  preemptionPoint(): void {
    this.activity = true;
    if (Atomics.load(this.c.hv.vcpus, this.request) !== 0) this.handleRequest();
    else if (this.hasSlot && performance.now() >= this.nextTick) this.tick();
  }

  private tick(): void {
    this.nextTick = performance.now() + this.tables.i32[G.TSLICE_US] / 1000 / CSCHED_TICKS_PER_TSLICE;
    const t = now();
    if (!this.credit!.schedule(this.unit, t, true)) {
      this.hasSlot = false;
      this.runstate(RUNSTATE_runnable, t);
      this.waitForSlot();
    }
  }

  private handleRequest(): void {
    const hv = this.c.hv;
    for (;;) {
      const req = Atomics.exchange(hv.vcpus, this.request, 0);
      if ((req & VREQ_STOP) !== 0) this.stop();
      if (Atomics.load(hv.vcpus, this.downWord) !== 0) {
        // VCPUOP_down (vcpu-op.ts): offline, holding nothing, until VCPUOP_up; then take a slot again.
        this.giveUp(RUNSTATE_offline);
        this.waitWhileDown();
        if (this.credit === null) this.runstate(RUNSTATE_running);
        continue;
      }
      const paused = Atomics.load(hv.domains, this.pauseWord);
      if (paused !== 0) {
        // Paused: not runnable. Give the slot up and sleep on the pause count until it changes.
        this.giveUp(RUNSTATE_runnable);
        Atomics.wait(hv.domains, this.pauseWord, paused);
        continue;
      }
      if (this.credit === null) {
        this.runstate(RUNSTATE_running);
        return;
      }
      if (!this.hasSlot) {
        this.acquire();
        if (this.blocking > 0) {
          this.wakeOwnBlock();
          this.queueIdleCheck();
        }
      } else if ((req & VREQ_RESCHED) !== 0) {
        const t = now();
        if (!this.credit.schedule(this.unit, t)) {
          this.hasSlot = false;
          this.runstate(RUNSTATE_runnable, t); // as of the hand-over: the next holder runs from then
          this.waitForSlot();
        }
      }
      return;
    }
  }

  /**
   * csched_unit_wake from our own thread: take a slot, waiting on our U.SLOT word if none is free.
   * An event's sender may have made us runnable while our thread slept (sched/credit.ts
   * wakeBlocked): then we have been runnable since then (UFL.WOKEN), and may have been given a
   * slot already, which we run on from now as after any hand-over (gotSlot).
   */
  private acquire(): void {
    const t = this.tables;
    const woken = t.f64[t.uf(this.unit, UFL.WOKEN)];
    this.runstate(RUNSTATE_runnable, woken > 0 ? woken : now());
    const at = now();
    if (this.credit!.wake(this.unit, at)) {
      // Handed to us while we slept (a sender queued us): ours unless taken over (sched/credit-wake.ts takeOver).
      if (woken > 0 && t.f64[t.uf(this.unit, UFL.GIVEN)] !== at) return this.credit!.claim(this.unit, now()) ? this.gotSlot() : this.waitForSlot();
      this.hasSlot = true;
      this.runstate(RUNSTATE_running);
      return;
    }
    this.waitForSlot();
  }

  private waitForSlot(): void {
    const t = this.tables;
    const word = t.u(this.unit, U.SLOT);
    const hv = this.c.hv;
    for (;;) {
      // Handed a slot: ours unless an awake vCPU took it over first (sched/credit-wake.ts takeOver).
      if (Atomics.load(t.i32, word) !== 0 && this.credit!.claim(this.unit, now())) {
        if (Atomics.load(hv.domains, this.pauseWord) === 0) break;
        // A slot came after a pause landed: the pause found us queued, not running, and the host
        // counts us stopped (Host.isQuiescent), so no guest code may run. Hand the slot on unused
        // (charged nothing: it never ran) and wait out the pause, then queue again. Xen has no such
        // window: domain_pause takes a vCPU off its runqueue (vcpu_sleep_sync).
        this.credit!.release(this.unit, now());
        if (this.pausedWhileQueued()) break;
        continue;
      }
      Atomics.wait(t.i32, word, 0);
      if ((Atomics.load(hv.vcpus, this.request) & VREQ_STOP) !== 0) this.stop();
      // Paused while queued (Host.pause wakes us): leave the runqueue, unless a slot came at the
      // same moment (handed back above), and queue again once unpaused.
      if (Atomics.load(hv.domains, this.pauseWord) !== 0 && this.credit!.dequeue(this.unit) && this.pausedWhileQueued()) break;
      // Taken down while queued: leave the runqueue (unless a slot came at the same moment),
      // wait offline, then queue again.
      if (Atomics.load(this.c.hv.vcpus, this.downWord) !== 0 && this.credit!.dequeue(this.unit)) {
        this.runstate(RUNSTATE_offline);
        this.waitWhileDown();
        this.runstate(RUNSTATE_runnable);
        if (this.credit!.wake(this.unit, now())) break;
      }
    }
    this.gotSlot();
  }

  /** Another thread gave us a slot while we slept, and we claimed it (sched/credit.ts claim); our thread runs at last. */
  private gotSlot(): void {
    const t = this.tables;
    this.hasSlot = true;
    wakeLatency(t, G.SLOT_LAT_US, t.f64[t.uf(this.unit, UFL.GIVEN)]);
    // Running since the scheduler gave us the slot, not since the host OS got round to waking
    // us: the runstate is the scheduler's decision (Xen: the pCPU switched to us).
    this.runstate(RUNSTATE_running, t.f64[t.uf(this.unit, UFL.GIVEN)]);
  }

  /**
   * Off the runqueue and holding no slot: sleep until the pause count is 0 (or the domain is
   * stopped), then wake as any vCPU does. True if that found a slot, false if it queued.
   */
  private pausedWhileQueued(): boolean {
    const hv = this.c.hv;
    for (;;) {
      const paused = Atomics.load(hv.domains, this.pauseWord);
      if (paused === 0) break;
      Atomics.wait(hv.domains, this.pauseWord, paused);
      if ((Atomics.load(hv.vcpus, this.request) & VREQ_STOP) !== 0) this.stop();
    }
    return this.credit!.wake(this.unit, now());
  }

  /** _VPF_down: sleep on the flag until VCPUOP_up clears it (or a stop); the caller gave its slot up, offline. */
  private waitWhileDown(): void {
    const hv = this.c.hv;
    for (;;) {
      if (Atomics.load(hv.vcpus, this.downWord) === 0) break;
      Atomics.wait(hv.vcpus, this.downWord, 1);
      if ((Atomics.load(hv.vcpus, this.request) & VREQ_STOP) !== 0) this.stop();
    }
  }

  /**
   * Stop being runnable (`next` says why): the slot goes to whoever waits (holding none, we leave
   * any runqueue an event's sender put us on); the next preemption point takes one again.
   * `asleep`: we are in SCHEDOP_block and our thread sleeps on its upcall word, so an event's
   * sender may make us runnable without waking the thread (sched/credit.ts wakeBlocked).
   */
  private giveUp(next: number, asleep = false): void {
    const t = now();
    if (this.credit !== null) {
      const tb = this.tables;
      if (this.hasSlot || asleep || Atomics.load(tb.i32, tb.u(this.unit, U.RUNQ)) !== 0) this.credit.release(this.unit, t, false, asleep);
      this.hasSlot = false;
      Atomics.or(this.c.hv.vcpus, this.request, VREQ_SLOT);
    }
    this.runstate(next, t);
  }

  /**
   * SCHEDOP_block still waits with an event pending while our thread runs: a sender that queued us
   * (sched/credit.ts wakeBlocked) left the wake-up to a hand-over that found the thread awake, and
   * with the flag at 1 no later event wakes the block, so it is woken here. True if one was pending.
   */
  private wakeOwnBlock(): boolean {
    const si = this.c.hv.sharedInfo[this.c.domid];
    if (Atomics.load(si, this.upcall) === 0) return false;
    Atomics.notify(si, this.upcall);
    return true;
  }

  /**
   * While SCHEDOP_block waits, is the vCPU really idle? Its kernel's other tasks (a workload that
   * let the event loop turn, a handler woken by host I/O) may still run guest code on this thread:
   * a real kernel would not have entered its idle loop at all. So the slot is given up only after
   * a full turn of the event loop in which no guest code passed a preemption point.
   */
  private queueIdleCheck(): void {
    if (this.idleCheckQueued) return;
    this.idleCheckQueued = true;
    this.activity = false;
    setImmediate(() => {
      this.idleCheckQueued = false;
      if (this.blocking === 0 || !this.hasSlot) return;
      if (this.activity) this.queueIdleCheck();
      // An event pending: the block is about to return (woken here if a sender left it asleep); the
      // slot goes all the same, and the vCPU queues for one like any other, not ahead of them.
      else this.giveUp(RUNSTATE_blocked, !this.wakeOwnBlock());
    });
  }

  /** SCHEDOP_block: sleep until an event is pending, or until the singleshot timer (set_timer_op) expires. */
  async block(): Promise<void> {
    this.preemptionPoint();
    const si = this.c.hv.sharedInfo[this.c.domid];
    // Say we are about to wait, then look (sched/tables.ts U.ASLEEP: a sender notifies only a waiter).
    const asleep = this.tables.u(this.unit, U.ASLEEP);
    Atomics.add(this.tables.i32, asleep, 1);
    if (Atomics.load(si, this.upcall) !== 0) {
      Atomics.sub(this.tables.i32, asleep, 1);
      return;
    }
    this.c.count('blocks');
    this.blocking++;
    if (this.credit === null) this.runstate(RUNSTATE_blocked);
    else this.queueIdleCheck();
    const deadline = timerDeadline(this.tables, this.unit);
    const w = deadline === 0 ? Atomics.waitAsync(si, this.upcall, 0) : Atomics.waitAsync(si, this.upcall, 0, Math.max(0, deadline - now()));
    if (w.async) await w.value;
    Atomics.sub(this.tables.i32, asleep, 1);
    this.blocking--;
    const kicked = this.tables.uf(this.unit, UFL.KICKED);
    if (this.tables.f64[kicked] !== 0) {
      wakeLatency(this.tables, G.EVT_LAT_US, this.tables.f64[kicked]);
      this.tables.f64[kicked] = 0;
    }
    if (deadline !== 0 && takeExpiredTimer(this.tables, this.unit, now())) sendTimerVirq(this.c.hv, this.c.domid, this.c.vcpu);
    if (this.credit === null) this.runstate(RUNSTATE_running);
    this.preemptionPoint();
  }

  /** set_timer_op (see sched/timer.ts). */
  setTimer(timeoutNs: number): void {
    setTimer(this.tables, this.unit, timeoutNs);
  }

  /** GuestSched.vcpu_is_running (./sched/peer-runstate.ts). */
  vcpuIsRunning(domid: number, vcpu: number): boolean {
    return vcpu_is_running(this.c.hv, this.tables, this.credit !== null, domid, vcpu);
  }

  /** GuestSched.evtchn_peer_preempted (./sched/peer-runstate.ts): never without slots (the host OS decides). */
  peerPreempted(port: number): boolean {
    return this.credit !== null && evtchn_peer_preempted(this.c.hv, this.tables, this.c.domid, port);
  }

  /** SCHEDOP_yield: let a waiting vCPU of our priority have the slot now, if one waits. */
  yield(): void {
    if (this.credit !== null && this.hasSlot) Atomics.or(this.c.hv.vcpus, this.request, VREQ_RESCHED);
    this.preemptionPoint();
  }

  /** Leave the thread for good (destroy, shutdown). Never returns. */
  stop(): never {
    if (this.credit !== null) this.credit.release(this.unit, now(), true);
    this.hasSlot = false;
    this.runstate(RUNSTATE_offline);
    Atomics.store(this.c.hv.vcpus, this.c.hv.vcpu(this.c.domid, this.c.vcpu, V.ALIVE), 0);
    Atomics.notify(this.c.hv.vcpus, this.c.hv.vcpu(this.c.domid, this.c.vcpu, V.ALIVE)); // the host's stopVcpus may wait on it
    return this.exit(0);
  }

  /**
   * The vCPU sleeps in the hypervisor outside SCHEDOP_block (an HVM vCPU waiting for its device
   * model): it gives its slot up meanwhile, so the device model can have it.
   */
  sleepBegin(): void {
    this.giveUp(RUNSTATE_blocked);
  }
  sleepEnd(): void {
    if (this.credit === null) this.runstate(RUNSTATE_running);
    this.preemptionPoint();
  }

  /** vcpu_runstate_change: charge the time since the last change to the state we leave. */
  runstate(next: number, at = now()): void {
    const hv = this.c.hv;
    const idx = hv.vcpu(this.c.domid, this.c.vcpu, V.RUNSTATE);
    const prev = hv.vcpus[idx];
    const t = Math.max(at, hv.vcpuTime[this.timeBase + VT.SINCE]);
    const slot = prev === RUNSTATE_running ? VT.RUNNING : prev === RUNSTATE_runnable ? VT.RUNNABLE
      : prev === RUNSTATE_blocked ? VT.BLOCKED : VT.OFFLINE;
    hv.vcpuTime[this.timeBase + slot] += t - hv.vcpuTime[this.timeBase + VT.SINCE];
    hv.vcpuTime[this.timeBase + VT.SINCE] = t;
    Atomics.store(hv.vcpus, idx, next);
  }
}

/** Add one wake-up's latency, from `since` to now, to the counter pair at `word` (sum in µs, then count). */
function wakeLatency(t: SchedTables, word: number, since: number): void {
  if (since <= 0) return;
  Atomics.add(t.i32, word, Math.max(0, Math.round((now() - since) * 1000)));
  Atomics.add(t.i32, word + 1, 1);
}
