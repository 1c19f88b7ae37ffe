/*
 * DomU kernel for the xenstore benchmark: times XenStore requests from a guest, through its ring
 * page, its store event channel and xenstored in Dom0, one at a time (queue depth 1), as a
 * device handshake issues them.
 *
 * After a warm-up it waits for the harness's 'go' (so the harness can read the hypervisor's
 * counters at the start of the measured run), then times each request and reports them all.
 */
import { BroadcastChannel } from 'node:worker_threads';
import { Kernel } from '../../shared/kernel/kernel.ts';
import { xenbusInit } from '../../shared/kernel/xenbus/xs-ring.ts';
import type { KernelEnv } from '../../shared/public/hypercall.ts';

export type XsBenchOp = 'read' | 'write';

export interface XsBenchModule {
  channel: string;
  op: XsBenchOp;
  warmup: number;
  requests: number;
}

export type XsBenchMessage =
  | { kind: 'warmed'; op: XsBenchOp }
  | { kind: 'go'; op: XsBenchOp }
  | { kind: 'result'; op: XsBenchOp; us: number[]; totalMs: number };

export async function main(env: KernelEnv): Promise<void> {
  const k = new Kernel(env);
  const idle = k.events.run();
  const mod = env.module as XsBenchModule;
  const ch = new BroadcastChannel(mod.channel);
  let go: (() => void) | null = null;
  ch.onmessage = (ev) => {
    const m = (ev as { data: XsBenchMessage }).data;
    if (m.kind === 'go' && m.op === mod.op) go?.();
  };
  const xs = xenbusInit(k);
  const path = 'data/bench';
  await xs.write(path, 'x'.repeat(32));
  const once = mod.op === 'read' ? () => xs.read(path) : (i: number) => xs.write(path, `v${i}`);
  for (let i = 0; i < mod.warmup; i++) await once(i);
  const started = new Promise<void>((r) => { go = r; });
  ch.postMessage({ kind: 'warmed', op: mod.op } satisfies XsBenchMessage);
  await started;
  const us: number[] = new Array(mod.requests);
  const t0 = performance.now();
  for (let i = 0; i < mod.requests; i++) {
    const s = performance.now();
    await once(i);
    us[i] = (performance.now() - s) * 1000;
  }
  const totalMs = performance.now() - t0;
  ch.postMessage({ kind: 'result', op: mod.op, us, totalMs } satisfies XsBenchMessage);
  await idle;
}
