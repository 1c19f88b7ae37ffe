/*
 * The xenbus frontend and backend state machines (shared/kernel/xenbus/frontend.ts, backend.ts)
 * in one thread over the fake rig: the order Linux uses, the shortcuts it tolerates, and both
 * ways of closing. The same handshake across real threads is xenbus-handshake.test.ts.
 */
import test from 'ava';
import { addDeviceNodes, removeDeviceNodes, type DeviceSpec } from '../dom0/toolstack/xenstore-home.ts';
import { registerBackend, type BackendDriver } from '../shared/kernel/xenbus/backend.ts';
import type { XenbusDevice } from '../shared/kernel/xenbus/device.ts';
import { registerFrontend, type FrontendDriver, type XenbusFrontend } from '../shared/kernel/xenbus/frontend.ts';
import { XenbusState, backendPath } from '../shared/public/io/xenbus.ts';
import { makeRig, settle } from './helpers/xs-fake.ts';

const { InitWait, Initialised, Connected, Closing, Closed } = XenbusState;

/** Let the rig run until `cond` holds (event-loop turns, not time). */
async function until(cond: () => boolean): Promise<void> {
  for (let i = 0; i < 2000 && !cond(); i++) await settle();
}

interface Ends {
  front: number[];
  back: number[];
  frontends: XenbusFrontend[];
  calls: string[];
}

async function setup(type: string, opts: { connectEarly?: boolean; skipInitWait?: boolean; noBackend?: boolean } = {}) {
  const rig = await makeRig();
  const g = await rig.addGuest(1);
  const ends: Ends = { front: [], back: [], frontends: [], calls: [] };
  const frontDriver = (): FrontendDriver => ({
    connectEarly: opts.connectEarly,
    async publish(dev: XenbusDevice, t: number) {
      ends.calls.push('front:publish');
      await g.xs.write(`${dev.nodename}/ring-ref`, '42', t);
    },
    async connect(dev: XenbusDevice) {
      ends.calls.push(`front:connect:${await g.xs.tryRead(`${dev.otherend}/sectors`)}`);
    },
    async close() {
      ends.calls.push('front:close');
    },
  });
  const backDriver = (): BackendDriver => ({
    async probe(dev) {
      ends.calls.push('back:probe');
      await rig.dom0.write(`${dev.nodename}/feature-x`, '1');
    },
    async connect(dev) {
      ends.calls.push(`back:connect:${await rig.dom0.read(`${dev.otherend}/ring-ref`)}`);
      await rig.dom0.write(`${dev.nodename}/sectors`, '2048');
    },
    async disconnect() {
      ends.calls.push('back:disconnect');
    },
  });
  if (!opts.noBackend) {
    await registerBackend(rig.dom0, type, backDriver, { skipInitWait: opts.skipInitWait, onState: (_d, s) => ends.back.push(s) });
  }
  await registerFrontend(g.xs, type, frontDriver, {
    onState: (_d, s) => ends.front.push(s),
    onProbe: (fe) => ends.frontends.push(fe),
  });
  const dev: DeviceSpec = { type, frontend: 1, devid: 0 };
  await addDeviceNodes(rig.dom0, dev);
  return { rig, g, ends, dev };
}

test('the usual order: backend InitWait, frontend Initialised, backend Connected, frontend Connected', async (t) => {
  const { ends } = await setup('usual');
  await until(() => ends.front.includes(Connected));
  t.deepEqual(ends.back, [InitWait, Connected]);
  t.deepEqual(ends.front, [Initialised, Connected]);
  t.deepEqual(ends.calls, ['back:probe', 'front:publish', 'back:disconnect', 'back:connect:42', 'front:connect:2048']);
});

test('shortcuts: a frontend that publishes early and a backend that skips InitWait still connect', async (t) => {
  const { ends } = await setup('early', { connectEarly: true, skipInitWait: true });
  await until(() => ends.front.includes(Connected));
  t.deepEqual(ends.back, [Connected]);
  t.deepEqual(ends.front, [Initialised, Connected]);
});

test('shortcut: a backend that goes straight to Connected gets the frontend to publish, then connect', async (t) => {
  const { rig, ends } = await setup('jump', { noBackend: true });
  await until(() => ends.frontends.length > 0);
  await rig.dom0.write(`${backendPath(0, 'jump', 1, 0)}/state`, String(Connected));
  await until(() => ends.front.includes(Connected));
  t.deepEqual(ends.front, [Initialised, Connected]);
  t.deepEqual(ends.calls, ['front:publish', 'front:connect:null']);
});

test('the toolstack removes a device: backend Closing → frontend Closed → backend Closed, directories gone', async (t) => {
  const { rig, ends, dev } = await setup('remove');
  await until(() => ends.front.includes(Connected));
  await removeDeviceNodes(rig.dom0, dev);
  t.deepEqual(ends.front, [Initialised, Connected, Closed]);
  t.deepEqual(ends.back, [InitWait, Connected, Closed]);
  t.is(await rig.dom0.tryRead(backendPath(0, 'remove', 1, 0)), null);
  t.is(await rig.dom0.tryRead('/local/domain/1/device/remove/0'), null);
});

test('the guest unplugs a device: frontend Closing → backend Closing → frontend Closed → backend Closed', async (t) => {
  const { ends } = await setup('unplug');
  await until(() => ends.front.includes(Connected));
  await ends.frontends[0].shutdown();
  await until(() => ends.back.includes(Closed));
  t.deepEqual(ends.front, [Initialised, Connected, Closing, Closed]);
  t.deepEqual(ends.back, [InitWait, Connected, Closing, Closed]);
  t.true(ends.calls.includes('front:close'));
});
