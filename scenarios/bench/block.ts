/*
 * The block suite: the same fio-like jobs on the same image file, native (Dom0 making the very
 * preadv/pwritev calls blkback makes, on its own memory), through the PV split driver (a
 * DomU's blkfront, Dom0's blkback), so the ratio is the split driver's cost alone, and through
 * the emulated IDE controller with bus-master DMA (emu-dma) and with PIO (emu-pio), where every
 * register access traps to the device model in Dom0.
 *
 * Every job runs after a warm-up, several times; the figure is the median. The image is filled
 * with data first, so reads come from the page cache on both paths, never from holes.
 */
import { closeSync, openSync, rmSync, writeSync } from 'node:fs';
import { randomUUID } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { FioJob, FioRw } from '../../domu/workloads/fio.ts';
import { BlockHost, type TaskOutcome } from '../block/harness.ts';
import type { BlockTask } from '../block/protocol.ts';
import { median, type BenchRow, type SuiteOptions } from './types.ts';

/* Reads first: writes leave dirty pages that the host writes back while later jobs run. */
const WORKLOADS: { name: string; rw: FioRw }[] = [
  { name: 'seq-read', rw: 'read' },
  { name: 'rand-read', rw: 'randread' },
  { name: 'seq-write', rw: 'write' },
  { name: 'rand-write', rw: 'randwrite' },
];
const SIZES = [4096, 65536];
const DEPTHS = [1, 32];
const IMAGE_MIB = 256;

/** How many requests a job times: enough to last a fraction of a second on this machine. */
function iosFor(path: 'native' | 'pv' | 'emu-dma' | 'emu-pio', bs: number, depth: number, quick: boolean): number {
  const scale = quick ? 1 : 3;
  switch (path) {
    case 'native':
    case 'pv': return Math.round((bs === 4096 ? 60_000 : 12_000) * (depth === 1 ? 0.4 : 1) * scale);
    case 'emu-dma': return Math.round((bs === 4096 ? 2_000 : 1_000) * scale);
    case 'emu-pio': return Math.round((bs === 4096 ? 60 : 6) * scale);
  }
}

export async function benchBlock(opts: SuiteOptions): Promise<BenchRow[]> {
  const say = opts.progress ?? (() => {});
  const repeats = opts.quick ? 3 : 5;
  const image = join(tmpdir(), `ringvisor-bench-${randomUUID()}.img`);
  fillImage(image, IMAGE_MIB);
  const host = await BlockHost.boot(512);
  const rows: BenchRow[] = [];
  const jobFor = (path: 'native' | 'pv' | 'emu-dma' | 'emu-pio', rw: FioRw, bs: number, depth: number): FioJob => {
    const ios = iosFor(path, bs, depth, opts.quick);
    return { rw, bs, iodepth: depth, ios, warmup: Math.max(4, Math.round(ios / 4)), size: IMAGE_MIB << 20, seed: 7 };
  };
  try {
    // Native and PV take turns, job by job: each PV run waits, warmed up, while Dom0 runs the
    // same job natively, so both see the same page cache and the same writeback going on.
    const jobs: { workload: string; job: FioJob }[] = [];
    for (const w of WORKLOADS) for (const bs of SIZES) for (const depth of DEPTHS) jobs.push({ workload: w.name, job: jobFor('pv', w.rw, bs, depth) });
    say(`block: native and pv, ${jobs.length} jobs × ${repeats}, taking turns`);
    const native: number[][] = jobs.map(() => []);
    const g = await host.runGuest({
      image, tasks: repeatTasks(jobs, repeats), memoryMiB: 96,
      beforeTimed: async (i) => {
        const j = Math.floor(i / repeats);
        native[j].push((await host.native(image, jobs[j].job)).iops);
        if (i % repeats === repeats - 1) say(`  ${jobs[j].workload} bs=${jobs[j].job.bs} qd=${jobs[j].job.iodepth}`);
      },
    });
    jobs.forEach(({ workload, job }, j) => {
      rows.push(row('native', workload, job, native[j], { notifications: 0, hypercalls: 0, grantOps: 0, traps: 0, wakeups: 0 }));
      rows.push(guestRow('pv', workload, job, g.tasks.slice(j * repeats, (j + 1) * repeats)));
    });

    // The emulated disk, trap by trap: DMA at both depths (IDE has no command queueing, so the
    // driver keeps the extra requests itself), PIO at depth 1 only: a 64 KiB PIO read is some
    // 33,000 traps, and queueing changes nothing when every byte is a trap.
    for (const path of ['emu-dma', 'emu-pio'] as const) {
      const reps = path === 'emu-pio' ? 1 : opts.quick ? 2 : repeats;
      const emu: { workload: string; job: FioJob }[] = [];
      for (const w of WORKLOADS) for (const bs of SIZES) for (const depth of path === 'emu-pio' ? [1] : DEPTHS) {
        emu.push({ workload: w.name, job: jobFor(path, w.rw, bs, depth) });
      }
      say(`block: ${path}, ${emu.length} jobs × ${reps}`);
      const e = await host.runGuest({ image, path, tasks: repeatTasks(emu, reps), memoryMiB: 96 });
      emu.forEach(({ workload, job }, j) => rows.push(guestRow(path, workload, job, e.tasks.slice(j * reps, (j + 1) * reps))));
    }
  } finally {
    await host.close();
    rmSync(image, { force: true });
  }
  return rows;
}

