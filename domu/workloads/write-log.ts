/*
 * write-log: write blocks 0, 1, 2, ... of a known pattern, many in flight, flushing every so
 * often, and say on the console how far the disk has acknowledged: the guest's side of a crash
 * test (test/durability.test.ts kills the host during it and then reads the image).
 *
 * Not a Xen component: it is how a journal or a database uses a disk. A write is "acknowledged"
 * when its response has come back (blkif's BLKIF_RSP_OKAY; the IDE command's completion), and a
 * flush when its own response has: blkif.h says a completed BLKIF_OP_FLUSH_DISKCACHE means every
 * write completed before it was issued is on stable storage.
 *
 * Reporting, out of band and honest: the console line "write-log: acknowledged N" is printed only
 * after every block below N has been acknowledged, and "write-log: flushed N" only after a flush
 * issued once every block below N was acknowledged has itself been acknowledged. A line that
 * never reaches the console log (the host died first) only makes the test claim less. Each block
 * goes to its own place (block b at sector b * bs / 512) and is written once, so whatever the
 * host did with a write still in flight, an acknowledged block must read back exactly.
 */
import type { Kernel } from '../../shared/kernel/kernel.ts';
import { allocIoBuffer, ioWrite, type BlockDevice, type BlockRequest } from '../block/blkdev.ts';
import { blockPattern } from './disk-check.ts';

export interface WriteLogJob {
  bs: number;
  /** Blocks to write (at most the disk's). */
  blocks: number;
  iodepth: number;
  seed: number;
  /** Issue a flush each time this many more blocks have been acknowledged (0: never). */
  flushEvery: number;
  /** Print the acknowledged frontier each time it has moved this many blocks. */
  reportEvery: number;
}

export const WRITE_LOG_ACKED = 'write-log: acknowledged ';
export const WRITE_LOG_FLUSHED = 'write-log: flushed ';

export async function runWriteLog(k: Kernel, dev: BlockDevice, job: WriteLogJob, say: (line: string) => void): Promise<{ blocks: number; flushes: number }> {
  if (job.bs <= 0 || job.bs % 512 !== 0) throw new RangeError(`bs ${job.bs} is not a positive multiple of 512`);
  const blocks = Math.min(job.blocks, Math.floor((dev.sectors * 512) / job.bs));
  const acked = new Uint8Array(blocks);
  let frontier = 0;    // every block below it is acknowledged
  let reported = 0;
  let flushedAt = 0;   // frontier when the last flush was issued
  let flushes = 0;
  let flushing = false;
  let next = 0;
  let inFlight = 0;
  const pattern = new Uint8Array(job.bs);
  const bufs = Array.from({ length: Math.max(1, Math.min(job.iodepth, blocks)) }, () => allocIoBuffer(k.memory, () => k.pages.alloc(), job.bs));

  const run = new Promise<{ blocks: number; flushes: number }>((resolve, reject) => {
    let failed = false;
    const fail = (why: string) => { if (!failed) { failed = true; reject(new Error(`write-log on ${dev.name}: ${why}`)); } };
    const finish = () => { if (!failed && next === blocks && inFlight === 0 && !flushing) resolve({ blocks, flushes }); };
    const flush = () => {
      flushing = true;
      const upTo = frontier;
      flushedAt = upTo;
      dev.submit({
        op: 'flush', sector: 0, count: 0, buf: null,
        done(status: number, why?: string) {
          flushing = false;
          if (status !== 0) return fail(`flush: ${why ?? `status ${status}`}`);
          flushes++;
          say(`${WRITE_LOG_FLUSHED}${upTo}`);
          finish();
        },
      });
    };
    const issue = (r: BlockRequest & { block: number }) => {
      r.block = next++;
      r.sector = (r.block * job.bs) / 512;
      blockPattern(pattern, job.seed, r.block);
      ioWrite(r.buf!, 0, pattern);
      inFlight++;
      dev.submit(r);
    };
    const slots = bufs.map((buf) => ({
      op: 'write' as const, sector: 0, count: job.bs / 512, buf, block: 0,
      done(this: BlockRequest & { block: number }, status: number, why?: string) {
        inFlight--;
        if (status !== 0) return fail(`block ${this.block}: ${why ?? `status ${status}`}`);
        acked[this.block] = 1;
        while (frontier < blocks && acked[frontier]) frontier++;
        if (frontier - reported >= job.reportEvery || frontier === blocks) {
          reported = frontier;
          say(`${WRITE_LOG_ACKED}${frontier}`);
        }
        if (job.flushEvery > 0 && !flushing && frontier - flushedAt >= job.flushEvery) flush();
        if (next < blocks) issue(this);
        else if (inFlight === 0 && job.flushEvery > 0 && !flushing && flushedAt < frontier) flush();
        finish();
      },
    }));
    if (blocks === 0) return resolve({ blocks, flushes });
    for (const s of slots) if (next < blocks) issue(s);
  });
  try {
    return await run;
  } finally {
    for (const b of bufs) for (const g of b.gfns) k.pages.release(g);
  }
}
