/*
 * The block suite: the same fio-like jobs on the same image file, native (Dom0 making the very
 * preadv/pwritev calls blkback makes, on its own memory) and through the PV split driver (a
 * DomU's blkfront, Dom0's blkback), so the ratio is the split driver's cost alone.
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
function iosFor(bs: number, depth: number, quick: boolean): number {
  const base = bs === 4096 ? 60_000 : 12_000;
  return Math.round((base * (depth === 1 ? 0.4 : 1)) * (quick ? 1 : 3));
}

export async function benchBlock(opts: SuiteOptions): Promise<BenchRow[]> {
  const say = opts.progress ?? (() => {});
  const repeats = opts.quick ? 3 : 5;
  const image = join(tmpdir(), `ringvisor-bench-${randomUUID()}.img`);
  fillImage(image, IMAGE_MIB);
  const host = await BlockHost.boot(512);
  const rows: BenchRow[] = [];
  try {
    const jobs: { workload: string; job: FioJob }[] = [];
    for (const w of WORKLOADS) for (const bs of SIZES) for (const depth of DEPTHS) {
      const ios = iosFor(bs, depth, opts.quick);
      jobs.push({ workload: w.name, job: { rw: w.rw, bs, iodepth: depth, ios, warmup: Math.round(ios / 4), size: IMAGE_MIB << 20, seed: 7 } });
    }

    // Native and PV take turns, job by job: each PV run waits, warmed up, while Dom0 runs the
    // same job natively, so both see the same page cache and the same writeback going on.
    say(`block: native and pv, ${jobs.length} jobs × ${repeats}, taking turns`);
    const tasks: BlockTask[] = [];
    for (const { job } of jobs) for (let r = 0; r < repeats; r++) tasks.push({ kind: 'fio', job });
    const native: number[][] = jobs.map(() => []);
    const g = await host.runGuest({
      image, tasks, memoryMiB: 96,
      beforeTimed: async (i) => {
        const j = Math.floor(i / repeats);
        native[j].push((await host.native(image, jobs[j].job)).iops);
        if (i % repeats === repeats - 1) say(`  ${jobs[j].workload} bs=${jobs[j].job.bs} qd=${jobs[j].job.iodepth}`);
      },
    });
    jobs.forEach(({ workload, job }, j) => {
      const outs = g.tasks.slice(j * repeats, (j + 1) * repeats);
      const failed = outs.find((o) => o.error !== null);
      if (failed) throw new Error(`pv ${workload} bs=${job.bs} qd=${job.iodepth}: ${failed.error}`);
      const iops = outs.map((o) => (o.result?.kind === 'fio' ? o.result.result.iops : 0));
      rows.push(row('native', workload, job, native[j], { notifications: 0, hypercalls: 0, grantOps: 0, traps: 0, wakeups: 0 }));
      rows.push(row('pv', workload, job, iops, perRequest(outs, job.ios)));
    });
  } finally {
    await host.close();
    rmSync(image, { force: true });
  }
  return rows;
}

/** Mechanism counters per request, medians over the repeats. */
function perRequest(outs: TaskOutcome[], ios: number): Record<string, number> {
  const m = (f: (o: TaskOutcome) => number) => median(outs.map((o) => f(o) / ios));
  return {
    notifications: m((o) => o.counters.domU.notifications + o.counters.dom0.notifications),
    hypercalls: m((o) => o.counters.domU.hypercalls + o.counters.dom0.hypercalls),
    grantOps: m((o) => o.counters.dom0.grant_maps + o.counters.dom0.grant_unmaps + o.counters.dom0.grant_copies),
    traps: m((o) => o.counters.domU.traps),
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
