/*
 * The credit scheduler alone, on a simulated clock: no threads, no host, exact timing.
 *
 * Not a Xen component: a measuring aid. The bench suite `sched` measures shares and caps with
 * real guests on real threads, where a loaded host delays ticks, accounting and preemption
 * points; this runs the same code (hypervisor/sched/credit.ts, credit-acct.ts) with time
 * advanced in 0.1 ms steps, every vCPU always runnable, each running vCPU taking its tick every
 * 10 ms at a preemption point and acting on a reschedule request at the next step, the control
 * thread's tick every 10 ms. What it gives is what the algorithm gives; the difference from the
 * threaded figures is the host's doing.
 */
import { CreditScheduler } from '../../hypervisor/sched/credit.ts';
import { HostScheduler } from '../../hypervisor/sched/host-sched.ts';
import { CSCHED_TICKS_PER_TSLICE, CSCHED_DEFAULT_TSLICE_MS, GF, P, unitOf } from '../../hypervisor/sched/tables.ts';
import { HypervisorState, MAX_VCPUS, V, VREQ_RESCHED, allocateBuffers } from '../../hypervisor/state.ts';

const STEP_MS = 0.1;
const TICK_MS = CSCHED_DEFAULT_TSLICE_MS / CSCHED_TICKS_PER_TSLICE;

/**
 * CPU-bound single-vCPU domains with these weights and caps on `pcpus` slots: each one's share
 * (%) of the running time over `ms` simulated ms, after `warmMs` to settle (every vCPU starts
 * UNDER with no credit; the threaded bench settles for as long before measuring).
 */
export function simulateShares(doms: readonly { weight: number; cap?: number }[], ms: number, pcpus = 1, warmMs = 300): number[] {
  const hv = new HypervisorState(allocateBuffers(1));
  const hs = new HostScheduler(hv, pcpus);
  hs.close(); // no real timer: this loop is the clock
  const cs = new CreditScheduler(hv, hs.t);
  const units = doms.map((d, i) => {
    cs.initDomain(i + 1, d.weight, d.cap ?? 0);
    cs.initUnit(unitOf(i + 1, 0), 0, 0);
    return unitOf(i + 1, 0);
  });
  let t = hs.t.f64[GF.BOOT];
  hs.t.f64[GF.LAST_ACCT] = t;
  for (const u of units) cs.wake(u, t);
  const ran = units.map(() => 0);
  const nextTick = new Map<number, number>();
  const request = (u: number) => hv.vcpu(Math.floor(u / MAX_VCPUS), u % MAX_VCPUS, V.REQUEST);
  let controlTick = t + TICK_MS;
  const warmSteps = Math.round(warmMs / STEP_MS);
  for (let step = 0; step < (warmMs + ms) / STEP_MS; step++) {
    t += STEP_MS;
    for (let p = 0; p < pcpus; p++) {
      const u = hs.t.i32[hs.t.p(p, P.CURR)] - 1;
      if (u < 0) continue;
      if (step >= warmSteps) ran[units.indexOf(u)] += STEP_MS;
      if (!nextTick.has(u)) nextTick.set(u, t + TICK_MS);
      const tick = t >= nextTick.get(u)!;
      const asked = (Atomics.and(hv.vcpus, request(u), ~VREQ_RESCHED) & VREQ_RESCHED) !== 0;
      if (!tick && !asked) continue;
      if (tick) nextTick.set(u, t + TICK_MS);
      if (!cs.schedule(u, t, tick)) nextTick.delete(u); // it queued itself; the slot has its next holder
    }
    if (t >= controlTick) {
      controlTick += TICK_MS;
      cs.tick(t);
    }
  }
  const total = ran.reduce((a, b) => a + b, 0);
  return ran.map((r) => (r / total) * 100);
}
