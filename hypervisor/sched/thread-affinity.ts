/*
 * A vCPU's hard affinity, applied to its host thread: pinning.
 *
 * Xen: a vCPU's hard affinity (xl.cfg `cpus=`, `xl vcpu-pin`, XEN_DOMCTL_setvcpuaffinity) names
 * the physical CPUs it may run on, and the boot option `dom0_vcpus_pin` pins Dom0's vCPU v to
 * pCPU v (docs/misc/xen-command-line.pandoc), the usual way to keep Dom0 and a guest from fighting
 * over one pCPU. Here a pCPU is a slot (./tables.ts): the credit scheduler honours hard affinity
 * when it hands slots out, but the host OS still chooses the core that runs each thread, and on a
 * 2-core machine it often runs Dom0's thread and a guest's on the same core (the scale bench's
 * `same CPU` column, ../../scenarios/bench/thread-placement.ts), so the pair makes one core's
 * progress instead of two. Pinning closes that gap: a thread whose vCPU has a hard affinity is
 * restricted to the host cores behind those slots (slot p → the p-th core this process may use,
 * modulo their number).
 *
 * How, on Linux: Node has no sched_setaffinity, but a thread can learn its kernel thread id
 * (/proc/thread-self links to PID/task/TID; ./tid.ts, run in the vCPU thread), and the control
 * thread runs `taskset -p -c LIST TID` once for it (never per request), then reads the kernel's
 * answer back from /proc/self/task/TID/status (Cpus_allowed_list). Again when `xl vcpu-pin`
 * changes the affinity. Elsewhere than Linux, or without taskset, nothing is pinned and
 * `available` says why: the slots still obey the affinity, the host OS places the threads.
 */
import { execFile } from 'node:child_process';
import { accessSync, constants, readFileSync } from 'node:fs';
import { delimiter, join } from 'node:path';
import { allSlots } from './tables.ts';

/** What pinning one thread came to. */
export interface ThreadPin {
  domid: number;
  vcpu: number;
  tid: number;
  /** The host cores asked for, and the ones the kernel reports the thread may run on (read back). */
  asked: number[];
  readBack: number[] | null;
  error: string | null;
}

/** `0-1,3` → [0, 1, 3]. */
export function parseCpuList(s: string): number[] {
  const out: number[] = [];
  for (const part of s.trim().split(',')) {
    if (part === '') continue;
    const [a, b] = part.split('-').map(Number);
    for (let c = a; c <= (b ?? a); c++) out.push(c);
  }
  return out;
}

/** The kernel's affinity list of one thread of this process, or null. */
export function threadCpus(tid: number): number[] | null {
  try {
    const m = /^Cpus_allowed_list:\s*(\S+)/m.exec(readFileSync(`/proc/self/task/${tid}/status`, 'latin1'));
    return m ? parseCpuList(m[1]) : null;
  } catch {
    return null;
  }
}

function findTaskset(): string | null {
  for (const dir of (process.env.PATH ?? '/usr/bin:/bin').split(delimiter)) {
    const p = join(dir, 'taskset');
    try {
      accessSync(p, constants.X_OK);
      return p;
    } catch { /* not here */ }
  }
  return null;
}

export class ThreadAffinity {
  /** The host cores this process may use (sched_getaffinity, read from /proc), or null. */
  readonly hostCpus: number[] | null;
  private readonly taskset: string | null;
  /** null: threads can be pinned; else why not (said once in the log, and by the bench). */
  readonly unavailable: string | null;
  private readonly tids = new Map<number, number>();
  private readonly pins = new Map<number, ThreadPin>();
  private readonly pending = new Set<Promise<void>>();
  private said = false;
  /** Threads pinned since boot (the kernel's read-back matched what was asked), and attempts that failed. */
  readonly counts = { pinned: 0, failed: 0 };

