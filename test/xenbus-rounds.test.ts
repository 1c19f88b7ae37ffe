/*
 * How many sequential xenstore round trips a netfront-style frontend needs from its probe to
 * Connected (shared/kernel/xenbus/frontend.ts, device.ts), with the backend already waiting in
 * InitWait as libxl leaves it before a guest runs (a migrated guest's vif at the unpause). Each
 * round trip costs a DomU two vCPU wake-ups, and the peers of a migrated guest wait for all of them
 * (README, "Save, restore and live migration"). Over the single-threaded rig: counts, not time.
 */
import test from 'ava';
import { addDeviceNodes, type DeviceSpec } from '../dom0/toolstack/xenstore-home.ts';
import { registerBackend, type BackendDriver } from '../shared/kernel/xenbus/backend.ts';
import type { XenbusDevice } from '../shared/kernel/xenbus/device.ts';
import { registerFrontend, type FrontendDriver } from '../shared/kernel/xenbus/frontend.ts';
import { XenbusState, backendPath } from '../shared/public/io/xenbus.ts';
import { XS_TRANSACTION_END, XS_TRANSACTION_START } from '../shared/public/io/xs_wire.ts';
import { TRC_GUEST_XS_REPLY, TRC_GUEST_XS_REQUEST } from '../shared/public/trace.ts';
import { makeRig, settle } from './helpers/xs-fake.ts';

const { InitWait, Connected } = XenbusState;

async function until(cond: () => boolean): Promise<void> {
  for (let i = 0; i < 2000 && !cond(); i++) await settle();
}

/** A frontend written as netfront is: reads sent ahead, keys and Connected in one transaction. */
function netfrontLike(calls: string[], opts: { beforeWrites?: (dev: XenbusDevice) => Promise<void> } = {}): FrontendDriver {
  let own: Promise<string | null> | null = null;
  let offer: Promise<{ v: string | null } | null> | null = null;
  return {
    connectOnInitWait: true,
    probing(dev) { own = dev.xs.tryRead(`${dev.nodename}/mac`); },
    otherendKnown(dev, state) {
      const read = dev.xs.tryRead(`${dev.otherend}/feature-x`).then((v) => ({ v }));
      offer = state.then((s) => (s >= InitWait ? read : null));
    },
    async publishWrites(dev, t) {
      const ahead = await offer;
      calls.push(`front:offer:${ahead !== null ? ahead.v : `${await dev.xs.tryRead(`${dev.otherend}/feature-x`)} (read again)`}`, `front:mac:${await own}`);
      await opts.beforeWrites?.(dev);
      const writes = Promise.all([dev.xs.write(`${dev.nodename}/ring-ref`, '42', t), dev.xs.write(`${dev.nodename}/event-channel`, '7', t)]);
      return { writes: writes.then(() => undefined) };
    },
    async publish() { throw new Error('publishWrites is the path under test'); },
    async connect() { calls.push('front:connect'); },
    async close() { calls.push('front:close'); },
  };
}

async function setup(type: string) {
  const rig = await makeRig();
  const g = await rig.addGuest(1);
  const back: number[] = [];
  const calls: string[] = [];
  const driver = (): BackendDriver => ({
    async probe(dev) { await rig.dom0.write(`${dev.nodename}/feature-x`, '1'); },
    async connect(dev) {
      // Both keys and the Connected that made us connect arrive in one commit.
      const [ring, port, state] = await Promise.all(['ring-ref', 'event-channel', 'state'].map((k) => rig.dom0.tryRead(`${dev.otherend}/${k}`)));
      calls.push(`back:connect:${ring}:${port}:${state}`);
    },
    async disconnect() { calls.push('back:disconnect'); },
  });
  await registerBackend(rig.dom0, type, driver, { connectOn: 'connected', onState: (_d, s) => back.push(s) });
  const dev: DeviceSpec = { type, frontend: 1, devid: 0, frontKeys: { mac: '00:16:3e:00:00:01' } };
  await addDeviceNodes(rig.dom0, dev);
  // libxl__wait_device_connection: the backend has probed (InitWait) before the guest runs.
  await until(() => back.includes(InitWait));
  return { rig, g, back, calls, dev };
}

/** Counts the TRANSACTION_START and TRANSACTION_END requests a client sends from now on (through its tracer). */
function countTx(xs: { tracer: { xentrace(e: number, type: number, ...rest: number[]): void } | null }): { starts: number; ends: number } {
  const n = { starts: 0, ends: 0 };
  const prev = xs.tracer;
  xs.tracer = { xentrace: (e: number, type: number, ...rest: number[]) => {
    if (e === TRC_GUEST_XS_REQUEST && type === XS_TRANSACTION_START) n.starts++;
    if (e === TRC_GUEST_XS_REQUEST && type === XS_TRANSACTION_END) n.ends++;
    prev?.xentrace(e, type, ...rest);
  } };
  return n;
}

