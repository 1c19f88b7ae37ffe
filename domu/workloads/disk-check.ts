/*
 * disk-check: write a known pattern over a region of the disk, then read it back and compare every
 * byte, timing both passes. The guest's "is my disk telling the truth?", and a fio-like
 * sequential write and read in one.
 *
 * Not a Xen component: it is the workload the default scenario runs on both paths (PV and
 * emulated), as fio's verify=pattern would. Each block's pattern is derived from the seed and the
 * block's number, so a block written to the wrong place, a stale block or a torn one reads back
 * wrong. Both passes keep `iodepth` requests in flight, each slot reusing one buffer and one
 * BlockRequest as fio.ts does, so the numbers measure the device, not the workload.
 */
import { fillPattern } from '../../shared/checksum.ts';
import type { Kernel } from '../../shared/kernel/kernel.ts';
import { allocIoBuffer, ioRead, ioWrite, type BlockDevice, type BlockRequest, type IoBuffer } from '../block/blkdev.ts';

export interface DiskCheckJob {
  /** Bytes per request (a multiple of 512). */
  bs: number;
  /** Blocks of bs bytes checked, from the start of the disk. */
  blocks: number;
  iodepth: number;
  seed: number;
}

export interface DiskCheckResult {
  bytes: number;
  requests: number;
  writeMs: number;
  readMs: number;
  /** Where the first few differences were ("" when every byte matched). */
  mismatches: string[];
  mismatchedBlocks: number;
}

const MAX_REPORTED = 4;

/** The pattern of block `b` (xorshift from a per-block seed). */
export function blockPattern(out: Uint8Array, seed: number, b: number): void {
  fillPattern(out, (Math.imul(b + 1, 0x9e3779b1) ^ seed) | 0);
}

export async function runDiskCheck(k: Kernel, dev: BlockDevice, job: DiskCheckJob): Promise<DiskCheckResult> {
  if (job.bs <= 0 || job.bs % 512 !== 0) throw new RangeError(`bs ${job.bs} is not a positive multiple of 512`);
  const maxBlocks = Math.floor((dev.sectors * 512) / job.bs);
  const blocks = Math.min(job.blocks, maxBlocks);
  if (blocks < 1) throw new RangeError(`${dev.name} (${dev.sectors} sectors) holds no ${job.bs}-byte block`);
  const depth = Math.max(1, Math.min(job.iodepth, blocks));
  const bufs: IoBuffer[] = Array.from({ length: depth }, () => allocIoBuffer(k.memory, () => k.pages.alloc(), job.bs));
  const want = new Uint8Array(job.bs);
  const got = new Uint8Array(job.bs);
  const res: DiskCheckResult = { bytes: blocks * job.bs, requests: 2 * blocks, writeMs: 0, readMs: 0, mismatches: [], mismatchedBlocks: 0 };

  const verify = (b: number, buf: IoBuffer) => {
    blockPattern(want, job.seed, b);
    ioRead(buf, 0, got);
    for (let i = 0; i < job.bs; i++) {
      if (got[i] === want[i]) continue;
      res.mismatchedBlocks++;
      if (res.mismatches.length < MAX_REPORTED) {
        res.mismatches.push(`block ${b} (sector ${(b * job.bs) / 512}) byte ${i}: read ${got[i]}, wrote ${want[i]}`);
      }
      return;
    }
  };

  /* One pass over the region: each slot issues its next block as soon as its last one completes. */
  const pass = (op: 'write' | 'read') => new Promise<number>((resolve, reject) => {
    const t0 = performance.now();
    let next = 0;
    let finished = 0;
    let failed: string | null = null;
    const issue = (r: BlockRequest & { block: number }) => {
      r.block = next++;
      r.sector = (r.block * job.bs) / 512;
      if (op === 'write') {
        blockPattern(want, job.seed, r.block);
        ioWrite(r.buf!, 0, want);
      }
      dev.submit(r);
    };
    const slots = bufs.map((buf) => ({
      op, sector: 0, count: job.bs / 512, buf, block: 0,
      done(this: BlockRequest & { block: number }, status: number, why?: string) {
        finished++;
        if (status !== 0 && failed === null) failed = why ?? `status ${status}`;
        if (status === 0 && op === 'read') verify(this.block, this.buf!);
        if (failed === null && next < blocks) issue(this);
        else if (finished === next) {
          if (failed === null) resolve(performance.now() - t0);
          else reject(new Error(`disk-check ${op} on ${dev.name}: ${failed}`));
        }
      },
    }));
    for (const s of slots) if (next < blocks) issue(s);
  });

  try {
    res.writeMs = await pass('write');
    await dev.flush(); // what was written is durable before we trust a read of it
    res.readMs = await pass('read');
  } finally {
    for (const b of bufs) for (const g of b.gfns) k.pages.release(g);
  }
  return res;
}
