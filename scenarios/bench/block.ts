/*
 * The block suite: the same fio-like jobs on the same image file, native (Dom0 making the very
 * preadv/pwritev calls blkback makes, on its own memory, at the job's depth), through the PV
 * split driver (a DomU's blkfront, Dom0's blkback), through the same split driver with blkback in
 * a storage driver domain (pv-dd: a DomU with driver_domain=1 and the second storage controller
 * passed through; the data path never touches Dom0), through the emulated IDE controller with
 * bus-master DMA (emu-dma) and with PIO (emu-pio), where every register access traps to the
 * device model in Dom0, and, when Debian's fio is installed, fio itself on the image (psync, and
 * io_uring where the kernel allows it: scenarios/bench/fio-host.ts).
 *
 * How a row is made, so that it means what it says:
 *   - One waiting policy per host (shared/wait.ts): the suite boots a host per policy (--wait),
 *     and every row names the one it ran under. Ratios compare rows of one policy only.
 *   - Every row is the median of `repeats` timed runs (3 with --quick, 5 otherwise), each after
 *     its own warm-up, and keeps each run in `samples`, with min and max beside the median.
 *   - Interleaved: for each job and repeat, every path takes its turn (warm-up and timed run)
 *     while all the others wait, in an order rotated from repeat to repeat; so all paths see the
 *     same page cache, the same writeback going on and the same neighbours on the machine, and
 *     no path is always first. The guests of all three paths are booted before the first turn
 *     and each powers off inside its last turn.
 *   - Fresh blocks: a run's warm-up and timed part draw from one offset sequence (the timed part
 *     does not revisit what its warm-up touched), and each repeat starts elsewhere: sequential
 *     jobs a fraction of the region further on, random jobs from another seed. All paths of one
 *     repeat visit the same offsets (fio: the same start; its own random generator).
 *   - Warm: each job's first repeat warms up longer (firstWarmupMs), so no repeat is timed while
 *     a thread's code is still being compiled for that kind of work.
 *   - Time-based (fio's time_based): each timed run lasts about the same time on every path, so a
 *     slow path (PIO, or anything under `irq`) does not stretch the suite; a run completes at
 *     least one request.
 *   - Depth as kept: each row's queueDepth is the most requests the path really had in flight
 *     (measured by the workload and by native; fio's own report for fio), not the one asked for.
 *     IDE has no command queueing: emu-dma at 32 is 32 requests queued in the guest's driver and
 *     one at a time in the controller, which is the mechanism being compared.
 *
 * The image is filled with data first, so reads come from the page cache on every path, never
 * from holes. Reads run before writes: writes leave dirty pages that the host writes back.
 */
import { closeSync, openSync, rmSync, writeSync } from 'node:fs';
import { randomUUID } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { FioJob, FioRw } from '../../domu/workloads/fio.ts';
import type { WaitPolicy } from '../../shared/wait.ts';
import { BlockHost, type GuestOutcome, type TaskOutcome } from '../block/harness.ts';
import type { BlockTask, DiskPath } from '../block/protocol.ts';
import { probeHostFio, runHostFio, type FioEngine } from './fio-host.ts';
import { PCI_STORAGE1 } from '../../shared/public/hw/sc.ts';
import { median, repeatFields, type BenchRow, type Sample, type SuiteOptions } from './types.ts';

const WORKLOADS: { name: string; rw: FioRw }[] = [
  { name: 'seq-read', rw: 'read' },
  { name: 'rand-read', rw: 'randread' },
  { name: 'seq-write', rw: 'write' },
  { name: 'rand-write', rw: 'randwrite' },
];
const SIZES = [4096, 65536];
const DEPTHS = [1, 32];
const IMAGE_MIB = 256;
/** A cap on requests per run; runs are time-based (see the header). */
const MAX_IOS = 1e9;

/** pv-dd: the PV path with blkback in a storage driver domain instead of Dom0. */
type GuestPath = DiskPath | 'pv-dd';
type Path = 'native' | GuestPath | 'fio';
interface Job { workload: string; rw: FioRw; bs: number; depth: number }
interface Slot { path: Path; engine?: FioEngine; j: number; r: number }

const slotKey = (s: Slot) => `${s.path}/${s.engine ?? ''}/${s.j}/${s.r}`;

export async function benchBlock(opts: SuiteOptions): Promise<BenchRow[]> {
  const say = opts.progress ?? (() => {});
  const image = join(tmpdir(), `ringvisor-bench-${randomUUID()}.img`);
  const rows: BenchRow[] = [];
  try {
    fillImage(image, IMAGE_MIB);
    const engines: FioEngine[] = [];
    for (const e of ['psync', 'io_uring'] as const) {
      const why = await probeHostFio(image, e);
      if (why === null) engines.push(e);
      else say(`block: no fio ${e} rows: ${why}`);
    }
    for (const wait of opts.waits) rows.push(...(await underPolicy(opts, wait, image, engines)));
  } finally {
    rmSync(image, { force: true });
  }
  return rows;
}