test('netfront-style: probe to Connected in 5 round trips, keys and state in one commit', async (t) => {
  const { g, back, calls } = await setup('vifr');
  const front: number[] = [];
  const before = g.xs.stats.rounds;
  // The rounds as the commit's reply arrives: after it, the device bus's watch lists the directory
  // again for each key the commit changed (xenbus_probe's watch), which is no part of the handshake.
  let atCommit = -1;
  g.xs.tracer = { xentrace: (e, type) => { if (e === TRC_GUEST_XS_REPLY && type === XS_TRANSACTION_END) atCommit = g.xs.stats.rounds; } };
  const tx = countTx(g.xs);
  await registerFrontend(g.xs, 'vifr', () => netfrontLike(calls), { onState: (_d, s) => front.push(s) });
  await until(() => front.includes(Connected) && back.includes(Connected));
  // 1 the bus's WATCH and its listing; 2 the other end's keys and our state (and our MAC);
  // 3 the WATCH on the backend's state, that state, the backend's offer, and TRANSACTION_START
  // (the backend is in InitWait: the transaction will be needed as soon as they answer);
  // 4 our state read within it, every key and state = Connected; 5 the commit.
  t.is(atCommit - before, 5);
  t.deepEqual(tx, { starts: 1, ends: 1 }, 'one transaction, committed');
  t.deepEqual(front, [Connected], 'never Initialised: netfront goes straight to Connected');
  t.deepEqual(back, [InitWait, Connected]);
  t.deepEqual(calls, ['front:offer:1', 'front:mac:00:16:3e:00:00:01', 'front:connect', 'back:disconnect', `back:connect:42:7:${Connected}`]);
});

test('a device the kernel already has (a resumed kernel\'s vif) is probed beside the bus watch: 4 round trips, probed once', async (t) => {
  const { g, back, calls } = await setup('vifknown');
  const front: number[] = [];
  const before = g.xs.stats.rounds;
  let atCommit = -1;
  g.xs.tracer = { xentrace: (e, type) => { if (e === TRC_GUEST_XS_REPLY && type === XS_TRANSACTION_END) atCommit = g.xs.stats.rounds; } };
  const probed: string[] = [];
  await registerFrontend(g.xs, 'vifknown', () => netfrontLike(calls), {
    onState: (_d, s) => front.push(s), onProbe: (fe) => probed.push(fe.dev.nodename), present: [0],
  });
  await until(() => front.includes(Connected) && back.includes(Connected));
  for (let i = 0; i < 10; i++) await settle(); // the bus watch's listing has come and gone
  // 1 the bus's WATCH and its listing, with the other end's keys, our state and our MAC; 2 the
  // WATCH on the backend's state, its state, its offer, TRANSACTION_START; 3 the writes; 4 the commit.
  t.is(atCommit - before, 4);
  t.deepEqual(probed, ['device/vifknown/0'], 'the listing found it known: not probed twice');
  t.deepEqual(front, [Connected]);
});

test('a frontend directory removed while it publishes is not written again: the transaction is abandoned', async (t) => {
  const { rig, g, back, calls } = await setup('vifgone');
  const front: number[] = [];
  const nodename = '/local/domain/1/device/vifgone/0';
  const driver = netfrontLike(calls, { beforeWrites: async () => { await rig.dom0.rm(nodename); } });
  await registerFrontend(g.xs, 'vifgone', () => driver, { onState: (_d, s) => front.push(s) });
  await until(() => calls.includes('front:mac:00:16:3e:00:00:01'));
  for (let i = 0; i < 20; i++) await settle();
  t.is(await rig.dom0.tryRead(nodename), null, 'nothing recreated the directory');
  t.deepEqual(front, [], 'no state entered');
  t.false(calls.includes('front:connect'));
  t.false(back.includes(Connected));
  t.is(await rig.dom0.tryRead(`${backendPath(0, 'vifgone', 1, 0)}/state`) !== String(Connected), true);
});

test('a backend that reaches InitWait after the frontend probed (a hot-plugged vif): the offer read ahead is stale, read again', async (t) => {
  const rig = await makeRig();
  const g = await rig.addGuest(1);
  const calls: string[] = [];
  const front: number[] = [];
  const tx = countTx(g.xs);
  await registerFrontend(g.xs, 'viflate', () => netfrontLike(calls), { onState: (_d, s) => front.push(s) });
  await addDeviceNodes(rig.dom0, { type: 'viflate', frontend: 1, devid: 0, frontKeys: { mac: '00:16:3e:00:00:02' } });
  // The frontend probes and reads ahead while no backend driver has probed the directory.
  await until(() => calls.length > 0 || g.xs.stats.requests > 12);
  for (let i = 0; i < 10; i++) await settle();
  const back: number[] = [];
  await registerBackend(rig.dom0, 'viflate', () => ({
    async probe(dev) { await rig.dom0.write(`${dev.nodename}/feature-x`, '1'); },
    async connect() { calls.push('back:connect'); },
    async disconnect() {},
  }), { connectOn: 'connected', onState: (_d, s) => back.push(s) });
  await until(() => front.includes(Connected) && back.includes(Connected));
  t.deepEqual(front, [Connected]);
  t.is(calls[0], 'front:offer:1 (read again)', 'the feature the backend published at its probe, not the absence read before it');
  // The transaction started ahead while no backend was in InitWait was ended unused, not held open
  // while the frontend waited; publish started and committed its own.
  t.deepEqual(tx, { starts: 2, ends: 2 });
});
