/*
 * A self-checking random I/O workload: every byte read back is compared with a model of what
 * the disk must hold.
 *
 * Not a Xen component: it is how the tests prove that data crossing a split driver (or an
 * emulated controller) arrives intact. It keeps the region's expected contents in guest-private
 * memory, issues random writes, reads, discards and flushes of random sizes, many in flight but
 * never two overlapping (so the model is exact whatever order they complete in), and compares
 * every read with the model. At the end it reports a checksum per MiB of the model, which the
 * test compares with the image file itself.
 */
import { checksum, fillPattern } from '../../shared/checksum.ts';
import { BlockError, allocIoBuffer, ioRead, ioWrite, type BlockDevice, type IoBuffer } from '../block/blkdev.ts';
import type { Kernel } from '../../shared/kernel/kernel.ts';

export interface VerifyJob {
  ops: number;
  depth: number;
  /** Request sizes, bytes (multiples of 512). */
  minBytes: number;
  maxBytes: number;
  /** The region exercised, bytes from the start of the disk. */
  size: number;
  seed: number;
  /** Share of discards and flushes among the ops, when the device offers them. */
  discards?: number;
  flushes?: number;
  /**
   * I/O buffers the requests take in turn (default `depth`). More than `depth` models a guest
   * whose I/O moves over many pages, as a page cache does: each request takes the buffer that
   * has been free longest, so every buffer's pages are used again and again.
   */
  buffers?: number;
}

export interface VerifyResult {
  ops: number;
  reads: number;
  writes: number;
  discards: number;
  flushes: number;
  bytesChecked: number;
  errors: string[];
  /** checksum() of each MiB of the model after the last op and a final flush. */
  chunkSums: number[];
  sizes: { min: number; max: number };
}

const MIB = 1 << 20;

export async function runVerify(k: Kernel, dev: BlockDevice, job: VerifyJob): Promise<VerifyResult> {
  const size = Math.min(job.size, dev.sectors * 512);
  const model = new Uint8Array(size);
  const res: VerifyResult = { ops: 0, reads: 0, writes: 0, discards: 0, flushes: 0, bytesChecked: 0, errors: [], chunkSums: [], sizes: { min: Infinity, max: 0 } };
  const bufs: IoBuffer[] = Array.from({ length: Math.max(job.depth, job.buffers ?? 0) }, () => allocIoBuffer(k.memory, () => k.pages.alloc(), job.maxBytes));
  const freeBufs = bufs.slice(job.depth); // FIFO: the longest free goes next
  const scratch = new Uint8Array(job.maxBytes);

  // What the disk holds now becomes the model's starting point.
  for (let off = 0; off < size; off += job.maxBytes) {
    const n = Math.min(job.maxBytes, size - off);
    await dev.read(off / 512, n / 512, bufs[0]);
    ioRead(bufs[0], 0, model.subarray(off, off + n));
  }

  let rng = job.seed | 0 || 1;
  const rand = () => { rng ^= rng << 13; rng ^= rng >>> 17; rng ^= rng << 5; return (rng >>> 0) / 2 ** 32; };
  // The whole sequence is drawn first, from the seed alone, so every run with the same seed
  // asks for the same requests in the same order and leaves the same bytes on the disk.
  type Op = { op: 'read' | 'write' | 'discard' | 'flush'; sector: number; count: number; seed: number };
  const minS = job.minBytes / 512;
  const maxS = job.maxBytes / 512;
  const flushes = job.flushes ?? 0.03;
  const discards = dev.features.discard ? job.discards ?? 0.05 : 0;
  const ops: Op[] = [];
  for (let i = 0; i < job.ops; i++) {
    const r = rand();
    // Log-uniform sizes: small requests are common, 1 MiB ones still happen.
    const count = Math.min(maxS, Math.max(minS, Math.round(Math.exp(Math.log(minS) + rand() * (Math.log(maxS) - Math.log(minS))))));
    const sector = Math.floor(rand() * (size / 512 - count + 1));
    const op = r < flushes ? 'flush' : r < flushes + discards ? 'discard' : r < 0.55 ? 'write' : 'read';
    ops.push({ op, sector, count, seed: i * 7919 + sector });
  }

  // Requests run `depth` at a time, in sequence order; one that overlaps a request still in
  // flight waits for it, so the outcome does not depend on which finishes first.
  const busy: { start: number; end: number }[] = [];
  const overlaps = (s: number, e: number) => busy.some((b) => s < b.end && b.start < e);
  let wake: (() => void)[] = [];
  const finished = () => { const w = wake; wake = []; for (const f of w) f(); };
  let next = 0;
  const slot = async (own: IoBuffer) => {
    let buf = own;
    while (next < ops.length) {
      const o = ops[next];
      if (o.op === 'flush') {
        next++;
        await dev.flush();
        res.flushes++;
        continue;
      }
      const start = o.sector * 512;
      const bytes = o.count * 512;
      if (overlaps(start, start + bytes)) {
        await new Promise<void>((r) => wake.push(r));
        continue;
      }
      next++;
      if (freeBufs.length > 0) {
        freeBufs.push(buf);
        buf = freeBufs.shift()!;
      }
      res.sizes.min = Math.min(res.sizes.min, bytes);
      res.sizes.max = Math.max(res.sizes.max, bytes);
      const claim = { start, end: start + bytes };
      busy.push(claim);
      try {
        if (o.op === 'write') {
          const data = scratch.subarray(0, bytes);
          fillPattern(data, o.seed);
          ioWrite(buf, 0, data);
          // The scratch buffer is shared by every slot: record what this write holds now. No other
          // request overlaps the range while it is in flight, so the model stays exact.
          model.set(data, start);
          await dev.write(o.sector, o.count, buf);
          res.writes++;
        } else if (o.op === 'discard') {
          model.fill(0, start, start + bytes);
          await dev.discard(o.sector, o.count);
          res.discards++;
        } else {
          const want = model.slice(start, start + bytes);
          await dev.read(o.sector, o.count, buf);
          const got = new Uint8Array(bytes);
          ioRead(buf, 0, got);
          const bad = firstDifference(got, want);
          if (bad >= 0) res.errors.push(`read of ${o.count} sectors at ${o.sector}: byte ${bad} (disk offset ${start + bad}) is ${got[bad]}, expected ${want[bad]}`);
          res.bytesChecked += bytes;
          res.reads++;
        }
      } catch (e) {
        res.errors.push(e instanceof BlockError ? e.message : String(e));
      } finally {
        busy.splice(busy.indexOf(claim), 1);
        finished();
      }
    }
  };
  await Promise.all(bufs.slice(0, job.depth).map(slot));
  res.ops = next;
  await dev.flush();
  for (let off = 0; off < size; off += MIB) res.chunkSums.push(checksum(model.subarray(off, Math.min(size, off + MIB))));
  return res;
}

function firstDifference(a: Uint8Array, b: Uint8Array): number {
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return i;
  return -1;
}