  constructor(private readonly slots: () => number, private readonly log: (line: string) => void) {
    let cpus: number[] | null = null;
    try {
      const m = /^Cpus_allowed_list:\s*(\S+)/m.exec(readFileSync('/proc/self/status', 'latin1'));
      cpus = m ? parseCpuList(m[1]) : null;
    } catch { /* not Linux */ }
    this.hostCpus = cpus;
    this.taskset = cpus === null ? null : findTaskset();
    this.unavailable = cpus === null ? 'no /proc (not Linux): threads are not pinned'
      : this.taskset === null ? 'no taskset on PATH (util-linux): threads are not pinned' : null;
  }

  /** The host cores behind a slot mask, or null if it allows every slot (nothing to pin). */
  coresOf(mask: number): number[] | null {
    const n = this.slots();
    if (n === 0 || this.hostCpus === null) return null;
    const m = mask & allSlots(n);
    if (m === 0 || m === allSlots(n)) return null;
    const cores = new Set<number>();
    for (let p = 0; p < n; p++) if ((m & (1 << p)) !== 0) cores.add(this.hostCpus[p % this.hostCpus.length]);
    return [...cores].sort((a, b) => a - b);
  }

  /** A vCPU thread told its tid: pin it if its hard affinity is narrower than every slot. */
  threadStarted(domid: number, vcpu: number, tid: number, hardMask: number): void {
    this.tids.set(key(domid, vcpu), tid);
    const cores = this.coresOf(hardMask);
    if (cores !== null) this.apply(domid, vcpu, tid, cores);
  }

  /** vcpu-pin changed a vCPU's hard affinity: follow it (every core again when it allows all). */
  affinityChanged(domid: number, vcpu: number, hardMask: number): void {
    const tid = this.tids.get(key(domid, vcpu));
    if (tid === undefined) return;
    const cores = this.coresOf(hardMask);
    if (cores !== null) this.apply(domid, vcpu, tid, cores);
    else if (this.pins.has(key(domid, vcpu)) && this.hostCpus !== null) this.apply(domid, vcpu, tid, this.hostCpus);
  }

  threadGone(domid: number, vcpu: number): void {
    this.tids.delete(key(domid, vcpu));
    this.pins.delete(key(domid, vcpu));
  }

  /** A vCPU thread's kernel id, if it told it (every vCPU thread does, pinned or not, on Linux). */
  tidOf(domid: number, vcpu: number): number | null {
    return this.tids.get(key(domid, vcpu)) ?? null;
  }

  /** The pins made so far, by vCPU. */
  list(): ThreadPin[] {
    return [...this.pins.values()];
  }

  /** Settles when every taskset started so far has answered (tests, the bench). */
  async settled(): Promise<void> {
    while (this.pending.size > 0) await Promise.all([...this.pending]);
  }

  private apply(domid: number, vcpu: number, tid: number, cores: number[]): void {
    const k = key(domid, vcpu);
    const pin: ThreadPin = { domid, vcpu, tid, asked: cores, readBack: null, error: null };
    this.pins.set(k, pin);
    if (this.taskset === null) {
      pin.error = this.unavailable;
      this.counts.failed++;
      if (!this.said) this.log(`(XEN) vCPU hard affinity: ${this.unavailable}`);
      this.said = true;
      return;
    }
    const done = new Promise<void>((resolve) => {
      execFile(this.taskset!, ['-p', '-c', cores.join(','), String(tid)], (err) => {
        if (err) pin.error = `taskset: ${err.message.split('\n')[0]}`;
        pin.readBack = threadCpus(tid);
        if (pin.error === null && pin.readBack?.join(',') !== cores.join(',')) pin.error = `the kernel reports cores ${pin.readBack?.join(',') ?? '(none: thread gone)'}`;
        if (pin.error === null) this.counts.pinned++;
        else this.counts.failed++;
        if (pin.error !== null) this.log(`(XEN) d${domid}v${vcpu}: could not pin thread ${tid} to cores ${cores.join(',')}: ${pin.error}`);
        resolve();
      });
    });
    this.pending.add(done);
    void done.then(() => this.pending.delete(done));
  }
}

function key(domid: number, vcpu: number): number {
  return domid * 4096 + vcpu;
}
