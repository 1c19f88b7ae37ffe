/*
 * The DomU kernel of the block harness: boots, lets xenbus find its virtual disk, runs the
 * task list (fio jobs, verify runs) on it, reports each result, closes the disk and powers off.
 */
import { BroadcastChannel } from 'node:worker_threads';
import { Blkfront } from '../../domu/blkfront/blkfront.ts';
import { probeIde } from '../../domu/ide/disk.ts';
import type { IoBuffer } from '../../domu/block/blkdev.ts';
import { fioBuffers, fioRun } from '../../domu/workloads/fio.ts';
import { runVerify } from '../../domu/workloads/verify.ts';
import { runBurst } from '../../domu/workloads/burst.ts';
import { Kernel } from '../../shared/kernel/kernel.ts';
import { registerFrontend } from '../../shared/kernel/xenbus/frontend.ts';
import { xenbusInit } from '../../shared/kernel/xenbus/xs-ring.ts';
import type { KernelEnv } from '../../shared/public/hypercall.ts';
import type { BlockGuestModule, BlockMessage, BlockOpOutcome, BlockOpStep, BlockTaskResult } from './protocol.ts';
import { allocIoBuffer, ioRead, ioWrite, type BlockDevice } from '../../domu/block/blkdev.ts';
import { checksum, fillPattern } from '../../shared/checksum.ts';

export async function main(env: KernelEnv): Promise<void> {
  const k = new Kernel(env);
  void k.events.run();
  const m = env.module as BlockGuestModule;
  const ch = new BroadcastChannel(m.channel);
  const post = (msg: BlockMessage) => ch.postMessage(msg);
  const goes = new Map<number, () => void>();
  ch.onmessage = (ev) => {
    const msg = (ev as { data: BlockMessage }).data;
    if (msg.kind === 'go' && msg.nonce === m.nonce) goes.get(msg.index)?.();
  };
  const dev = m.path === 'emu-dma' || m.path === 'emu-pio' ? await probeIde(k, { mode: m.path }) : await pvDisk(k, m);
  const negotiated = dev instanceof Blkfront ? { ...dev.negotiated } : {};
  post({
    kind: 'connected', nonce: m.nonce,
    device: { name: dev.name, sectors: dev.sectors, readOnly: dev.readOnly, features: dev.features, negotiated },
  });
  const buffers = new Map<string, IoBuffer[]>();
  for (let i = 0; i < m.tasks.length; i++) {
    const task = m.tasks[i];
    try {
      let result: BlockTaskResult;
      if (task.kind === 'fio') {
        const key = `${task.job.bs}x${task.job.iodepth}`;
        if (!buffers.has(key)) buffers.set(key, fioBuffers(k, task.job.bs, task.job.iodepth));
        const bufs = buffers.get(key)!;
        // Two stops, each waiting for the harness's 'go': before the warm-up (the benchmark runs
        // one path at a time, warm-up included) and before the timed part (counters start there).
        const run = fioRun(dev, task.job, bufs);
        await new Promise<void>((go) => { goes.set(i, go); post({ kind: 'mark', nonce: m.nonce, index: i, phase: 'warmup' }); });
        await run.warmup();
        await new Promise<void>((go) => { goes.set(i, go); post({ kind: 'mark', nonce: m.nonce, index: i, phase: 'timed' }); });
        result = { kind: 'fio', result: await run.timed() };
      } else if (task.kind === 'verify') {
        result = { kind: 'verify', result: await runVerify(k, dev, task.job) };
      } else if (task.kind === 'burst') {
        await new Promise<void>((go) => { goes.set(i, go); post({ kind: 'mark', nonce: m.nonce, index: i, phase: 'warmup' }); });
        result = { kind: 'burst', result: await runBurst(k, dev, task.job) };
      } else {
        result = { kind: 'ops', result: await runSteps(k, dev, task.steps) };
      }
      post({ kind: 'task-done', nonce: m.nonce, index: i, result, stats: dev.stats() });
    } catch (e) {
      post({ kind: 'task-failed', nonce: m.nonce, index: i, error: e instanceof Error ? `${e.message}\n${e.stack}` : String(e) });
    }
  }
  if (dev instanceof Blkfront) await dev.closeDevice();
  else await dev.close();
  post({ kind: 'closed', nonce: m.nonce, states: [], kernel: { wait: k.wait, idle: { ...k.events.idle } } });
  ch.close();
}

/** Explicit requests, one after another; reads report a checksum of what came back. */
async function runSteps(k: Kernel, dev: BlockDevice, steps: BlockOpStep[]): Promise<BlockOpOutcome[]> {
  // A buffer for the largest read or write (a discard or flush moves no data through it).
  const max = Math.max(1, ...steps.map((s) => (s.op === 'read' || s.op === 'write' ? s.count : 0))) * 512;
  const buf = allocIoBuffer(k.memory, () => k.pages.alloc(), max);
  const out: BlockOpOutcome[] = [];
  for (const s of steps) {
    const bytes = new Uint8Array(s.count * 512);
    try {
      if (s.op === 'write') {
        fillPattern(bytes, s.seed ?? 1);
        ioWrite(buf, 0, bytes);
        await dev.write(s.sector, s.count, buf);
        out.push({ ok: true, sum: checksum(bytes) });
      } else if (s.op === 'read') {
        await dev.read(s.sector, s.count, buf);
        ioRead(buf, 0, bytes);
        out.push({ ok: true, sum: checksum(bytes) });
      } else if (s.op === 'flush') {
        await dev.flush();
        out.push({ ok: true });
      } else {
        await dev.discard(s.sector, s.count);
        out.push({ ok: true });
      }
    } catch (e) {
      out.push({ ok: false, error: e instanceof Error ? e.message : String(e) });
    }
  }
  return out;
}

/** The PV disk: let xenbus find device/vbd/<devid> and connect blkfront to its backend. */
async function pvDisk(k: Kernel, m: BlockGuestModule): Promise<Blkfront> {
  const xs = xenbusInit(k);
  const dev = await new Promise<Blkfront>((resolve) => {
    let front: Blkfront;
    void registerFrontend(xs, 'vbd', () => (front = new Blkfront(k, m.front)), {
      onProbe: (fe) => {
        front.shutdownHook = () => fe.shutdown();
        resolve(front);
      },
    });
  });
  await dev.connected;
  return dev;
}
