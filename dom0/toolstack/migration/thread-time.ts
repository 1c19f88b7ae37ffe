/*
 * The toolstack thread's own CPU time and its waits for a CPU, to tell a migration's work from
 * the machine's contention: a live move's rounds share the host's cores with the guest still
 * running (its workload, its network), while a non-live copy has them to itself.
 *
 * Not Xen: xl has no such figure; Linux's schedstat (Documentation/scheduler/sched-stats.rst,
 * /proc/<pid>/task/<tid>/schedstat: time on a CPU, time runnable on a run queue waiting for one,
 * both in ns) read for this thread (/proc/thread-self). Elsewhere, or without schedstats, null.
 */
import { readFileSync } from 'node:fs';

export interface ThreadTime {
  /** Milliseconds this thread ran on a CPU. */
  cpuMs: number;
  /** Milliseconds it was runnable and waited for a CPU (others had them). */
  runqMs: number;
}

export function threadTime(): ThreadTime | null {
  try {
    const [run, wait] = readFileSync('/proc/thread-self/schedstat', 'latin1').trim().split(/\s+/).map(Number);
    return Number.isFinite(run) && Number.isFinite(wait) ? { cpuMs: run / 1e6, runqMs: wait / 1e6 } : null;
  } catch {
    return null;
  }
}

/** From `a` to `b`, or null if either is unknown. */
export function threadTimeSince(a: ThreadTime | null, b: ThreadTime | null = threadTime()): ThreadTime | null {
  return a && b ? { cpuMs: b.cpuMs - a.cpuMs, runqMs: b.runqMs - a.runqMs } : null;
}
