/*
 * Test DomU: a well-behaved XenStore client that keeps writing, reading back and transacting on
 * its own nodes until told to stop, counting every operation and every failure. It runs while
 * other guests attack xenstored (test/hostile-guest.test.ts).
 */
import { BroadcastChannel } from 'node:worker_threads';
import { Kernel } from '../../shared/kernel/kernel.ts';
import { xenbusInit } from '../../shared/kernel/xenbus/xs-ring.ts';
import type { KernelEnv } from '../../shared/public/hypercall.ts';

export type XsClientMessage =
  | { kind: 'client-started' }
  | { kind: 'client-stop' }
  | { kind: 'client-done'; ops: number; failures: string[] };

export async function main(env: KernelEnv): Promise<void> {
  const k = new Kernel(env);
  const idle = k.events.run();
  const { channel } = env.module as { channel: string };
  const ch = new BroadcastChannel(channel);
  let stop = false;
  ch.onmessage = (ev) => {
    if ((ev as { data: XsClientMessage }).data.kind === 'client-stop') stop = true;
  };
  const xs = xenbusInit(k);
  const failures: string[] = [];
  let ops = 0;
  const check = (what: string, ok: boolean) => {
    ops++;
    if (!ok) failures.push(what);
  };
  ch.postMessage({ kind: 'client-started' } satisfies XsClientMessage);
  for (let i = 0; !stop || i < 50; i++) {
    try {
      const v = `value-${i}`;
      await xs.write(`data/k${i % 20}`, v);
      check(`read k${i % 20}`, (await xs.read(`data/k${i % 20}`)) === v);
      if (i % 10 === 0) {
        await xs.transaction(async (t) => {
          const n = Number((await xs.tryRead('data/count', t)) ?? '0');
          await xs.write('data/count', String(n + 1), t);
        });
        check('transaction', true);
      }
      check('directory', (await xs.directory('data')).length > 0);
    } catch (e) {
      failures.push(String(e));
    }
  }
  ch.postMessage({ kind: 'client-done', ops, failures } satisfies XsClientMessage);
  await idle;
}
