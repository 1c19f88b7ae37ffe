/*
 * The guest's xenstore ring notifies xenstored only when xenstored had taken everything before
 * (Linux's xb_write: `if (prod <= intf->req_cons) notify_remote_via_evtchn`), and xenstored still
 * answers every request: it looks at req_prod again after publishing req_cons before it stops
 * (shared/kernel/xenbus/xs-ring.ts, shared/public/io/byte-ring.ts). Over the single-threaded rig
 * (the real transport and the real daemon): counts of notifications, and every answer checked.
 */
import test from 'ava';
import { makeRig, settle } from './helpers/xs-fake.ts';

test('a burst of requests sent together costs one notification, and every one is answered', async (t) => {
  const rig = await makeRig();
  const g = await rig.addGuest(1);
  const n = 20;
  await Promise.all(Array.from({ length: n }, (_, i) => g.xs.write(`data/k${i}`, `v${i}`)));
  const before = { ...g.transport.stats };
  const values = await Promise.all(Array.from({ length: n }, (_, i) => g.xs.read(`data/k${i}`)));
  t.deepEqual(values, Array.from({ length: n }, (_, i) => `v${i}`));
  t.is(g.transport.stats.notifications - before.notifications, 1, 'only the first found xenstored caught up');
  t.is(g.transport.stats.suppressed - before.suppressed, n - 1, 'the others went while it was still reading');
});

test('requests that wait for each other notify every time: xenstored had caught up each time', async (t) => {
  const rig = await makeRig();
  const g = await rig.addGuest(1);
  await g.xs.write('data/x', '0');
  const before = { ...g.transport.stats };
  for (let i = 1; i <= 5; i++) {
    await g.xs.write('data/x', String(i));
    t.is(await g.xs.read('data/x'), String(i));
  }
  t.is(g.transport.stats.notifications - before.notifications, 10);
  t.is(g.transport.stats.suppressed - before.suppressed, 0);
});

test('a burst larger than the ring and than xenstored\'s turn: nothing is lost without the notifications', async (t) => {
  const rig = await makeRig();
  const g = await rig.addGuest(1);
  const n = 120; // ~50 bytes each: several rings' worth, and many of xenstored's 8-request turns
  const long = 'x'.repeat(20);
  const keys = 10; // within a guest's node quota
  await Promise.all(Array.from({ length: keys }, (_, i) => g.xs.write(`data/${long}${i}`, `value-${i}`)));
  const before = { ...g.transport.stats };
  const got = await Promise.all(Array.from({ length: n }, (_, i) => g.xs.read(`data/${long}${i % keys}`)));
  t.deepEqual(got, Array.from({ length: n }, (_, i) => `value-${i % keys}`));
  // A full ring waits for xenstored's notification that it made room; what is pushed then goes to
  // a xenstored still reading, unannounced: far fewer notifications than requests.
  const sent = g.transport.stats.notifications - before.notifications;
  t.true(sent < n / 4, `${sent} notifications for ${n} requests`);
  t.true(g.transport.stats.suppressed > 0);
  for (let i = 0; i < 5; i++) await settle();
  t.is(await g.xs.read(`data/${long}0`), 'value-0', 'the ring still works afterwards');
});
