/*
 * A fio-like load generator over the guest's BlockDevice: sequential or random, reads or
 * writes, one block size, a fixed number of requests kept in flight.
 *
 * Not a Xen component: it is the guest workload the lecture's I/O slide is about, shaped after
 * fio's own job keys (rw=read|write|randread|randwrite, bs, iodepth) so a reader who knows fio
 * can read the numbers. It runs the same on a PV disk and an emulated one, because both sit
 * behind domu/block/blkdev.ts.
 *
 * Each of the `iodepth` slots owns one buffer and loops: take the next offset, issue, await.
 * Offsets: sequential ones advance a shared cursor through the region and wrap; random ones are
 * block-aligned, from a xorshift generator seeded per job so runs are repeatable. The warm-up and
 * the timed part draw from one sequence, so the timed part never revisits the warm-up's blocks,
 * and `skip` starts a job further along it (the benchmark gives each repeat its own blocks).
 * A job runs for `ios` requests, or with `runtimeMs` for that long (fio's time_based): it stops
 * issuing when the time is up and counts what completed. Data is not checked here (see
 * verify.ts); this measures.
 */
import { allocIoBuffer, type BlockDevice, type BlockRequest, type IoBuffer } from '../block/blkdev.ts';
import type { Kernel } from '../../shared/kernel/kernel.ts';

export type FioRw = 'read' | 'write' | 'randread' | 'randwrite';

export interface FioJob {
  rw: FioRw;
  /** Block size in bytes (a multiple of 512). */
  bs: number;
  iodepth: number;
  /** Requests to time. */
  ios: number;
  /** Requests to run first, untimed (JIT and caches warm up). */
  warmup?: number;
  /** The region used, in bytes from the start of the device (default: all of it). */
  size?: number;
  seed?: number;
  /** Offsets of the sequence to pass over before the first request (default 0). */
  skip?: number;
  /** Time-based: issue for this long (at most `ios` requests), then count what completed. */
  runtimeMs?: number;
  /** Time-based warm-up, untimed, before the timed part (with runtimeMs; `warmup` counts requests). */
  warmupMs?: number;
}

export interface FioResult {
  rw: FioRw;
  bs: number;
  iodepth: number;
  ios: number;
  bytes: number;
  ms: number;
  iops: number;
  MBps: number;
  /** The most requests the job had in flight at once: the depth it really kept. */
  maxInFlight: number;
}

/** Buffers for a job, allocated once from the kernel's pages (reuse them across jobs). */
export function fioBuffers(k: Kernel, bs: number, iodepth: number): IoBuffer[] {
  return Array.from({ length: iodepth }, () => allocIoBuffer(k.memory, () => k.pages.alloc(), bs));
}

/**
 * The offsets a job visits, as a generator of sector numbers: sequential blocks that wrap at the
 * end of the region, or random block-aligned ones from a seeded xorshift.
 */
export function jobSectors(job: FioJob, deviceSectors: number): () => number {
  const region = Math.min(job.size ?? deviceSectors * 512, deviceSectors * 512);
  const blocks = Math.floor(region / job.bs);
  if (blocks < 1) throw new RangeError(`region of ${region} bytes holds no ${job.bs}-byte block`);
  const count = job.bs / 512;
  const random = job.rw === 'randread' || job.rw === 'randwrite';
  let cursor = random ? 0 : (job.skip ?? 0) % blocks;
  let rng = (job.seed ?? 0x2545f491) | 0 || 1;
  const next = () => {
    if (!random) {
      const b = cursor;
      cursor = cursor + 1 === blocks ? 0 : cursor + 1;
      return b * count;
    }
    rng ^= rng << 13; rng ^= rng >>> 17; rng ^= rng << 5;
    return ((rng >>> 0) % blocks) * count;
  };
  if (random) for (let i = job.skip ?? 0; i > 0; i--) next();
  return next;
}

/** The result of `ios` requests completed in `ms` with at most `maxInFlight` outstanding. */
export function fioResult(job: FioJob, ms: number, ios = job.ios, maxInFlight = Math.min(job.iodepth, ios)): FioResult {
  const bytes = ios * job.bs;
  return { rw: job.rw, bs: job.bs, iodepth: job.iodepth, ios, bytes, ms, iops: (ios / ms) * 1000, MBps: bytes / ms / 1000, maxInFlight };
}

export async function runFio(dev: BlockDevice, job: FioJob, bufs: readonly IoBuffer[]): Promise<FioResult> {
  const run = fioRun(dev, job, bufs);
  await run.warmup();
  return run.timed();
}

/** A job in two parts, warm-up and timed, on one sequence of offsets (the benchmark waits between them). */
export function fioRun(dev: BlockDevice, job: FioJob, bufs: readonly IoBuffer[]): { warmup(): Promise<void>; timed(): Promise<FioResult> } {
  if (job.bs % 512 !== 0 || job.bs <= 0) throw new RangeError(`bs ${job.bs} is not a positive multiple of 512`);
  if (bufs.length < job.iodepth || bufs[0].bytes < job.bs) throw new RangeError('not enough buffers for this job');
  const count = job.bs / 512;
  const op = job.rw === 'write' || job.rw === 'randwrite' ? 'write' : 'read';
  const nextSector = jobSectors(job, dev.sectors);
  /*
   * Each slot is one reusable BlockRequest whose completion issues the slot's next request
   * straight away: fio's own loop (io_u reaped, io_u requeued), without a promise per request.
   * Resolves with how many completed and the most that were in flight at once.
   */
  const run = (total: number, forMs: number | undefined) => new Promise<{ done: number; maxInFlight: number }>((resolve, reject) => {
    const deadline = forMs === undefined ? Infinity : performance.now() + forMs;
    let issued = 0;
    let finished = 0;
    let maxInFlight = 0;
    let failed: string | null = null;
    const issue = (r: BlockRequest) => {
      issued++;
      if (issued - finished > maxInFlight) maxInFlight = issued - finished;
      r.sector = nextSector();
      dev.submit(r);
    };
    const slots: BlockRequest[] = bufs.slice(0, job.iodepth).map((buf) => ({
      op, sector: 0, count, buf,
      done(status: number, why?: string) {
        finished++;
        if (status !== 0 && failed === null) failed = why ?? `status ${status}`;
        if (failed === null && issued < total && (deadline === Infinity || performance.now() < deadline)) {
          issue(this);
        } else if (finished === issued) {
          if (failed === null) resolve({ done: finished, maxInFlight });
          else reject(new Error(`${job.rw} bs=${job.bs}: ${failed}`));
        }
      },
    }));
    for (const r of slots) {
      if (issued === total) break;
      issue(r);
    }
    if (total === 0) resolve({ done: 0, maxInFlight: 0 });
  });
  return {
    async warmup() {
      if (job.runtimeMs !== undefined && job.warmupMs) await run(Infinity, job.warmupMs);
      else if (job.warmup) await run(job.warmup, undefined);
    },
    async timed() {
      const t0 = performance.now();
      const r = await run(job.ios, job.runtimeMs);
      return fioResult(job, performance.now() - t0, r.done, r.maxInFlight);
    },
  };
}
