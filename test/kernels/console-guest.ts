/*
 * Test DomU: writes the bytes it was given to its PV console, waits until xenconsoled has taken
 * them all off the ring, and says so; then echoes back whatever is typed at its console.
 */
import { BroadcastChannel } from 'node:worker_threads';
import { consoleInit } from '../../shared/kernel/console.ts';
import { Kernel } from '../../shared/kernel/kernel.ts';
import type { KernelEnv } from '../../shared/public/hypercall.ts';

export interface ConsoleGuestModule {
  channel: string;
  data: Uint8Array;
}

export async function main(env: KernelEnv): Promise<void> {
  const k = new Kernel(env);
  const idle = k.events.run();
  const { channel, data } = env.module as ConsoleGuestModule;
  const ch = new BroadcastChannel(channel);
  const cons = consoleInit(k);
  let echoed = 0;
  cons.onInput = (bytes) => {
    cons.write(bytes);
    echoed += bytes.length;
    void cons.drained().then(() => ch.postMessage({ kind: 'echoed', bytes: echoed }));
  };
  cons.write(data);
  await cons.drained();
  ch.postMessage({ kind: 'written', bytes: data.length, notifications: cons.stats.notifications });
  await idle;
}
