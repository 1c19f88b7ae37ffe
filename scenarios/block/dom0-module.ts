/*
 * A Dom0 kernel module for the block harness: loads blkback, and runs the benchmark's
 * "native" jobs, in Dom0's own thread, with the very calls blkback makes (RawImage.readv /
 * writev on page-sized views of Dom0's memory), so native and PV differ only by the split driver.
 */
import { BroadcastChannel } from 'node:worker_threads';
import { RawImage } from '../../dom0/lib/raw-image.ts';
import { init as initBlkback, vbds } from '../../dom0/backends/blkback/module.ts';
import type { Dom0 } from '../../dom0/dom0.ts';
import { fioResult, jobSectors, type FioJob, type FioResult } from '../../domu/workloads/fio.ts';
import type { BlockMessage } from './protocol.ts';
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
    if (m.kind !== 'native') return;
    try {
      ch.postMessage({ kind: 'native-done', id: m.id, result: runNative(dom0, m.image, m.job) } satisfies BlockMessage);
    } catch (e) {
      ch.postMessage({ kind: 'native-done', id: m.id, result: null, error: String(e) } satisfies BlockMessage);
    }
  };
}

/** The same job as fio.ts, synchronously, straight on the image. */
function runNative(dom0: Dom0, image: string, job: FioJob): FioResult {
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
    const run = (n: number) => {
      for (let i = 0; i < n; i++) {
        const iov = iovs[i % job.iodepth];
        if (write) disk.writev(next(), iov);
        else disk.readv(next(), iov);
      }
    };
    run(job.warmup ?? 0);
    const t0 = performance.now();
    run(job.ios);
    return fioResult(job, performance.now() - t0);
  } finally {
    disk.close();
    for (const g of gfns) k.pages.release(g);
  }
}
