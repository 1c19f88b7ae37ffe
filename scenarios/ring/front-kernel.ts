/*
 * DomU kernel for the ring suite: boots, connects a ringtest frontend to Dom0, runs the
 * requested workload, reports, and on request gives every grant back before powering off.
 */
import { BroadcastChannel } from 'node:worker_threads';
import { RingtestFront } from '../../domu/ringtest-front.ts';
import { Kernel } from '../../shared/kernel/kernel.ts';
import type { KernelEnv } from '../../shared/public/hypercall.ts';
import { mixedLength, type RingtestMessage, type RingtestModule } from './protocol.ts';

export async function main(env: KernelEnv): Promise<void> {
  const k = new Kernel(env);
  void k.events.run();
  const { channel, nonce } = env.module as RingtestModule;
  const ch = new BroadcastChannel(channel);
  const post = (m: RingtestMessage) => ch.postMessage(m);
  const inbox: RingtestMessage[] = [];
  let waiting: (() => void) | null = null;
  ch.onmessage = (ev) => {
    inbox.push((ev as { data: RingtestMessage }).data);
    waiting?.();
  };
  const next = async <K extends RingtestMessage['kind']>(kind: K, match: (m: Extract<RingtestMessage, { kind: K }>) => boolean) => {
    for (;;) {
      const i = inbox.findIndex((m) => m.kind === kind && match(m as Extract<RingtestMessage, { kind: K }>));
      if (i >= 0) return inbox.splice(i, 1)[0] as Extract<RingtestMessage, { kind: K }>;
      await new Promise<void>((r) => { waiting = r; });
    }
  };

  post({ kind: 'frontend-ready', nonce: nonce ?? '' });
  const start = await next('start', () => true);
  const domid = start.domid;
  const front = new RingtestFront(k, start.backend, start.front);
  front.connect.frontend = domid;
  post({ kind: 'connect', connect: front.connect });
  await next('connected', (m) => m.frontend === domid);
  const run = { ...start.run, len: start.run.len === 'mixed' ? mixedLength : start.run.len };
  if (run.warmup) {
    await front.run({ ...run, requests: run.warmup });
    for (const key of Object.keys(front.stats) as (keyof typeof front.stats)[]) front.stats[key] = 0;
  }
  post({ kind: 'warm', domid });
  const armedBefore = front.ring.armed;
  const t0 = performance.now();
  const stats = await front.run(run);
  stats.armed -= armedBefore;
  post({ kind: 'result', domid, stats, ms: performance.now() - t0 });

  // Teardown in Xen's order: the backend unmaps first, then the frontend can end access.
  await next('release', (m) => m.domid === domid);
  for (const ref of [...front.connect.ringRefs, ...front.connect.dataRefs]) k.gnttab.endAccess(ref);
  k.events.close(front.connect.port);
  post({ kind: 'released', domid, deferred: k.gnttab.deferredCount });
  ch.close();
}
