/*
 * Watches and transactions in xenstored, precisely, in one thread (test/helpers/xs-fake.ts):
 * when watches fire and what they carry, who may see them, and how transactions isolate,
 * conflict (EAGAIN) and fire their watches at commit.
 */
import test from 'ava';
import type { XenbusClient } from '../shared/kernel/xenbus/client.ts';
import { XS_TRANSACTION_END, XS_TRANSACTION_START, XS_WATCH } from '../shared/public/io/xs_wire.ts';
import { makeRig, refusal, settle } from './helpers/xs-fake.ts';

/** Record every event of a new watch as "path token". */
async function recorder(xs: XenbusClient, path: string, token?: string): Promise<string[]> {
  const seen: string[] = [];
  await xs.watch(path, (p, tok) => { seen.push(`${p} ${tok}`); }, token);
  return seen;
}

test('a watch fires once when set, then for every change at or below its path', async (t) => {
  const { dom0 } = await makeRig();
  await dom0.write('/w/a', '1');
  const seen = await recorder(dom0, '/w', 'tok');
  await settle();
  t.deepEqual(seen, ['/w tok'], 'the first event names the watched path itself');
  await dom0.write('/w/a', '2');
  await dom0.write('/w/b/c', '3');
  await dom0.mkdir('/w/d');
  await dom0.setPerms('/w/a', [{ id: 0, perms: 1 }]);
  await dom0.write('/other', 'x');
  await dom0.write('/w-not-below', 'x');
  await settle();
  t.deepEqual(seen, ['/w tok', '/w/a tok', '/w/b/c tok', '/w/d tok', '/w/a tok']);
});

test('removing a subtree fires watches on the removed node, its ancestors and each removed descendant', async (t) => {
  const { dom0 } = await makeRig();
  await dom0.write('/r/x/y/z', 'deep');
  const above = await recorder(dom0, '/r', 'above');
  const exact = await recorder(dom0, '/r/x/y/z', 'exact');
  const sibling = await recorder(dom0, '/r/q', 'sibling');
  await settle();
  await dom0.rm('/r/x');
  await settle();
  t.deepEqual(exact, ['/r/x/y/z exact', '/r/x/y/z exact'], 'a descendant removed with its parent fires its own watch');
  t.true(above.includes('/r/x above'), 'the removed node fires its ancestors\' watches');
  t.deepEqual(sibling, ['/r/q sibling'], 'nothing else fires');
});

test('watch tokens tell watches apart; unwatch stops events; duplicates and unknowns are refused', async (t) => {
  const { dom0 } = await makeRig();
  const one = await recorder(dom0, '/t', 'one');
  const two = await recorder(dom0, '/t/sub', 'two');
  await dom0.write('/t/sub/x', 'v');
  await settle();
  t.deepEqual(one, ['/t one', '/t/sub/x one']);
  t.deepEqual(two, ['/t/sub two', '/t/sub/x two']);
  t.is(await refusal(dom0.request(XS_WATCH, ['/t', 'one'])), 'EEXIST');
  await dom0.unwatch('/t', 'one');
  await dom0.write('/t/sub/y', 'v');
  await settle();
  t.deepEqual(one, ['/t one', '/t/sub/x one']);
  t.is(two.length, 3);
  t.is(await refusal(dom0.unwatch('/t', 'one')), 'ENOENT');
  t.is(await refusal(dom0.request(XS_WATCH, ['/t'])), 'EINVAL');
  t.is(await refusal(dom0.watch('/bad path', () => undefined)), 'EINVAL');
});

test('a relative watch reports relative paths', async (t) => {
  const { guests, addGuest } = await makeRig();
  await addGuest(2);
  const xs = guests.get(2)!.xs;
  const seen = await recorder(xs, 'data', 'rel');
  await xs.write('data/k', 'v');
  await settle();
  t.deepEqual(seen, ['data rel', 'data/k rel']);
});

test('a guest hears of changes only to nodes it may read (or whose parent it may read)', async (t) => {
  const { guests, addGuest, dom0 } = await makeRig();
  await addGuest(1);
  await addGuest(2);
  const spy = await recorder(guests.get(2)!.xs, '/local/domain/1', 'spy');
  await guests.get(1)!.xs.write('data/private', 'x');
  await dom0.write('/local/domain/1/data/public', 'y');
  await dom0.setPerms('/local/domain/1/data/public', [{ id: 0, perms: 0 }, { id: 2, perms: 1 }]);
  await dom0.write('/local/domain/1/data/public', 'z');
  await settle();
  t.deepEqual(spy, ['/local/domain/1 spy', '/local/domain/1/data/public spy', '/local/domain/1/data/public spy']);
});