function repeatTasks(jobs: { job: FioJob }[], repeats: number): BlockTask[] {
  const tasks: BlockTask[] = [];
  for (const { job } of jobs) for (let r = 0; r < repeats; r++) tasks.push({ kind: 'fio', job });
  return tasks;
}

function guestRow(path: string, workload: string, job: FioJob, outs: TaskOutcome[]): BenchRow {
  const failed = outs.find((o) => o.error !== null);
  if (failed) throw new Error(`${path} ${workload} bs=${job.bs} qd=${job.iodepth}: ${failed.error}`);
  const iops = outs.map((o) => (o.result?.kind === 'fio' ? o.result.result.iops : 0));
  return row(path, workload, job, iops, perRequest(outs, job.ios));
}

/** Mechanism counters per request, medians over the repeats. */
function perRequest(outs: TaskOutcome[], ios: number): Record<string, number> {
  const m = (f: (o: TaskOutcome) => number) => median(outs.map((o) => f(o) / ios));
  return {
    notifications: m((o) => o.counters.domU.notifications + o.counters.dom0.notifications),
    hypercalls: m((o) => o.counters.domU.hypercalls + o.counters.dom0.hypercalls),
    grantOps: m((o) => o.counters.dom0.grant_maps + o.counters.dom0.grant_unmaps + o.counters.dom0.grant_copies),
    traps: m((o) => o.counters.domU.traps),
    ioreqs: m((o) => o.counters.domU.ioreqs ?? 0),
    foreignMaps: m((o) => o.counters.dom0.foreign_maps ?? 0),
    wakeups: m((o) => o.counters.domU.wakeups + o.counters.dom0.wakeups),
  };
}

function row(path: string, workload: string, job: FioJob, iops: number[], counters: Record<string, number>): BenchRow {
  const med = median(iops);
  return {
    suite: 'block', path, workload, blockSize: job.bs, queueDepth: job.iodepth,
    reqPerSec: med, iops: med, MBps: (med * job.bs) / 1e6, counters, repeats: iops.length, spread: [Math.min(...iops), Math.max(...iops)],
  };
}

/** Write real data into every byte of the image (a sparse hole reads faster than data). */
function fillImage(path: string, mib: number): void {
  const fd = openSync(path, 'w');
  const chunk = Buffer.alloc(1 << 20);
  for (let i = 0; i < chunk.length; i += 4) chunk.writeUInt32LE((i * 2654435761) >>> 0, i);
  for (let m = 0; m < mib; m++) writeSync(fd, chunk, 0, chunk.length, m << 20);
  closeSync(fd);
}