/** Every path, every job, every repeat, on one host whose every waiter follows `wait`. */
async function underPolicy(opts: SuiteOptions, wait: WaitPolicy, image: string, engines: FioEngine[]): Promise<BenchRow[]> {
  const say = opts.progress ?? (() => {});
  const repeats = opts.quick ? 3 : 5;
  const runtimeMs = opts.quick ? 100 : 400;
  const warmupMs = opts.quick ? 30 : 100;
  // A job's first repeat warms up for longer, on every path alike: a thread's code reaches its
  // steady speed only after some 200-300 ms of a new kind of work (V8 compiles the hot loops of
  // each vCPU thread on its own, tier after tier). Measured on one PV guest, 4 KiB reads at depth
  // 32, 100 ms runs after 50 ms warm-ups: 155K, 305K, 528K, then 489K-557K IOPS; a first repeat
  // timed in that climb was the low mode of issue 17's "bimodal" rate.
  const firstWarmupMs = opts.quick ? 250 : 500;
  const jobs: Job[] = [];
  for (const w of WORKLOADS) for (const bs of SIZES) for (const depth of DEPTHS) jobs.push({ workload: w.name, rw: w.rw, bs, depth });
  const fioJob = (j: number, r: number): FioJob => {
    const { rw, bs, depth } = jobs[j];
    const blocks = (IMAGE_MIB << 20) / bs;
    return {
      rw, bs, iodepth: depth, ios: MAX_IOS, size: IMAGE_MIB << 20, runtimeMs, warmupMs: r === 0 ? firstWarmupMs : warmupMs,
      seed: 7 + 101 * r, skip: rw === 'read' || rw === 'write' ? Math.floor((r * blocks) / repeats) : 0,
    };
  };
  // Which paths run which jobs: PIO at depth 1 only (queueing changes nothing when every byte
  // is a trap) and, with --quick, reads of 4 KiB only (a 64 KiB PIO request is some 33,000
  // traps, and a write the same count again); fio's psync engine at depth 1 only (it is
  // synchronous: fio caps its depth at 1).
  const runs = (p: Path, e: FioEngine | undefined, job: Job) =>
    p === 'emu-pio' ? job.depth === 1 && (!opts.quick || (job.bs === 4096 && (job.rw === 'read' || job.rw === 'randread')))
      : p === 'fio' ? e === 'io_uring' || job.depth === 1
        : true;
  const kinds: { path: Path; engine?: FioEngine }[] = [
    { path: 'native' }, { path: 'pv' }, { path: 'pv-dd' }, { path: 'emu-dma' }, { path: 'emu-pio' }, ...engines.map((engine) => ({ path: 'fio' as const, engine })),
  ];
  const order: Slot[] = [];
  jobs.forEach((job, j) => {
    for (let r = 0; r < repeats; r++) {
      const here = kinds.filter((k) => runs(k.path, k.engine, job));
      for (let i = 0; i < here.length; i++) order.push({ ...here[(i + r) % here.length], j, r });
    }
  });
  const guestPaths: GuestPath[] = ['pv', 'pv-dd', 'emu-dma', 'emu-pio'];
  const turns = new Turns(order.map(slotKey), guestPaths.length);
  const results = new Map<string, { sample: Sample; counters: Record<string, number> | null; depth: number }>();

  say(`block (wait=${wait}): ${order.length} turns: ${jobs.length} jobs × ${repeats} repeats × up to ${kinds.length} paths, interleaved`);
  const host = await BlockHost.boot(512, wait);
  try {
    const dd = await host.startDriverDomain(`storage-dd-${wait}`, PCI_STORAGE1);
    const guest = async (path: GuestPath): Promise<GuestOutcome> => {
      const mine = order.filter((s) => s.path === path);
      const tasks: BlockTask[] = mine.map((s) => ({ kind: 'fio', job: fioJob(s.j, s.r) }));
      let arrived = false;
      const g = await host.runGuest({
        image, tasks, memoryMiB: 96, ...(path === 'pv-dd' ? { path: 'pv', backend: dd } : { path }),
        beforeWarmup: async (i) => {
          if (!arrived) { arrived = true; turns.arrive(); }
          await turns.turn(slotKey(mine[i]));
        },
        // A guest's last turn lasts until it has powered off (below), so its teardown overlaps no one's run.
        afterTask: (i) => { if (i < mine.length - 1) turns.done(); },
      });
      turns.done();
      g.tasks.forEach((o, i) => {
        if (o.error !== null || o.result?.kind !== 'fio') throw new Error(`${path} ${describe(jobs[mine[i].j])}: ${o.error}`);
        const f = o.result.result;
        results.set(slotKey(mine[i]), { sample: { reqPerSec: f.iops, ios: f.ios, ms: f.ms, maxInFlight: f.maxInFlight }, counters: perRequest(o, f.ios), depth: f.maxInFlight });
      });
      return g;
    };
    const hostSide = async (): Promise<void> => {
      let lastJob = -1;
      for (const s of order) {
        if (s.path !== 'native' && s.path !== 'fio') continue;
        await turns.turn(slotKey(s));
        if (s.j !== lastJob && s.r === 0) { lastJob = s.j; say(`  ${wait}: ${describe(jobs[s.j])}`); }
        const job = fioJob(s.j, s.r);
        if (s.path === 'native') {
          const n = await host.native(image, job);
          results.set(slotKey(s), { sample: { reqPerSec: n.iops, ios: n.ios, ms: n.ms, maxInFlight: n.inFlight }, counters: null, depth: n.inFlight });
        } else {
          const f = await runHostFio(image, job, s.engine!, (job.skip ?? 0) * job.bs);
          results.set(slotKey(s), { sample: { reqPerSec: f.iops, ios: f.ios, ms: f.ms }, counters: null, depth: f.depth });
        }
        turns.done();
      }
    };
    await Promise.all([...guestPaths.map(guest), hostSide()]);
  } finally {
    await host.close();
  }

  const rows: BenchRow[] = [];
  jobs.forEach((job, j) => {
    for (const k of kinds) {
      if (!runs(k.path, k.engine, job)) continue;
      const got = Array.from({ length: repeats }, (_, r) => results.get(slotKey({ ...k, j, r }))!);
      const counters = got[0].counters === null ? { notifications: 0, hypercalls: 0, grantOps: 0, traps: 0, wakeups: 0 } : medians(got.map((g) => g.counters!));
      const fields = repeatFields(got.map((g) => g.sample));
      rows.push({
        suite: 'block', path: k.path, wait, workload: job.workload, blockSize: job.bs,
        queueDepth: Math.min(...got.map((g) => g.depth)), askedDepth: job.depth,
        ...fields, iops: fields.reqPerSec, MBps: (fields.reqPerSec * job.bs) / 1e6, counters,
        ...(k.path === 'native' ? { engine: job.depth === 1 ? 'sync' : 'libuv', threads: job.depth === 1 ? 1 : Math.min(job.depth, poolThreads()) } : {}),
        ...(k.path === 'fio' ? { engine: k.engine, threads: 1 } : {}),
      });
    }
  });
  return rows;
}

