/*
 * Dom0 kernel for the ring suite: boots, then serves ringtest frontends as they connect.
 *
 * Xen: what Dom0's kernel does for a backend driver (xen-blkback's probe, connect and
 * disconnect), with the connection details arriving on the harness's channel instead of
 * through XenStore (see protocol.ts).
 */
import { BroadcastChannel } from 'node:worker_threads';
import { RingtestBack } from '../../dom0/backends/ringtest-back.ts';
import { Kernel } from '../../shared/kernel/kernel.ts';
import type { KernelEnv } from '../../shared/public/hypercall.ts';
import type { RingtestMessage, RingtestModule } from './protocol.ts';

export async function main(env: KernelEnv): Promise<void> {
  const k = new Kernel(env);
  const { channel, back } = env.module as RingtestModule;
  const ch = new BroadcastChannel(channel);
  const post = (m: RingtestMessage) => ch.postMessage(m);
  const backs = new Map<number, RingtestBack>();
  ch.onmessage = (ev) => {
    const m = (ev as { data: RingtestMessage }).data;
    if (m.kind === 'connect') {
      try {
        backs.set(m.connect.frontend, new RingtestBack(k, m.connect, back));
        post({ kind: 'connected', frontend: m.connect.frontend });
      } catch (e) {
        post({ kind: 'failed', domid: m.connect.frontend, error: String((e as Error).message) });
      }
    } else if (m.kind === 'disconnect') {
      const back = backs.get(m.frontend);
      if (!back) return;
      back.disconnect();
      backs.delete(m.frontend);
      post({ kind: 'disconnected', frontend: m.frontend, stats: back.stats });
    }
  };
  post({ kind: 'backend-ready' });
  await k.events.run();
}
