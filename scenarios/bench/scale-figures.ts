/*
 * The scale suite's fixed parameters and the figures each row carries: how many guests, the
 * job's depth, Dom0's weight, the warm-up, the repeats, and Jain's fairness index.
 *
 * Xen: what a consolidated host promises (issue 17); the suite itself is ./scale.ts, one row
 * ./scale-row.ts, the report ./scale-summary.ts.
 */
import type { BenchRow } from './types.ts';

export const COUNTS = [1, 2, 4, 8, 16];
export const IMAGE_MIB = 64;
export const GUEST_MIB = 16;
export const DEPTH = 8;
/**
 * Dom0's credit-scheduler weight for this suite (`xl sched-credit -d Domain-0 -w 4096`): the
 * weight of the 16 guests together. Dom0 does about half the CPU work of every guest's request,
 * so at the default 256 it uses far more than its 1/(N+1) share, runs OVER, loses BOOST on wake
 * and waits for a pCPU slot behind the very guests whose I/O it serves (the `dom0SlotWait`
 * counter; on a loaded 2-core machine, at 8 guests 0.33–0.50 of Dom0's busy time at weight 256
 * against 0.06–0.20 at this weight, at 16 guests 0.38–0.62 against 0.19–0.38). Xen leaves Dom0 to
 * the same scheduler as any domain, and its administrators give it a weight high enough to
 * answer I/O (The Book of Xen, Takemura and Crawford, 2009, "Scheduling": "This can lead to
 * trouble if it's not assigned a high enough weight").
 */
export const DOM0_WEIGHT = 256 * 16;
/**
 * Requests each guest makes before the timed window, counted, not timed. A new guest is a new
 * thread whose code V8 compiles on its own, tier after tier, as it runs: one guest reached its
 * steady rate after some 50,000 requests (4 KiB reads at depth 32: 155K, 305K, then 530K IOPS in
 * successive 100 ms). A time-based warm-up gives each of 16 guests sharing two pCPUs a sixteenth of
 * the requests it gives one guest alone, so the large N were timed cold, and the aggregate fell
 * with N for that reason as well as any other.
 */
export const WARMUP_REQUESTS = 40_000;
/**
 * Times the one-guest row is run, the same job on a new guest each time (issue 17: "the same VM,
 * depth and job gave 96K and 190K IOPS in consecutive runs"; goal: a spread of repeats ≤ 15%).
 */
export const REPEATS_AT_1 = 3;
/** The rows run again pinned (ScaleFigures.pinned), back to back with the unpinned ones. */
export const PINNED_COUNTS = [1, 16];

export interface ScaleFigures {
  guests: number;
  perGuestIops: number[];
  minIops: number;
  maxIops: number;
  jain: number;
  createMs: number[];
  createMedianMs: number;
  rssMiBPerGuest: number;
  guestRamMiB: number;
  /** The host's pCPU slots (0: none, the host OS alone schedules the vCPU threads). */
  pcpus: number;
  coresBusy: number;
  slotsHeld: number;
  slotWakeUs: number;
  evtWakeUs: number;
  slotDead: number;
  /** The aggregate of each repeat of this N (the row is the median one), and its cores busy. */
  repeatIops: number[];
  repeatCores: number[];
  /**
   * The share of the window's samples in which Dom0's vCPU thread and the guest's (one guest;
   * with more, the two busiest threads) ran on the same CPU (./thread-placement.ts; null: not
   * measured), and per repeat.
   */
  sameCpu: number | null;
  repeatSameCpu: (number | null)[];
  /**
   * Pinned (PINNED_COUNTS rows): Dom0 under dom0_vcpus_pin (slot 0's core), the guests' hard
   * affinity every other slot (xl.cfg cpus="1-"), each thread pinned to its cores
   * (hypervisor/sched/thread-affinity.ts); with how many threads the kernel confirmed pinned on
   * that host so far (Dom0's and every guest's), how many failed, and why none could be, if so.
   */
  pinned: { threads: number; failed: number; unavailable: string | null } | null;
}

export type ScaleRow = BenchRow & { scale: ScaleFigures };

export function jain(xs: readonly number[]): number {
  const sum = xs.reduce((a, b) => a + b, 0);
  const sq = xs.reduce((a, b) => a + b * b, 0);
  return sq === 0 ? 1 : (sum * sum) / (xs.length * sq);
}
