// The checksummed random-I/O workload of the emulated-disk tests: random writes, then reads of
// random ranges, every byte checked against a model of the disk kept in the guest. It runs over
// any BlockDevice (pv, emu-dma, emu-pio). The model's digest is compared by the test with the
// image file itself, after a flush.
//
// Buffers: half of them are physically contiguous runs of guest pages, half are scattered
// (every other page of a run, so no two neighbours touch): the DMA path then needs one PRD
// entry per page, and PIO crosses between unrelated pages every 4 KiB.
import { createHash } from 'node:crypto';
import type { Kernel } from '../../shared/kernel/kernel.ts';
import { PAGE_SIZE } from '../../shared/public/xen.ts';
import { ioRead, ioWrite, type BlockDevice, type IoBuffer } from '../../domu/block/blkdev.ts';

export interface WorkloadSpec {
  seed: number;
  /** The image's initial contents are imagePattern(imageSeed). */
  imageSeed: number;
  writes: number;
  reads: number;
  depth: number;
  minSectors: number;
  maxSectors: number;
}

export interface WorkloadResult {
  writes: number;
  reads: number;
  bytesWritten: number;
  bytesRead: number;
  mismatches: number;
  firstMismatch: string | null;
  sizesSeen: number[];
  digest: string;
  ms: number;
  driver: Record<string, number>;
}

/** xorshift32, the workload's only source of randomness (repeatable from a seed). */
export function rng(seed: number): () => number {
  let x = seed | 0 || 0x9e3779b9;
  return () => {
    x ^= x << 13; x ^= x >>> 17; x ^= x << 5;
    return x >>> 0;
  };
}

/** The bytes an image starts with (the test writes them, the guest's model assumes them). */
export function imagePattern(seed: number, bytes: number): Uint8Array {
  const out = new Uint8Array(bytes);
  const r = rng(seed);
  for (let i = 0; i < bytes; i += 4) {
    const v = r();
    out[i] = v; out[i + 1] = v >>> 8; out[i + 2] = v >>> 16; out[i + 3] = v >>> 24;
  }
  return out;
}

export function digest(bytes: Uint8Array): string {
  return createHash('sha256').update(bytes).digest('hex');
}

/** A buffer of `pages` guest pages: contiguous gfns, or every other gfn of a run (scattered). */
export function makeBuffer(k: Kernel, pages: number, scatter: boolean): IoBuffer {
  const gfns: number[] = [];
  const spare: number[] = [];
  while (gfns.length < pages) {
    const gfn = k.pages.alloc();
    if (scatter && gfns.length > 0 && gfn === gfns[gfns.length - 1] + 1) spare.push(gfn);
    else gfns.push(gfn);
  }
  for (const gfn of spare) k.pages.release(gfn);
  return { gfns, pages: gfns.map((g) => k.memory.page(g, true)), bytes: pages * PAGE_SIZE };
}

export async function runWorkload(k: Kernel, dev: BlockDevice, spec: WorkloadSpec): Promise<WorkloadResult> {
  const r = rng(spec.seed);
  const model = imagePattern(spec.imageSeed, dev.sectors * 512);
  const maxPages = Math.ceil((spec.maxSectors * 512) / PAGE_SIZE);
  const bufs = Array.from({ length: spec.depth }, (_, i) => makeBuffer(k, maxPages, i % 2 === 1));
  const inFlight: [number, number][] = [];
  const sizes = new Set<number>();
  const res: WorkloadResult = {
    writes: 0, reads: 0, bytesWritten: 0, bytesRead: 0, mismatches: 0, firstMismatch: null, sizesSeen: [], digest: '', ms: 0, driver: {},
  };
  const pick = (i: number): [number, number] => {
    for (;;) {
      // Every size from min to max; each phase starts with the two extremes, and they recur often.
      const roll = i < 2 ? i : r() % 8;
      const n = roll === 0 ? spec.maxSectors : roll === 1 ? spec.minSectors
        : spec.minSectors + (r() % (spec.maxSectors - spec.minSectors + 1));
      const sector = r() % (dev.sectors - n + 1);
      if (inFlight.every(([s, c]) => sector + n <= s || s + c <= sector)) return [sector, n];
    }
  };
  const t0 = performance.now();
  const phase = async (total: number, write: boolean) => {
    let issued = 0;
    const slot = async (buf: IoBuffer) => {
      while (issued < total) {
        const range = pick(issued++);
        const [sector, n] = range;
        sizes.add(n);
        inFlight.push(range);
        const bytes = n * 512;
        if (write) {
          const data = new Uint8Array(bytes);
          for (let i = 0; i < bytes; i += 4) {
            const v = r();
            data[i] = v; data[i + 1] = v >>> 8; data[i + 2] = v >>> 16; data[i + 3] = v >>> 24;
          }
          ioWrite(buf, 0, data);
          await dev.write(sector, n, buf);
          model.set(data, sector * 512);
          res.writes++;
          res.bytesWritten += bytes;
        } else {
          for (const p of buf.pages) p.fill(0xee); // stale bytes must not pass for data
          await dev.read(sector, n, buf);
          const got = new Uint8Array(bytes);
          ioRead(buf, 0, got);
          const want = model.subarray(sector * 512, sector * 512 + bytes);
          for (let i = 0; i < bytes; i++) {
            if (got[i] !== want[i]) {
              res.mismatches++;
              res.firstMismatch ??= `read ${n} sectors at ${sector}: byte ${i} is 0x${got[i].toString(16)}, model has 0x${want[i].toString(16)}`;
              break;
            }
          }
          res.reads++;
          res.bytesRead += bytes;
        }
        inFlight.splice(inFlight.indexOf(range), 1);
      }
    };
    await Promise.all(bufs.map(slot));
  };
  await phase(spec.writes, true);
  await phase(spec.reads, false);
  await dev.flush();
  res.ms = performance.now() - t0;
  res.digest = digest(model);
  res.sizesSeen = [...sizes].sort((a, b) => a - b);
  res.driver = dev.stats();
  for (const b of bufs) for (const g of b.gfns) k.pages.release(g);
  return res;
}
