/*
 * A Dom0 kernel module for the block harness: loads blkback, and runs the benchmark's
 * "native" jobs, in Dom0's own thread, with the very calls blkback makes (preadv / pwritev on
 * page-sized views of Dom0's memory, through the same RawImage, dom0/lib/raw-image.ts), so native
 * and PV differ only by the split driver.
 *
 * Native at the depth it claims. At depth 1 a native job makes blkback's call exactly: one
 * synchronous preadv/pwritev after another on Dom0's thread, one request in flight. At depth N
 * it keeps N requests in flight: the same preadv/pwritev, issued asynchronously (RawImage's
 * readvAsync / writevAsync: fs.readv / fs.writev on the same descriptor, which run them on
 * libuv's thread pool, UV_THREADPOOL_SIZE threads, 4 by default),
 * a new one as each completes, as fio's slots do. Why the thread pool and not "one thread per
 * blkback queue": ringvisor's blkback serves all its queues from Dom0's one vCPU thread with
 * synchronous calls, so a thread per queue would still be one file request at a time, and a
 * "qd32" row would again be qd1; the thread pool is how Node keeps N file requests outstanding.
 * The result says how many were in flight at most (measured, not assumed) and on how many threads.
 */
import { BroadcastChannel } from 'node:worker_threads';
import { RawImage } from '../../dom0/lib/raw-image.ts';
import { init as initBlkback, vbds } from '../../backends/blkback/module.ts';
import type { Dom0 } from '../../dom0/dom0.ts';
import { fioResult, jobSectors, type FioJob } from '../../domu/workloads/fio.ts';
import type { BlockMessage, NativeResult } from './protocol.ts';
import { startIdeModel, type IdeModel } from '../../dom0/device-models/ide/piix.ts';

export async function init(dom0: Dom0): Promise<void> {
  await initBlkback(dom0);
  const control = (dom0.k.env.module as { control?: string }).control;
  if (control === undefined) return;
  const ch = new BroadcastChannel(`${control}-blk`);
  const models = new Map<number, IdeModel>();
  ch.onmessage = (ev) => {
    const m = (ev as { data: BlockMessage }).data;
    if (m.kind === 'ide-start') {
      // What libxl does for an HVM guest's hdX: start the device model while the guest is paused.
      try {
        models.set(m.domid, startIdeModel(dom0.k, { domid: m.domid, image: m.image, readOnly: m.readOnly, vcpus: 1 }));
        ch.postMessage({ kind: 'ide-done', id: m.id } satisfies BlockMessage);
      } catch (e) {
        ch.postMessage({ kind: 'ide-done', id: m.id, error: String(e) } satisfies BlockMessage);
      }
      return;
    }
    if (m.kind === 'ide-stop') {
      const model = models.get(m.domid);
      models.delete(m.domid);
      const st = model?.stats();
      model?.stop();
      const stats: Record<string, number> = st ? { commands: st.ata.commands, sectorsRead: st.ata.sectorsRead, sectorsWritten: st.ata.sectorsWritten } : {};
      ch.postMessage({ kind: 'ide-done', id: m.id, stats } satisfies BlockMessage);
      return;
    }
    if (m.kind === 'vbd-stats') {
      const stats = Object.fromEntries([...vbds.entries()].map(([path, be]) => [path, be.stats()]));
      ch.postMessage({ kind: 'vbd-stats-reply', id: m.id, stats } satisfies BlockMessage);
      return;
    }
    if (m.kind === 'dom0-wait') {
      ch.postMessage({ kind: 'dom0-wait-reply', id: m.id, kernel: { wait: dom0.k.wait, idle: { ...dom0.k.events.idle } } } satisfies BlockMessage);
      return;
    }
    if (m.kind !== 'native') return;
    runNative(dom0, m.image, m.job).then(
      (result) => ch.postMessage({ kind: 'native-done', id: m.id, result } satisfies BlockMessage),
      (e) => ch.postMessage({ kind: 'native-done', id: m.id, result: null, error: String(e) } satisfies BlockMessage),
    );
  };
}

/** libuv's thread pool: the threads that run asynchronous file calls (Node's default is 4). */
const POOL_THREADS = Number(process.env.UV_THREADPOOL_SIZE) || 4;

