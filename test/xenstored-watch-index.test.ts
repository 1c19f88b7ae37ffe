/*
 * The watch index (dom0/services/xenstored/watch.ts, WatchIndex): watches found by path rather
 * than by scanning every connection, with C xenstored's semantics kept: a change fires watches on
 * the node and every ancestor ("/" included), a subtree's descendants fire only their own
 * watches on rm, special paths fire only exact watchers, events reach a connection in the order
 * its watches were set, and nothing stays indexed once a watch, or its connection, is gone.
 */
import test from 'ava';
import { XS_RESET_WATCHES } from '../shared/public/io/xs_wire.ts';
import { makeRig, settle } from './helpers/xs-fake.ts';

test('a change fires the node\'s and every ancestor\'s watches, in the order they were set', async (t) => {
  const { dom0, xenstored } = await makeRig();
  await dom0.write('/a/b/c', 'v');
  const log: string[] = [];
  const rec = (p: string, tok: string) => { log.push(`${p} ${tok}`); };
  for (const [path, tok] of [['/a/b', 'B'], ['/', 'root'], ['/a', 'A'], ['/a/b/c', 'C'], ['/x', 'X'], ['/a/bc', 'notchild']]) {
    await dom0.watch(path!, rec, tok);
  }
  await settle();
  t.is(xenstored.watchIndex.size, 6);
  log.length = 0;
  await dom0.write('/a/b/c', 'w');
  await settle();
  t.deepEqual(log, ['/a/b/c B', '/a/b/c root', '/a/b/c A', '/a/b/c C']);

  log.length = 0;
  await dom0.rm('/a/b');
  await settle();
  t.deepEqual(log, ['/a/b/c C', '/a/b B', '/a/b root', '/a/b A'],
    'the removed descendant fires only its own watch; the removed node its own and its ancestors\'');
});

test('special paths fire exact watchers only: a watch on / does not hear @introduceDomain', async (t) => {
  const { dom0, addGuest } = await makeRig();
  const log: string[] = [];
  const rec = (p: string, tok: string) => { log.push(`${p} ${tok}`); };
  await dom0.watch('/', rec, 'root');
  await dom0.watch('@introduceDomain', rec, 'intro');
  await dom0.watch('@releaseDomain', rec, 'release');
  await settle();
  log.length = 0;
  await addGuest(3, { home: false });
  await dom0.release(3);
  await settle();
  t.deepEqual(log, ['@introduceDomain intro', '@releaseDomain release']);
});

test('Dom0 has no watch quota (as in C), and unwatch, reset and release leave nothing indexed', async (t) => {
  const { dom0, xenstored, guests, addGuest } = await makeRig();
  await addGuest(1);
  const guest = guests.get(1)!.xs;
  for (let i = 0; i < 1000; i++) await dom0.watch(`/elsewhere/${i}`, () => undefined, `d${i}`);
  const mine: string[] = [];
  await guest.watch('data', (p) => { mine.push(p); }, 'g');
  await settle();
  t.is(xenstored.watchIndex.size, 1001);
  mine.length = 0;
  await guest.write('data/k', 'v');
  await settle();
  t.deepEqual(mine, ['data/k'], 'the guest hears its own change, and only that');

  await dom0.unwatch('/elsewhere/0', 'd0');
  t.is(xenstored.watchIndex.size, 1000);
  await dom0.request(XS_RESET_WATCHES, ['']);
  t.is(xenstored.watchIndex.size, 1, 'XS_RESET_WATCHES drops every watch of the connection');
  await dom0.release(1);
  t.is(xenstored.watchIndex.size, 0, 'a released domain\'s watches go with it');
});
