/*
 * A burst of writes all in flight at once, each answered exactly once and read back: the guest's
 * half of the backend-recovery tests (a backend killed mid-I/O, test/blk-recover.test.ts) and of
 * the single-conduit scenario.
 *
 * Not a Xen component. It submits `requests` writes of `sectors` sectors each together (they are
 * all on the rings, or queued, before the first answer), each at its own place
 * (`request * stride` sectors from `start`) with its own data (fillPattern with `seed + request`),
 * counts how many times each one is answered, waits until every one has been, flushes, reads every
 * range back and compares. Whatever happened to the backend in between, the device's contract is:
 * one answer per request, and what was acknowledged is what a read returns. The result says how
 * far that held; the test compares the image file on the host too.
 */
import { checksum, fillPattern } from '../../shared/checksum.ts';
import type { Kernel } from '../../shared/kernel/kernel.ts';
import { allocIoBuffer, ioRead, ioWrite, type BlockDevice, type BlockRequest } from '../block/blkdev.ts';

export interface BurstJob {
  requests: number;
  sectors: number;
  /** First sector, and the distance between two requests' first sectors (at least `sectors`). */
  start: number;
  stride: number;
  seed: number;
}

export interface BurstResult {
  requests: number;
  /** How many times each request was answered (1 each, when the device keeps its contract). */
  answers: number[];
  /** Requests answered with an error, and why. */
  errors: string[];
  /** Requests whose range did not read back as written. */
  mismatches: number[];
  /** checksum() of each request's data, for the test to compare with the image file. */
  sums: number[];
  ms: number;
}

export async function runBurst(k: Kernel, dev: BlockDevice, job: BurstJob): Promise<BurstResult> {
  if (job.stride < job.sectors) throw new Error(`burst: stride ${job.stride} is below the request size ${job.sectors}`);
  const bytes = job.sectors * 512;
  const data: Uint8Array[] = [];
  const reqs: BlockRequest[] = [];
  const answers = new Array<number>(job.requests).fill(0);
  const errors: string[] = [];
  let answered = 0;
  let allAnswered!: () => void;
  const all = new Promise<void>((r) => { allAnswered = r; });
  for (let i = 0; i < job.requests; i++) {
    const d = new Uint8Array(bytes);
    fillPattern(d, job.seed + i);
    data.push(d);
    const buf = allocIoBuffer(k.memory, () => k.pages.alloc(), bytes);
    ioWrite(buf, 0, d);
    reqs.push({
      op: 'write', sector: job.start + i * job.stride, count: job.sectors, buf,
      done: (status, why) => {
        if (answers[i]++ === 0) answered++;
        if (status !== 0) errors.push(`request ${i}: ${why ?? `status ${status}`}`);
        if (answered === job.requests) allAnswered();
        k.events.wakeAsync();
      },
    });
  }
  const t0 = performance.now();
  for (const r of reqs) dev.submit(r);
  await all;
  const ms = performance.now() - t0;
  await dev.flush();
  const mismatches: number[] = [];
  const back = new Uint8Array(bytes);
  for (let i = 0; i < job.requests; i++) {
    const r = reqs[i];
    await dev.read(r.sector, r.count, r.buf!);
    ioRead(r.buf!, 0, back);
    if (checksum(back) !== checksum(data[i])) mismatches.push(i);
  }
  for (const r of reqs) for (const g of r.buf!.gfns) k.pages.release(g);
  return { requests: job.requests, answers, errors, mismatches, sums: data.map((d) => checksum(d)), ms };
}
