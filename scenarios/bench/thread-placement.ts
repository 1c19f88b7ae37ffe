/*
 * Where the host OS runs the benchmark's two busiest threads: on one CPU, or on two.
 *
 * Not a Xen concept: a measuring aid for the scale suite's one-guest rate, which comes in two
 * modes (issue 17: "96K and 190K IOPS in consecutive runs"). With one guest, two threads do the
 * work: Dom0's vCPU (blkback) and the guest's vCPU (blkfront and fio). Each holds a pCPU slot, but a
 * slot is a permission, not a core: the host OS chooses the cores, and when it keeps both threads
 * on one core, each runs only while the other waits, and the pair makes about one core's worth of
 * progress instead of nearly two ("cores busy" ~1.0 against ~1.7). Linux reports each thread's
 * last CPU (field 39 of /proc/self/task/TID/stat) and its CPU time (fields 14 and 15); sampling
 * them says which mode a run was in. Elsewhere than Linux: no figure (null).
 */
import { readdirSync, readFileSync } from 'node:fs';

const TASKS = '/proc/self/task';
const SAMPLE_MS = 10;
/** How long the busiest threads are looked for before sampling starts. */
const PICK_MS = 60;

interface Stat { ticks: number; cpu: number }

function stat(tid: string): Stat | null {
  try {
    const s = readFileSync(`${TASKS}/${tid}/stat`, 'latin1');
    // The command name (field 2) is in parentheses and may hold spaces: split after it.
    const f = s.slice(s.lastIndexOf(')') + 2).split(' ');
    // f[0] is field 3 (state): field n is f[n - 3].
    return { ticks: Number(f[11]) + Number(f[12]), cpu: Number(f[36]) };
  } catch {
    return null;
  }
}

/**
 * Start watching; the returned function stops and gives the share of samples (0..1) in which the
 * two threads shared a CPU, or null if not measurable. The two: `known` (kernel thread ids: the
 * vCPU threads of Dom0 and the guest, as they told the host, hypervisor/sched/thread-affinity.ts),
 * else the two that used the most CPU in the first PICK_MS (which may be other threads: V8's
 * compiler and GC helpers, the control thread).
 */
export function watchPlacement(known: readonly [number, number] | null = null): () => number | null {
  let tids: string[];
  try {
    tids = readdirSync(TASKS);
  } catch {
    return () => null;
  }
  const before = new Map(tids.map((t) => [t, stat(t)?.ticks ?? 0]));
  let pair: [string, string] | null = known ? [String(known[0]), String(known[1])] : null;
  let same = 0;
  let n = 0;
  const sample = setInterval(() => {
    if (pair === null) return;
    const a = stat(pair[0]);
    const b = stat(pair[1]);
    if (a === null || b === null) return;
    n++;
    if (a.cpu === b.cpu) same++;
  }, SAMPLE_MS);
  const pick = setTimeout(() => {
    if (pair !== null) return;
    const used = tids.map((t) => [t, (stat(t)?.ticks ?? 0) - (before.get(t) ?? 0)] as const).sort((x, y) => y[1] - x[1]);
    if (used.length >= 2 && used[1][1] > 0) pair = [used[0][0], used[1][0]];
  }, PICK_MS);
  return () => {
    clearInterval(sample);
    clearTimeout(pick);
    return n > 0 ? same / n : null;
  };
}
