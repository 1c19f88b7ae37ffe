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
 * block-aligned, from a xorshift generator seeded per job so runs are repeatable. Data is not
 * checked here (see verify.ts); this measures.
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
  let cursor = 0;
  let rng = (job.seed ?? 0x2545f491) | 0 || 1;
  return () => {
    if (!random) {
      const b = cursor;
      cursor = cursor + 1 === blocks ? 0 : cursor + 1;
      return b * count;
    }
    rng ^= rng << 13; rng ^= rng >>> 17; rng ^= rng << 5;
    return ((rng >>> 0) % blocks) * count;
  };
}

export function fioResult(job: FioJob, ms: number): FioResult {
  const bytes = job.ios * job.bs;
  return { rw: job.rw, bs: job.bs, iodepth: job.iodepth, ios: job.ios, bytes, ms, iops: (job.ios / ms) * 1000, MBps: bytes / ms / 1000 };
}

export async function runFio(dev: BlockDevice, job: FioJob, bufs: readonly IoBuffer[]): Promise<FioResult> {
  if (job.bs % 512 !== 0 || job.bs <= 0) throw new RangeError(`bs ${job.bs} is not a positive multiple of 512`);
  if (bufs.length < job.iodepth || bufs[0].bytes < job.bs) throw new RangeError('not enough buffers for this job');
  const count = job.bs / 512;
  const op = job.rw === 'write' || job.rw === 'randwrite' ? 'write' : 'read';
  const nextSector = jobSectors(job, dev.sectors);
  /*
   * Each slot is one reusable BlockRequest whose completion issues the slot's next request
   * straight away: fio's own loop (io_u reaped, io_u requeued), without a promise per request.
   */
  const run = (total: number) => new Promise<void>((resolve, reject) => {
    let issued = 0;
    let finished = 0;
    let failed: string | null = null;
    const slots: BlockRequest[] = bufs.slice(0, job.iodepth).map((buf) => ({
      op, sector: 0, count, buf,
      done(status: number, why?: string) {
        finished++;
        if (status !== 0 && failed === null) failed = why ?? `status ${status}`;
        if (failed === null && issued < total) {
          issued++;
          this.sector = nextSector();
          dev.submit(this);
        } else if (finished === issued) {
          if (failed === null) resolve();
          else reject(new Error(`${job.rw} bs=${job.bs}: ${failed}`));
        }
      },
    }));
    for (const r of slots) {
      if (issued === total) break;
      issued++;
      r.sector = nextSector();
      dev.submit(r);
    }
    if (total === 0) resolve();
  });
  if (job.warmup) await run(job.warmup);
  const t0 = performance.now();
  await run(job.ios);
  return fioResult(job, performance.now() - t0);
}
