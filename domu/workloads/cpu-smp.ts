/*
 * cpu-burn on every online vCPU: one job of work units, shared out among the vCPUs that are
 * online, however many that is from moment to moment.
 *
 * Not a Xen component: the guest-side half of vCPU hot-plug's promise. Linux moves a dying
 * CPU's tasks to the others (migrate_tasks) so that taking a CPU away loses no work; here the
 * work is a pool of numbered units in the kernel's SMP page (shared/kernel/smp.ts), each claimed
 * by exactly one vCPU with an atomic add and finished before that vCPU looks at anything else.
 * A vCPU asked to go down stops claiming, finishes the unit it holds, and only then goes
 * (shared/kernel/cpu-hotplug.ts playDead). So every unit is done exactly once, whichever vCPUs
 * come and go: the job's digest, the XOR of every unit's result, proves it (jobDigest computes
 * the expected value without running the job). Units are ./cpu.ts's workUnit, seeded by number.
 */
import type { Kernel } from '../../shared/kernel/kernel.ts';
import { JOB_UNBOUNDED, SMP, SmpArea } from '../../shared/kernel/smp.ts';
import { workUnit } from './cpu.ts';

/** How often a serving vCPU lets its event loop turn (console, xenbus, timers). */
const TURN_MS = 5;

/** Unit i's seed: distinct, never 0 (xorshift would stay at 0). */
export function unitSeed(i: number): number {
  return Math.imul(i + 1, 0x9e3779b9) | 1;
}

/** The digest a job of `units` units must end with, whoever did them. */
export function jobDigest(units: number): number {
  let d = 0;
  for (let i = 0; i < units; i++) d ^= workUnit(unitSeed(i));
  return d >>> 0;
}

/** vCPU 0: open a job of `units` units (JOB_UNBOUNDED: until closeJob). */
export function openJob(smp: SmpArea, units: number): void {
  const w = smp.words;
  Atomics.store(w, SMP.JOB_ACTIVE, 0);
  Atomics.store(w, SMP.JOB_TOTAL, units);
  Atomics.store(w, SMP.JOB_NEXT, 0);
  Atomics.store(w, SMP.JOB_DONE, 0);
  Atomics.store(w, SMP.JOB_DIGEST, 0);
  for (let v = 0; v < 32; v++) Atomics.store(w, SMP.JOB_BY_CPU + v, 0);
  Atomics.add(w, SMP.JOB_GEN, 1);
  Atomics.store(w, SMP.JOB_ACTIVE, 1);
}

/** vCPU 0: stop handing out units (units already claimed are still finished). */
export function closeJob(smp: SmpArea): void {
  Atomics.store(smp.words, SMP.JOB_ACTIVE, 0);
}

export function jobActive(smp: SmpArea): boolean {
  return Atomics.load(smp.words, SMP.JOB_ACTIVE) === 1
    && Atomics.load(smp.words, SMP.JOB_NEXT) < Atomics.load(smp.words, SMP.JOB_TOTAL);
}

export interface JobProgress {
  done: number;
  digest: number;
  /** Units each vCPU finished. */
  byCpu: number[];
}

export function jobProgress(smp: SmpArea, nrCpus: number): JobProgress {
  const w = smp.words;
  return {
    done: Atomics.load(w, SMP.JOB_DONE), digest: Atomics.load(w, SMP.JOB_DIGEST) >>> 0,
    byCpu: Array.from({ length: nrCpus }, (_, v) => Atomics.load(w, SMP.JOB_BY_CPU + v)),
  };
}

/**
 * Serve the job from this vCPU: claim a unit, do it, publish it, pass a preemption point; until
 * the job has no units left, is closed, or `stop()` (checked before every claim, never between
 * a claim and its publication). `each` runs after every unit (vCPU 0 reports from there).
 */
export async function serveJob(k: Kernel, smp: SmpArea, stop: () => boolean, each?: () => void): Promise<number> {
  const w = smp.words;
  const total = Atomics.load(w, SMP.JOB_TOTAL);
  let mine = 0;
  let lastTurn = k.clock.systemTimeNs();
  while (Atomics.load(w, SMP.JOB_ACTIVE) === 1 && !stop()) {
    const i = Atomics.add(w, SMP.JOB_NEXT, 1);
    if (total !== JOB_UNBOUNDED && i >= total) break;
    const r = workUnit(unitSeed(i));
    Atomics.xor(w, SMP.JOB_DIGEST, r);
    Atomics.add(w, SMP.JOB_BY_CPU + k.vcpu, 1);
    Atomics.add(w, SMP.JOB_DONE, 1);
    mine++;
    k.preempt();
    each?.();
    const now = k.clock.systemTimeNs();
    if (now - lastTurn >= TURN_MS * 1e6) {
      lastTurn = now;
      await new Promise(setImmediate);
    }
  }
  return mine;
}
