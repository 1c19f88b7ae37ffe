/*
 * The guest kernel's SMP state: which of its vCPUs are online, which are asked to go, and work
 * shared between them. One page of guest RAM that every vCPU's copy of the kernel sees.
 *
 * Linux: the cpu_online_mask and the per-CPU hotplug state (kernel/cpu.c) that every CPU of a
 * kernel reads, and the work a dying CPU hands to the others (migrate_tasks) so none is lost.
 * ringvisor runs one copy of the kernel per vCPU thread, each with its own heap (./pages.ts), so
 * what they share must live in guest memory: this page, the highest RAM page below the builder's
 * special pages, which every vCPU's allocator leaves alone (smpAreaGfn). Words are read and
 * written with Atomics: the vCPUs are threads running at once.
 *
 * Layout (Int32 words):
 *   0 .. 31   CPU_STATE[v]   CPU_DEAD (0: down, or never up), CPU_ONLINE, CPU_DYING (asked to go down)
 *   32        JOB_GEN        bumped when a shared job starts (0: none yet)
 *   33        JOB_ACTIVE     1 while the job hands out units
 *   34        JOB_TOTAL      units in the job (JOB_UNBOUNDED: until stopped)
 *   35        JOB_NEXT       the next unit to claim (Atomics.add: each unit goes to one vCPU)
 *   36        JOB_DONE       units finished
 *   37        JOB_DIGEST     XOR of the finished units' results: the same whichever vCPU did which
 *   64 .. 95  JOB_BY_CPU[v]  units vCPU v finished
 * The page is fresh RAM at boot (the hypervisor scrubs frames): every state starts at CPU_DEAD.
 */
import type { StartInfo } from './start-info.ts';
import type { Kernel } from './kernel.ts';

export const SMP_MAX_CPUS = 32;
export const CPU_DEAD = 0;
export const CPU_ONLINE = 1;
export const CPU_DYING = 2;

export const SMP = {
  CPU_STATE: 0,
  JOB_GEN: 32,
  JOB_ACTIVE: 33,
  JOB_TOTAL: 34,
  JOB_NEXT: 35,
  JOB_DONE: 36,
  JOB_DIGEST: 37,
  JOB_BY_CPU: 64,
} as const;
export const JOB_UNBOUNDED = 0x7fff_ffff;

/** The page: the highest RAM gfn below start_info, the xenstore and the console pages. */
export function smpAreaGfn(si: Pick<StartInfo, 'start_info_gfn' | 'store_gfn' | 'console_gfn'>): number {
  return Math.min(si.start_info_gfn, si.store_gfn, si.console_gfn) - 1;
}

/** One vCPU's view of the page. */
export class SmpArea {
  readonly words: Int32Array;

  constructor(k: Kernel) {
    this.words = k.memory.pageWords(smpAreaGfn(k.si), true);
  }

  state(cpu: number): number {
    return Atomics.load(this.words, SMP.CPU_STATE + cpu);
  }
  setState(cpu: number, s: number): void {
    Atomics.store(this.words, SMP.CPU_STATE + cpu, s);
  }
  /** Ask `cpu` to go down, if it is online (a CAS: it may be going already). */
  askToDie(cpu: number): boolean {
    return Atomics.compareExchange(this.words, SMP.CPU_STATE + cpu, CPU_ONLINE, CPU_DYING) === CPU_ONLINE;
  }
  online(nr: number): number[] {
    const out: number[] = [];
    for (let v = 0; v < nr && v < SMP_MAX_CPUS; v++) if (this.state(v) !== CPU_DEAD) out.push(v);
    return out;
  }
}
