/*
 * CPU workloads: `cpu-burn` (a CPU hog) and `io-wake` (an I/O-bound guest: sleep, wake, a little
 * work, sleep again), the two kinds of guest a CPU scheduler must serve at once.
 *
 * Not a Xen component: the classic pair behind scheduler comparisons (a hog beside a latency-
 * sensitive guest; credit.c's BOOST exists for the second). Both keep time only through the
 * hypervisor (the guest clock, shared/kernel/time.ts) and sleep only on VIRQ_TIMER.
 *
 * cpu-burn's work unit is deterministic: UNIT_ROUNDS rounds of an xorshift32 mix, a few tens of
 * microseconds on these machines. After every unit it passes a preemption point (Kernel.preempt),
 * which is where the scheduler can take its pCPU away; every TURN_MS it lets its event loop turn,
 * so its console and xenbus keep being served. The digest proves the work was done.
 */
import type { Kernel } from '../../shared/kernel/kernel.ts';

const UNIT_ROUNDS = 20_000;
const TURN_MS = 5;

export interface BurnResult {
  units: number;
  seconds: number;
  unitsPerSec: number;
  digest: number;
}

/** One work unit: xorshift32 rounds from `x`. */
export function workUnit(x: number): number {
  for (let i = 0; i < UNIT_ROUNDS; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
  }
  return x | 0;
}

/**
 * Burn for `seconds` of guest system time (Infinity: until `stop()` says so), calling `report`
 * every `reportMs` with the units done so far.
 */
export async function runCpuBurn(k: Kernel, opts: { seconds: number; reportMs?: number; stop?: () => boolean },
  report?: (r: BurnResult) => void): Promise<BurnResult> {
  const t0 = k.clock.systemTimeNs();
  const end = t0 + opts.seconds * 1e9;
  let units = 0;
  let x = 0x9e3779b9 | 0;
  let lastTurn = t0;
  let lastReport = t0;
  const result = (now: number): BurnResult => {
    const seconds = (now - t0) / 1e9;
    return { units, seconds, unitsPerSec: seconds > 0 ? units / seconds : 0, digest: x >>> 0 };
  };
  for (;;) {
    x = workUnit(x);
    units++;
    k.preempt();
    const now = k.clock.systemTimeNs();
    if (now >= end || opts.stop?.() === true) return result(now);
    if (report && opts.reportMs !== undefined && now - lastReport >= opts.reportMs * 1e6) {
      lastReport = now;
      report(result(now));
    }
    if (now - lastTurn >= TURN_MS * 1e6) {
      lastTurn = now;
      await new Promise(setImmediate);
    }
  }
}

export interface WakeResult {
  wakes: number;
  /** How late each wake-up ran after its deadline, in µs: median, 99th percentile, max. */
  medianUs: number;
  p99Us: number;
  maxUs: number;
  /** Wake-ups that resolved before their deadline (must be 0: timers never fire early). */
  early: number;
}

/**
 * io-wake: `count` times, sleep `periodMs` on the guest timer, then measure how late we run
 * (guest system time now minus the deadline), do `workUnits` of work, and go round again.
 */
export async function runIoWake(k: Kernel, opts: { count: number; periodMs: number; workUnits?: number }): Promise<WakeResult> {
  const late: number[] = [];
  let early = 0;
  let x = 1;
  for (let i = 0; i < opts.count; i++) {
    const deadline = k.clock.systemTimeNs() + opts.periodMs * 1e6;
    await k.timers.until(deadline);
    const lateNs = k.clock.systemTimeNs() - deadline;
    if (lateNs < 0) early++;
    late.push(lateNs / 1000);
    for (let w = 0; w < (opts.workUnits ?? 1); w++) x = workUnit(x);
  }
  late.sort((a, b) => a - b);
  const at = (q: number) => late.length === 0 ? 0 : late[Math.min(late.length - 1, Math.floor(q * late.length))];
  return { wakes: late.length, medianUs: at(0.5), p99Us: at(0.99), maxUs: late.length ? late[late.length - 1] : 0, early };
}
