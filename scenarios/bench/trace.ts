/*
 * The trace suite: what recording costs, both figures issue 18 asks for from one run.
 *
 * The same fio job (4 KiB random reads, depth 32) over the PV disk and the emulated (DMA) disk,
 * by three contestants, each a process of its own booting its own block host
 * (./trace-cost-child.ts), taking turns repeat by repeat in an order rotated each time:
 *   none  this tree with every trace point cut out of the source (./strip-trace.ts: Xen built
 *         without trace buffers), the baseline;
 *   off   this tree as it is, tracing off (the mask 0: each trace point one load and a branch);
 *   on    this tree, every class on, drained every DRAIN_MS as the recorder does.
 * Ratios per path and policy: off/none (goal ≥ 0.98: tracing compiled in costs nothing when
 * off) and on/off (what recording costs). Each row keeps its repeats, min and max, and the
 * trace records written and lost (a slot's buffer full between two drains, as xentrace loses
 * them when it falls behind) per timed request.
 *
 * The ratio is taken per round and then the median of the rounds (with quartiles and range):
 * the three runs of one round are back to back, so whatever else the machine did then weighs on
 * all three, and a ratio of two runs a second apart is steadier than a ratio of two medians
 * taken over the whole suite (on a shared machine the repeats of one contestant spread by ±10%,
 * far more than the 2% the goal is about). The ratio of the medians is printed beside it.
 *
 * Why a copy of this tree with the trace points cut rather than the commit before them: that
 * commit differs in everything landed since, so it would measure all of that; the cut copy
 * differs in exactly the trace points (strip-trace.ts refuses a trace point it cannot cut).
 * Why three processes: `none` cannot share a process with the others (its modules are other
 * files), and giving `off` and `on` a process each keeps the three alike.
 *
 * Xen: what xentrace costs is the question its -e mask answers: tb_event_mask is read at each
 * trace point, and a record is written only when its class is set.
 */