const describe = (j: Job) => `${j.workload} bs=${j.bs} qd=${j.depth}`;
const poolThreads = () => Number(process.env.UV_THREADPOOL_SIZE) || 4;

/** Mechanism counters per request of one timed run (the backend's side: Dom0's, or the driver domain's). */
function perRequest(o: TaskOutcome, ios: number): Record<string, number> {
  const d = o.counters.domU;
  const z = o.counters.backend;
  return {
    notifications: (d.notifications + z.notifications) / ios,
    hypercalls: (d.hypercalls + z.hypercalls) / ios,
    grantOps: (z.grant_maps + z.grant_unmaps + z.grant_copies) / ios,
    traps: d.traps / ios,
    ioreqs: (d.ioreqs ?? 0) / ios,
    foreignMaps: (z.foreign_maps ?? 0) / ios,
    wakeups: (d.wakeups + z.wakeups) / ios,
  };
}

function medians(all: Record<string, number>[]): Record<string, number> {
  return Object.fromEntries(Object.keys(all[0]).map((k) => [k, median(all.map((c) => c[k]))]));
}

/**
 * Whose turn it is: one slot after another in a fixed order, each path waiting for its own. No
 * turn starts before every guest has booted and connected (`arrive`), so no boot overlaps a run.
 */
class Turns {
  private at = 0;
  private arrived = 0;
  private readonly waiting = new Map<string, () => void>();
  private readonly gate: Promise<void>;
  private open!: () => void;

  constructor(private readonly order: readonly string[], private readonly guests: number) {
    this.gate = new Promise((r) => { this.open = r; });
    if (guests === 0) this.open();
  }

  arrive(): void {
    if (++this.arrived === this.guests) this.open();
  }

  async turn(key: string): Promise<void> {
    await this.gate;
    if (this.order[this.at] === key) return;
    await new Promise<void>((r) => this.waiting.set(key, r));
  }

  done(): void {
    this.at++;
    const next = this.order[this.at];
    const w = next === undefined ? undefined : this.waiting.get(next);
    if (w) {
      this.waiting.delete(next);
      w();
    }
  }
}

/** Write real data into every byte of the image (a sparse hole reads faster than data). */
function fillImage(path: string, mib: number): void {
  const fd = openSync(path, 'w');
  const chunk = Buffer.alloc(1 << 20);
  for (let i = 0; i < chunk.length; i += 4) chunk.writeUInt32LE((i * 2654435761) >>> 0, i);
  for (let m = 0; m < mib; m++) writeSync(fd, chunk, 0, chunk.length, m << 20);
  closeSync(fd);
}
