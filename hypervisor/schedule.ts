/*
 * The vCPU's side of scheduling: blocking, preemption points, pause, runstate accounting.
 *
 * Xen: xen/common/sched/core.c (do_sched_op: SCHEDOP_block, SCHEDOP_yield, SCHEDOP_shutdown;
 * vcpu_runstate_change; domain_pause) and the runstate area of xen/include/public/vcpu.h.
 *
 * Each vCPU is a host thread, so the host OS, not ringvisor, picks which runs on the two cores.
 * What ringvisor controls is when a vCPU may run at all. The control thread never interrupts a
 * vCPU; it sets a request bit in the vCPU's record and kicks it, and the vCPU acts on the
 * request at its next preemption point: entering any hypercall, and waking from SCHEDOP_block.
 * Nothing is held at a preemption point, so stopping there is always safe. A paused vCPU waits
 * on its domain's pause count; a stopped one ends its thread.
 *
 * A vCPU blocks by sleeping on its evtchn_upcall_pending word (Atomics.waitAsync), which event
 * delivery sets before it wakes the vCPU, so a wake-up between "nothing pending" and "sleep" is
 * never lost: the wait only sleeps if the word is still 0.
 */
import { vcpu_info } from '../shared/public/xen.ts';
import type { Caller } from './caller.ts';
import {
  D, RUNSTATE_blocked, RUNSTATE_offline, RUNSTATE_runnable, RUNSTATE_running, V, VREQ_STOP, VT,
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
  private readonly timeBase: number;

  /** Set by the thread entry: how to leave the thread (it must not return into guest code). */
  exit: (code: number) => never = () => { throw new Error('vCPU exit not wired'); };

  constructor(private readonly c: Caller) {
    this.request = c.hv.vcpu(c.domid, c.vcpu, V.REQUEST);
    this.upcall = c.vcpu * VCPU_WORDS + UPCALL_PENDING;
    this.pauseWord = c.domid * D.WORDS + D.PAUSE_COUNT;
    this.timeBase = (c.domid * MAX_VCPUS + c.vcpu) * VT.WORDS;
  }

  /** The thread has started: account from now. */
  online(): void {
    this.c.hv.vcpuTime[this.timeBase + VT.SINCE] = now();
    Atomics.store(this.c.hv.vcpus, this.c.hv.vcpu(this.c.domid, this.c.vcpu, V.ALIVE), 1);
    this.runstate(RUNSTATE_running);
  }

  /** Every hypercall passes through here: one load when nothing is asked of us. */
  preemptionPoint(): void {
    if (Atomics.load(this.c.hv.vcpus, this.request) !== 0) this.handleRequest();
  }

  private handleRequest(): void {
    const hv = this.c.hv;
    for (;;) {
      const req = Atomics.exchange(hv.vcpus, this.request, 0);
      if ((req & VREQ_STOP) !== 0) this.stop();
      const paused = Atomics.load(hv.domains, this.pauseWord);
      if (paused === 0) return;
      // Paused: sleep on the pause count until it changes (unpause, or destroy's kick).
      this.runstate(RUNSTATE_runnable);
      Atomics.wait(hv.domains, this.pauseWord, paused);
      this.runstate(RUNSTATE_running);
    }
  }

  /** SCHEDOP_block. */
  async block(): Promise<void> {
    this.preemptionPoint();
    const si = this.c.hv.sharedInfo[this.c.domid];
    if (Atomics.load(si, this.upcall) !== 0) return;
    this.c.count('blocks');
    this.runstate(RUNSTATE_blocked);
    const w = Atomics.waitAsync(si, this.upcall, 0);
    if (w.async) await w.value;
    this.runstate(RUNSTATE_running);
    this.preemptionPoint();
  }

  /** Leave the thread for good (destroy, shutdown). Never returns. */
  stop(): never {
    this.runstate(RUNSTATE_offline);
    Atomics.store(this.c.hv.vcpus, this.c.hv.vcpu(this.c.domid, this.c.vcpu, V.ALIVE), 0);
    return this.exit(0);
  }

  /** vcpu_runstate_change: charge the time since the last change to the state we leave. */
  runstate(next: number): void {
    const hv = this.c.hv;
    const idx = hv.vcpu(this.c.domid, this.c.vcpu, V.RUNSTATE);
    const prev = hv.vcpus[idx];
    const t = now();
    const slot = prev === RUNSTATE_running ? VT.RUNNING : prev === RUNSTATE_runnable ? VT.RUNNABLE
      : prev === RUNSTATE_blocked ? VT.BLOCKED : VT.OFFLINE;
    hv.vcpuTime[this.timeBase + slot] += t - hv.vcpuTime[this.timeBase + VT.SINCE];
    hv.vcpuTime[this.timeBase + VT.SINCE] = t;
    Atomics.store(hv.vcpus, idx, next);
  }
}