import { fork, type ChildProcess } from 'node:child_process';
import { closeSync, mkdtempSync, openSync, rmSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import type { FioJob } from '../../domu/workloads/fio.ts';
import type { DiskPath } from '../block/protocol.ts';
import { DRAIN_MS } from '../../tools/trace/record.ts';
import { copyTree } from './strip-trace.ts';
import type { CostMode, FromChild, ToChild } from './trace-cost-child.ts';
import { repeatFields, type BenchRow, type Sample, type SuiteOptions } from './types.ts';

const ROOT = resolve(import.meta.dirname, '../..');
const IMAGE_MIB = 64;
const BS = 4096;
const DEPTH = 32;
const MODES: CostMode[] = ['none', 'off', 'on'];

/** A contestant's process and its messages, in order. */
class Contestant {
  readonly child: ChildProcess;
  private readonly queue: FromChild[] = [];
  private waiter: (() => void) | null = null;
  private exited: string | null = null;

  constructor(readonly mode: CostMode, tree: string, wait: string) {
    this.child = fork(join(tree, 'scenarios/bench/trace-cost-child.ts'), [mode, wait], { cwd: tree, execArgv: ['--import', 'tsx'], stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
    this.child.on('message', (m: FromChild) => { this.queue.push(m); this.waiter?.(); });
    this.child.on('exit', (code, sig) => { this.exited = `exited (${code ?? sig})`; this.waiter?.(); });
  }

  send(m: ToChild): void { this.child.send(m); }

  async next<K extends FromChild['kind']>(kind: K): Promise<Extract<FromChild, { kind: K }>> {
    for (;;) {
      const m = this.queue.shift();
      if (m?.kind === 'error') throw new Error(`trace suite, ${this.mode}: ${m.message}`);
      if (m?.kind === kind) return m as Extract<FromChild, { kind: K }>;
      if (m) throw new Error(`trace suite, ${this.mode}: expected ${kind}, got ${m.kind}`);
      if (this.exited) throw new Error(`trace suite, ${this.mode}: ${this.exited}`);
      await new Promise<void>((r) => { this.waiter = r; });
      this.waiter = null;
    }
  }

  async close(): Promise<void> {
    if (this.exited) return;
    const gone = new Promise<void>((r) => this.child.once('exit', () => r()));
    this.send({ cmd: 'exit' });
    await gone;
  }
}

export async function benchTrace(opts: SuiteOptions): Promise<BenchRow[]> {
  const say = opts.progress ?? (() => {});
  // A multiple of three, so each contestant goes first, second and third equally often.
  const repeats = opts.quick ? 3 : 12;
  const work = mkdtempSync(join(tmpdir(), 'ringvisor-bench-trace-'));
  const rows: BenchRow[] = [];
  try {
    const cut = copyTree(ROOT, join(work, 'none'), true);
    copyTree(ROOT, join(work, 'intact'), false);
    say(`trace: ${cut} trace points cut from the baseline copy (${join(work, 'none')})`);
    const image = join(work, 'disk.img');
    const fd = openSync(image, 'w');
    const chunk = Buffer.alloc(1 << 20, 0x5a);
    for (let m = 0; m < IMAGE_MIB; m++) writeSync(fd, chunk, 0, chunk.length, m << 20);
    closeSync(fd);
    const jobs: FioJob[] = Array.from({ length: repeats }, (_, i) => ({
      rw: 'randread', bs: BS, iodepth: DEPTH, ios: 1e9, size: IMAGE_MIB << 20,
      runtimeMs: opts.quick ? 150 : 500, warmupMs: opts.quick ? 30 : 100, seed: 11 + i,
    }));
    for (const wait of opts.waits) {
      const cs = MODES.map((m) => new Contestant(m, join(work, m === 'none' ? 'none' : 'intact'), wait));
      try {
        await Promise.all(cs.map((c) => c.next('booted')));
        for (const path of ['pv', 'emu-dma'] as DiskPath[]) {
          say(`trace (wait=${wait}): ${path}, ${repeats} repeats of trace points cut / off / on, taking turns`);
          for (const c of cs) c.send({ cmd: 'run', path, image, jobs });
          for (let i = 0; i < repeats; i++) {
            // none, off, on; then off, on, none; ...: no contestant always goes first.
            for (let k = 0; k < cs.length; k++) {
              const c = cs[(i + k) % cs.length]!;
              c.send({ cmd: 'go', i });
              const d = await c.next('done');
              if (d.i !== i) throw new Error(`trace suite, ${c.mode}: repeat ${d.i} ended, expected ${i}`);
            }
          }
          for (const c of cs) {
            const { samples, records, lost } = await c.next('samples');
            if (c.mode === 'on' && records === 0) throw new Error(`trace suite: tracing on recorded nothing on ${path}`);
            if (c.mode !== 'on' && records !== 0) throw new Error(`trace suite: ${records} records with tracing ${c.mode} on ${path}`);
            rows.push(row(path, wait, c.mode, samples, records, lost));
          }
        }
      } finally {
        await Promise.all(cs.map((c) => c.close()));
      }
    }
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
  return rows;
}

const LABEL: Record<CostMode, string> = { none: 'trace points cut', off: 'tracing off', on: 'tracing on' };

function row(path: DiskPath, wait: BenchRow['wait'], mode: CostMode, samples: Sample[], records: number, lost: number): BenchRow {
  const fields = repeatFields(samples);
  const ios = Math.max(1, samples.reduce((a, x) => a + (x.ios ?? 0), 0));
  return {
    suite: 'trace', path, wait, workload: `rand-read, ${LABEL[mode]}`, blockSize: BS, queueDepth: DEPTH,
    ...fields, iops: fields.reqPerSec, MBps: (fields.reqPerSec * BS) / 1e6, counters: { traceRecords: records / ios, traceLost: lost / ios }, engine: `trace-${mode}`,
  };
}

/**
 * a / b round by round (the repeats' samples, in order: round i of each ran back to back), as
 * the median of the rounds with quartiles and range; null without samples from both.
 */
export function pairedRatio(a: BenchRow | undefined, b: BenchRow | undefined): { median: number; q1: number; q3: number; min: number; max: number; n: number } | null {
  const n = Math.min(a?.samples?.length ?? 0, b?.samples?.length ?? 0);
  if (n === 0) return null;
  const r = Array.from({ length: n }, (_, i) => a!.samples![i]!.reqPerSec / b!.samples![i]!.reqPerSec).sort((x, y) => x - y);
  const at = (q: number) => {
    const x = q * (n - 1);
    const lo = Math.floor(x);
    return r[lo]! + (r[Math.min(n - 1, lo + 1)]! - r[lo]!) * (x - lo);
  };
  return { median: at(0.5), q1: at(0.25), q3: at(0.75), min: r[0]!, max: r[n - 1]!, n };
}

/** "off / cut" and "on / off" per path and policy, with the spread of the repeats behind them. */
export function traceSummary(rows: readonly BenchRow[]): string | null {
  const lines: string[] = [];
  const find = (r: BenchRow, mode: CostMode) => rows.find((o) => o.suite === 'trace' && o.engine === `trace-${mode}` && o.path === r.path && o.wait === r.wait);
  const spread = (r: BenchRow) => `median ${r.reqPerSec.toFixed(0)}/s, min ${r.min?.toFixed(0)}, max ${r.max?.toFixed(0)}`;
  for (const off of rows) {
    if (off.suite !== 'trace' || off.engine !== 'trace-off') continue;
    const none = find(off, 'none');
    const on = find(off, 'on');
    // The headline: the median of the per-round ratios where there are samples, else the ratio of the medians.
    const ratio = (a: BenchRow | undefined, b: BenchRow | undefined) => {
      const p = pairedRatio(a, b);
      return p ? p.median.toFixed(3) : a && b ? (a.reqPerSec / b.reqPerSec).toFixed(3) : 'n/a';
    };
    lines.push(`  ${off.path.padEnd(8)} wait=${off.wait}: off / cut = ${ratio(off, none)} (goal ≥ 0.98)   on / off = ${ratio(on, off)}`);
    for (const [what, a, b] of [['off / cut', off, none], ['on / off', on, off]] as const) {
      const p = pairedRatio(a, b);
      if (p) {
        lines.push(`      ${what}, round by round: median ${p.median.toFixed(3)}, quartiles ${p.q1.toFixed(3)}..${p.q3.toFixed(3)}, `
          + `range ${p.min.toFixed(3)}..${p.max.toFixed(3)} over ${p.n} rounds; ratio of the medians ${(a!.reqPerSec / b!.reqPerSec).toFixed(3)}`);
      }
    }
    for (const [m, r] of [['cut', none], ['off', off], ['on', on]] as const) if (r) lines.push(`      ${m.padEnd(3)} ${spread(r)}`);
  }
  return lines.length > 0
    ? `What tracing costs: compiled in but off against the trace points cut out, and every class on (drained every ${DRAIN_MS} ms) against off:\n${lines.join('\n')}`
    : null;
}
