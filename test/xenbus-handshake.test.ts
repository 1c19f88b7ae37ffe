/*
 * The xenbus handshake through the store, with Dom0 (backend) and a DomU (frontend) each on its
 * own thread: the toolstack writes both device directories; the backend (a Dom0 kernel module
 * on the backend bus) publishes its features and goes InitWait; the frontend (on the DomU's
 * frontend bus, over its xenstore ring) publishes its ring in a transaction and goes
 * Initialised; the backend maps it and goes Connected; the frontend goes Connected and moves
 * checked requests through the ring. Then teardown, both ways Linux does it:
 *
 *   device 0: the toolstack removes it (online = 0, backend Closing); the frontend closes and
 *             goes Closed; the backend disconnects, goes Closed and unregisters; the toolstack
 *             sees Closed and removes the directories.
 *   device 1: the frontend connects early (Initialised before the backend's InitWait, a
 *             shortcut the backend tolerates), and later the guest unplugs it: frontend
 *             Closing → backend Closing → frontend Closed → backend Closed.
 */
import test from 'ava';
import { BroadcastChannel } from 'node:worker_threads';
import { bootDom0 } from '../scenarios/xenstore/harness.ts';
import { XenbusState, backendPath, frontendPath } from '../shared/public/io/xenbus.ts';
import { openInbox } from './helpers/channel.ts';
import { VRING, VRING_BACK_CHANNEL, type VringMessage } from './kernels/vring.ts';
import type { VringFrontModule } from './kernels/vring-front.ts';

const FRONT = new URL('./kernels/vring-front.ts', import.meta.url).href;
const BACK = new URL('./kernels/vring-back.ts', import.meta.url).href;
const { InitWait, Initialised, Connected, Closing, Closed } = XenbusState;

test('frontend and backend on their own threads reach Connected through the store, and Closed on teardown', async (t) => {
  const inbox = openInbox<VringMessage>();
  // Every message in arrival order, to check the order of states afterwards.
  const seen: VringMessage[] = [];
  // The backend module reports on a channel of its own; forward it into the same inbox.
  const back = new BroadcastChannel(VRING_BACK_CHANNEL);
  back.onmessage = (ev) => {
    const m = (ev as { data: VringMessage }).data;
    inbox.inject(m);
    seen.push(m);
  };
  const tap = new BroadcastChannel(inbox.name);
  tap.onmessage = (ev) => seen.push((ev as { data: VringMessage }).data);
  const h = await bootDom0({ modules: [BACK] });
  const record = <K extends VringMessage['kind']>(kind: K, match: (m: Extract<VringMessage, { kind: K }>) => boolean) => inbox.next(kind, match);
  try {
    const module: VringFrontModule = { channel: inbox.name, connectEarly: [1] };
    const domid = await h.createGuest({ name: 'front', vcpus: 1, memoryKiB: 4096, kernel: FRONT, module });
    const devs = [0, 1].map((devid) => ({ type: VRING, frontend: domid, devid }));
    const bk = (devid: number) => backendPath(0, VRING, domid, devid);
    for (const d of devs) await h.addDevice(d);

    for (const devid of [0, 1]) {
      await record('front-state', (m) => m.devid === devid && m.state === Connected);
      await record('back-state', (m) => m.nodename.endsWith(`${VRING}/${domid}/${devid}`) && m.state === Connected);
      const ran = await record('front-ran', (m) => m.devid === devid);
      t.is(ran.requests, 256, 'every request went through the ring and came back checked');
      t.is(ran.info, 'ready', 'the frontend read what the backend published');
      t.is(await h.xs.read(`${frontendPath(domid, VRING, devid)}/state`), String(Connected));
      t.is(await h.xs.read(`${bk(devid)}/state`), String(Connected));
    }

    // Device 0: the toolstack takes it away.
    await h.removeDevice(devs[0]);
    await record('front-state', (m) => m.devid === 0 && m.state === Closed);
    const removed = await record('back-removed', (m) => m.nodename.endsWith(`${VRING}/${domid}/0`));
    t.deepEqual(removed.history, [InitWait, Connected, Closed]);
    t.is(await h.xs.tryRead(bk(0)), null, 'the toolstack removed the backend directory');
    t.is(await h.xs.tryRead(frontendPath(domid, VRING, 0)), null, 'and the frontend directory');

    // Device 1: the guest unplugs it.
    inbox.post({ kind: 'unplug', devid: 1 });
    await record('front-state', (m) => m.devid === 1 && m.state === Closed);
    await record('back-state', (m) => m.nodename.endsWith(`${VRING}/${domid}/1`) && m.state === Closed);
    t.is(await h.xs.read(`${bk(1)}/state`), String(Closed));

    // The frontend's states, in the order it entered them.
    const front = (devid: number) => seen.flatMap((m) => (m.kind === 'front-state' && m.devid === devid ? [m.state] : []));
    t.deepEqual(front(0), [Initialised, Connected, Closed]);
    t.deepEqual(front(1), [Initialised, Connected, Closing, Closed]);
    await h.destroyGuest(domid);
  } finally {
    tap.close();
    back.close();
    inbox.close();
    await h.close();
  }
});