/** The same job as fio.ts, straight on the image, at its depth (see the header). */
async function runNative(dom0: Dom0, image: string, job: FioJob): Promise<NativeResult> {
  const k = dom0.k;
  const write = job.rw === 'write' || job.rw === 'randwrite';
  const disk = new RawImage(image, !write);
  const pages = Math.ceil(job.bs / 4096);
  const gfns: number[] = [];
  const iovs: Uint8Array[][] = [];
  for (let d = 0; d < job.iodepth; d++) {
    const iov: Uint8Array[] = [];
    for (let p = 0; p < pages; p++) {
      const gfn = k.pages.alloc();
      gfns.push(gfn);
      const view = k.memory.page(gfn, true);
      iov.push(job.bs < 4096 ? view.subarray(0, job.bs) : view);
    }
    iovs.push(iov);
  }
  try {
    const next = jobSectors(job, disk.sectors);
    const run = job.iodepth === 1 ? (n: number, ms?: number) => Promise.resolve(syncRun(disk, write, iovs[0], next, n, ms))
      : (n: number, ms?: number) => asyncRun(disk, write, iovs, next, n, ms);
    if (job.runtimeMs !== undefined && job.warmupMs) await run(Infinity, job.warmupMs);
    else if (job.warmup) await run(job.warmup);
    const t0 = performance.now();
    const r = await run(job.ios, job.runtimeMs);
    const ms = performance.now() - t0;
    return { ...fioResult(job, ms, r.done, r.maxInFlight), inFlight: r.maxInFlight, threads: job.iodepth === 1 ? 1 : Math.min(job.iodepth, POOL_THREADS) };
  } finally {
    disk.close();
    for (const g of gfns) k.pages.release(g);
  }
}

interface Ran { done: number; maxInFlight: number }

/** Depth 1: blkback's own call, one after another on this thread. */
function syncRun(disk: RawImage, write: boolean, iov: Uint8Array[], next: () => number, total: number, forMs?: number): Ran {
  const deadline = forMs === undefined ? Infinity : performance.now() + forMs;
  const want = iov.reduce((n, v) => n + v.length, 0);
  let done = 0;
  while (done < total && (deadline === Infinity || performance.now() < deadline)) {
    const sector = next();
    const got = write ? disk.writev(sector, iov) : disk.readv(sector, iov);
    if (got !== want) throw new Error(`short ${write ? 'pwritev' : 'preadv'} at sector ${sector}: ${got} of ${want}`);
    done++;
  }
  return { done, maxInFlight: done > 0 ? 1 : 0 };
}

/** Depth N: N asynchronous calls outstanding, each slot reissued from its own completion (no closure per request). */
function asyncRun(disk: RawImage, write: boolean, iovs: Uint8Array[][], next: () => number, total: number, forMs?: number): Promise<Ran> {
  return new Promise((resolve, reject) => {
    const deadline = forMs === undefined ? Infinity : performance.now() + forMs;
    const want = iovs[0].reduce((n, v) => n + v.length, 0);
    let issued = 0;
    let finished = 0;
    let maxInFlight = 0;
    let failed: string | null = null;
    const call = write ? disk.writevAsync : disk.readvAsync;
    const slots = iovs.map((iov) => {
      const slot = {
        pos: 0,
        issue(): void {
          issued++;
          if (issued - finished > maxInFlight) maxInFlight = issued - finished;
          slot.pos = next();
          call.call(disk, slot.pos, iov, slot.done);
        },
        done(err: NodeJS.ErrnoException | null, got: number): void {
          finished++;
          if (failed === null && (err !== null || got !== want)) failed = err?.message ?? `short I/O at sector ${slot.pos}: ${got} of ${want}`;
          if (failed === null && issued < total && (deadline === Infinity || performance.now() < deadline)) slot.issue();
          else if (finished === issued) {
            if (failed === null) resolve({ done: finished, maxInFlight });
            else reject(new Error(failed));
          }
        },
      };
      return slot;
    });
    for (const s of slots) {
      if (issued === total) break;
      s.issue();
    }
    if (total === 0) resolve({ done: 0, maxInFlight: 0 });
  });
}
