/*
 * Dom0 kernel module (loaded by dom0/kernel.ts from its boot module's `modules`): the vring
 * backend, registered on the xenbus backend bus. Its connect reads the frontend's keys from the
 * store and attaches the ringtest backend to the ring they describe.
 */
import { BroadcastChannel } from 'node:worker_threads';
import type { Dom0 } from '../../dom0/dom0.ts';
import { RingtestBack } from '../../dom0/backends/ringtest-back.ts';
import { registerBackend, type BackendDriver } from '../../shared/kernel/xenbus/backend.ts';
import type { XenbusDevice } from '../../shared/kernel/xenbus/device.ts';
import {
  KEY_DATA_REFS, KEY_EVENT_CHANNEL, KEY_FEATURE_CHECK, KEY_INFO, KEY_RING_REF, VRING, VRING_BACK_CHANNEL, type VringMessage,
} from './vring.ts';

export async function init(dom0: Dom0): Promise<void> {
  const ch = new BroadcastChannel(VRING_BACK_CHANNEL);
  const post = (m: VringMessage) => ch.postMessage(m);
  const makeDriver = (): BackendDriver => {
    let back: RingtestBack | null = null;
    return {
      async probe(dev: XenbusDevice) {
        await dom0.xs.write(`${dev.nodename}/${KEY_FEATURE_CHECK}`, '1');
      },
      async connect(dev: XenbusDevice) {
        const fe = dev.otherend;
        const ring = await dom0.xs.read(`${fe}/${KEY_RING_REF}`);
        const port = await dom0.xs.read(`${fe}/${KEY_EVENT_CHANNEL}`);
        const data = await dom0.xs.read(`${fe}/${KEY_DATA_REFS}`);
        back = new RingtestBack(dom0.k, {
          frontend: dev.otherendId, ringRefs: [Number(ring)], port: Number(port), dataRefs: data.split(' ').map(Number),
        }, { mode: 'map' });
        await dom0.xs.write(`${dev.nodename}/${KEY_INFO}`, 'ready');
      },
      async disconnect() {
        back?.disconnect();
        back = null;
      },
    };
  };
  await registerBackend(dom0.xs, VRING, makeDriver, {
    onState: (dev, state) => post({ kind: 'back-state', nodename: dev.nodename, state }),
    onRemove: (dev) => post({ kind: 'back-removed', nodename: dev.nodename, history: [...dev.history] }),
  });
}
