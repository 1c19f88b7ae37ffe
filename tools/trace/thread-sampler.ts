/*
 * Per-thread CPU time and run-queue waits, sampled beside a trace: how much of a phase a thread
 * spent running and how much waiting for a core, so that a timeline taken on a loaded machine
 * says which of its milliseconds are work and which are contention.
 *
 * Not Xen: xenalyze derives each vCPU's runstate times from the scheduler's trace records; a
 * ringvisor vCPU is a host thread whose own scheduler is Linux's, so the figures come from Linux's
 * schedstat (Documentation/scheduler/sched-stats.rst: /proc/<pid>/task/<tid>/schedstat holds the
 * ns a thread ran and the ns it waited on a run queue). A small worker reads the files of the
 * threads it is given every SAMPLE_MS (this process's main thread is no place for it: it stalls
 * for tens of ms during a migration, which is part of what is measured) into a shared buffer; the
 * caller then asks what each thread did between two times on the machine's clock
 * (performance.timeOrigin + now, as the trace's). Reading a handful of files a millisecond costs
 * the sampler well under a tenth of a core.
 */
import { Worker } from 'node:worker_threads';

const SAMPLE_MS = 1;
const MAX_TIDS = 8;
const SLOTS = 1 << 16; // samples kept (a ring): a minute at 1 ms
/* Control words: 0 run flag, 1 samples written; then the tids. */
const C_RUN = 0, C_COUNT = 1, C_TIDS = 2;

const WORKER = `
const { workerData } = require('node:worker_threads');
const { readFileSync } = require('node:fs');
const ctl = new Int32Array(workerData.ctl);
const rows = new Float64Array(workerData.rows);
const sleep = new Int32Array(new SharedArrayBuffer(4));
const pid = process.pid;
while (Atomics.load(ctl, ${C_RUN}) === 1) {
  const t = performance.timeOrigin + performance.now();
  const n = Atomics.load(ctl, ${C_COUNT});
  const base = (n % ${SLOTS}) * ${1 + 2 * MAX_TIDS};
  rows[base] = t;
  for (let i = 0; i < ${MAX_TIDS}; i++) {
    const tid = Atomics.load(ctl, ${C_TIDS} + i);
    let run = NaN, wait = NaN;
    if (tid > 0) {
      try {
        const f = readFileSync('/proc/' + pid + '/task/' + tid + '/schedstat', 'latin1').split(' ');
        run = Number(f[0]) / 1e6; wait = Number(f[1]) / 1e6;
      } catch {}
    }
    rows[base + 1 + 2 * i] = run;
    rows[base + 2 + 2 * i] = wait;
  }
  Atomics.store(ctl, ${C_COUNT}, n + 1);
  Atomics.wait(sleep, 0, 0, ${SAMPLE_MS});
}
`;

/** What one thread did between two times: ms on a CPU, ms runnable waiting for one. */
export interface ThreadSpan { cpuMs: number; runqMs: number }

export class ThreadSampler {
  private readonly ctl = new Int32Array(new SharedArrayBuffer(4 * (C_TIDS + MAX_TIDS)));
  private readonly rows = new Float64Array(new SharedArrayBuffer(8 * SLOTS * (1 + 2 * MAX_TIDS)));
  private readonly names: string[] = [];
  private worker: Worker | null = null;

  /** Watch thread `tid` (this process's) under `name`; false if it is unknown or no slot is left. */
  watch(name: string, tid: number | null): boolean {
    if (tid === null || tid <= 0) return false;
    const i = this.names.indexOf(name);
    const slot = i >= 0 ? i : this.names.length;
    if (slot >= MAX_TIDS) return false;
    this.names[slot] = name;
    Atomics.store(this.ctl, C_TIDS + slot, tid);
    return true;
  }

  start(): void {
    if (this.worker !== null) return;
    Atomics.store(this.ctl, C_RUN, 1);
    Atomics.store(this.ctl, C_COUNT, 0);
    this.worker = new Worker(WORKER, { eval: true, workerData: { ctl: this.ctl.buffer, rows: this.rows.buffer } });
    this.worker.unref();
  }

  async stop(): Promise<void> {
    Atomics.store(this.ctl, C_RUN, 0);
    const w = this.worker;
    this.worker = null;
    if (w) await new Promise<void>((r) => { w.once('exit', () => r()); });
  }

  /** Each watched thread's CPU and run-queue ms between machine times `from` and `to` (nearest samples). */
  between(from: number, to: number): Map<string, ThreadSpan> {
    const out = new Map<string, ThreadSpan>();
    const n = Atomics.load(this.ctl, C_COUNT);
    const row = (k: number) => (k % SLOTS) * (1 + 2 * MAX_TIDS);
    const at = (t: number) => { // the last sample at or before t (else the first)
      let best = Math.max(0, n - SLOTS);
      for (let k = best; k < n; k++) if (this.rows[row(k)] <= t) best = k; else break;
      return row(best);
    };
    if (n === 0) return out;
    const a = at(from), b = at(to);
    this.names.forEach((name, i) => {
      const cpu = this.rows[b + 1 + 2 * i] - this.rows[a + 1 + 2 * i];
      const runq = this.rows[b + 2 + 2 * i] - this.rows[a + 2 + 2 * i];
      if (Number.isFinite(cpu) && Number.isFinite(runq)) out.set(name, { cpuMs: cpu, runqMs: runq });
    });
    return out;
  }
}
