/*
 * Test DomU: the vring frontend on the xenbus frontend bus. On the backend's InitWait (or at
 * once, for devices listed in `connectEarly`) it sets up the ringtest frontend and publishes it
 * in a transaction; once Connected it pushes checked requests through the ring; on the
 * backend's Closing it stops and goes Closed. The harness can also unplug a device from the
 * guest's side.
 */
import { BroadcastChannel } from 'node:worker_threads';
import { RingtestFront } from '../../domu/ringtest-front.ts';
import { Kernel } from '../../shared/kernel/kernel.ts';
import type { XenbusDevice } from '../../shared/kernel/xenbus/device.ts';
import { XenbusFrontend, registerFrontend, type FrontendDriver } from '../../shared/kernel/xenbus/frontend.ts';
import { xenbusInit } from '../../shared/kernel/xenbus/xs-ring.ts';
import type { KernelEnv } from '../../shared/public/hypercall.ts';
import {
  KEY_DATA_REFS, KEY_EVENT_CHANNEL, KEY_FEATURE_CHECK, KEY_INFO, KEY_RING_REF, VRING, type VringMessage,
} from './vring.ts';

export interface VringFrontModule {
  channel: string;
  connectEarly?: number[];
}

export async function main(env: KernelEnv): Promise<void> {
  const k = new Kernel(env);
  const idle = k.events.run();
  const mod = env.module as VringFrontModule;
  const ch = new BroadcastChannel(mod.channel);
  const post = (m: VringMessage) => ch.postMessage(m);
  const xs = xenbusInit(k);
  const devid = (dev: XenbusDevice) => Number(dev.nodename.slice(dev.nodename.lastIndexOf('/') + 1));
  const fronts = new Map<number, XenbusFrontend>();

  const makeDriver = (nodename: string): FrontendDriver => {
    let front: RingtestFront | null = null;
    const id = Number(nodename.slice(nodename.lastIndexOf('/') + 1));
    return {
      connectEarly: mod.connectEarly?.includes(id) ?? false,
      async publish(dev, t) {
        front ??= new RingtestFront(k, dev.otherendId);
        const c = front.connect;
        await xs.write(`${dev.nodename}/${KEY_RING_REF}`, String(c.ringRefs[0]), t);
        await xs.write(`${dev.nodename}/${KEY_EVENT_CHANNEL}`, String(c.port), t);
        await xs.write(`${dev.nodename}/${KEY_DATA_REFS}`, c.dataRefs.join(' '), t);
        await xs.write(`${dev.nodename}/${KEY_FEATURE_CHECK}`, '1', t);
      },
      async connect(dev) {
        const check = (await xs.tryRead(`${dev.otherend}/${KEY_FEATURE_CHECK}`)) === '1';
        const info = (await xs.tryRead(`${dev.otherend}/${KEY_INFO}`)) ?? '';
        const stats = await front!.run({ requests: 256, len: 1024, depth: 8, check });
        post({ kind: 'front-ran', devid: devid(dev), requests: stats.requests, info });
      },
      async close(dev) {
        if (front !== null) {
          // The backend may still map the ring: ending access defers until it unmaps.
          for (const ref of [...front.connect.ringRefs, ...front.connect.dataRefs]) k.gnttab.endAccess(ref);
          k.events.close(front.connect.port);
          front = null;
        }
        post({ kind: 'front-closed', devid: devid(dev) });
      },
    };
  };

  ch.onmessage = (ev) => {
    const m = (ev as { data: VringMessage }).data;
    if (m.kind === 'unplug') void fronts.get(m.devid)?.shutdown();
  };
  await registerFrontend(xs, VRING, makeDriver, {
    onState: (dev, state) => post({ kind: 'front-state', devid: devid(dev), state }),
    onProbe: (fe) => fronts.set(devid(fe.dev), fe),
  });
  await idle;
}