test('a transaction sees its own writes, others do not until commit, and abort discards them', async (t) => {
  const { dom0, guests, addGuest } = await makeRig();
  await addGuest(1);
  const xs = guests.get(1)!.xs;
  await xs.write('data/v', 'before');
  const tx = await xs.transactionStart();
  await xs.write('data/v', 'inside', tx);
  await xs.write('data/new/node', 'n', tx);
  t.is(await xs.read('data/v', tx), 'inside');
  t.deepEqual(await xs.directory('data', tx), ['v', 'new']);
  t.is(await dom0.read('/local/domain/1/data/v'), 'before');
  t.is(await dom0.tryRead('/local/domain/1/data/new'), null);
  await xs.transactionEnd(tx, false);
  t.is(await xs.read('data/v'), 'before');
  t.is(await xs.tryRead('data/new'), null);
  const tx2 = await xs.transactionStart();
  await xs.rm('data/v', tx2);
  t.is(await xs.tryRead('data/v', tx2), null);
  t.is(await xs.read('data/v'), 'before');
  await xs.transactionEnd(tx2, true);
  t.is(await xs.tryRead('data/v'), null);
});

test('a commit fails with EAGAIN when a node it read changed meanwhile, and succeeds on retry', async (t) => {
  const { dom0, guests, addGuest } = await makeRig();
  await addGuest(1);
  const xs = guests.get(1)!.xs;
  await xs.write('data/counter', '1');
  const tx = await xs.transactionStart();
  const v = Number(await xs.read('data/counter', tx));
  await dom0.write('/local/domain/1/data/counter', '10'); // someone else's write in between
  await xs.write('data/counter', String(v + 1), tx);
  t.is(await refusal(xs.transactionEnd(tx, true)), 'EAGAIN');
  t.is(await xs.read('data/counter'), '10', 'nothing of the failed transaction was applied');

  // A node read as absent that someone creates meanwhile conflicts too.
  const tx2 = await xs.transactionStart();
  t.is(await xs.tryRead('data/flag', tx2), null);
  await xs.write('data/flag', 'theirs');
  await xs.write('data/other', 'mine', tx2);
  t.is(await refusal(xs.transactionEnd(tx2, true)), 'EAGAIN');

  // Unrelated writes elsewhere do not.
  const tx3 = await xs.transactionStart();
  await xs.read('data/counter', tx3);
  await dom0.write('/elsewhere', 'x');
  await xs.write('data/counter', '11', tx3);
  await xs.transactionEnd(tx3, true);
  t.is(await xs.read('data/counter'), '11');

  // XenbusClient.transaction retries on EAGAIN, as every driver does.
  let runs = 0;
  await xs.transaction(async (tr) => {
    runs++;
    const n = Number(await xs.read('data/counter', tr));
    if (runs === 1) await dom0.write('/local/domain/1/data/counter', '100');
    await xs.write('data/counter', String(n + 1), tr);
  });
  t.is(runs, 2);
  t.is(await xs.read('data/counter'), '101');
});

test('two interfering transactions: the first to commit wins, the other gets EAGAIN', async (t) => {
  const { guests, addGuest } = await makeRig();
  await addGuest(1);
  const xs = guests.get(1)!.xs;
  await xs.write('data/A', 'a');
  await xs.write('data/B', 'b');
  const t1 = await xs.transactionStart();
  const t2 = await xs.transactionStart();
  await xs.read('data/A', t1);
  await xs.read('data/B', t2);
  await xs.write('data/B', 'from 1', t1);
  await xs.write('data/A', 'from 2', t2);
  await xs.transactionEnd(t1, true);
  t.is(await refusal(xs.transactionEnd(t2, true)), 'EAGAIN');
  t.is(await xs.read('data/A'), 'a');
  t.is(await xs.read('data/B'), 'from 1');
});

test('watch events for a transaction\'s changes fire at commit, not before, and not on abort', async (t) => {
  const { guests, addGuest, dom0 } = await makeRig();
  await addGuest(1);
  const xs = guests.get(1)!.xs;
  const seen = await recorder(dom0, '/local/domain/1/data', 'tx');
  await settle();
  const tx = await xs.transactionStart();
  await xs.write('data/x', '1', tx);
  await xs.write('data/y', '2', tx);
  await xs.write('data/x', '3', tx);
  await settle();
  t.deepEqual(seen, ['/local/domain/1/data tx']);
  await xs.transactionEnd(tx, true);
  await settle();
  t.deepEqual(seen, ['/local/domain/1/data tx', '/local/domain/1/data/x tx', '/local/domain/1/data/y tx'], 'one event per changed path');
  const aborted = await xs.transactionStart();
  await xs.write('data/z', '1', aborted);
  await xs.transactionEnd(aborted, false);
  await settle();
  t.is(seen.length, 3);
});

test('transaction misuse: nesting is EBUSY, ending none is ENOENT, a bad verdict EINVAL', async (t) => {
  const { dom0 } = await makeRig();
  const tx = await dom0.transactionStart();
  t.is(await refusal(dom0.request(XS_TRANSACTION_START, [''], tx)), 'EBUSY');
  t.is(await refusal(dom0.request(XS_TRANSACTION_END, ['T'])), 'ENOENT');
  t.is(await refusal(dom0.request(XS_TRANSACTION_END, ['maybe'], tx)), 'EINVAL');
  await dom0.transactionEnd(tx, true);
  t.is(await refusal(dom0.transactionEnd(tx, true)), 'ENOENT', 'an ended transaction is gone');
});
