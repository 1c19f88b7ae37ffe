/*
 * Transactions as C xenstored (Xen 4.17, tools/xenstored/transaction.c) has them, in one thread
 * (test/helpers/xs-fake.ts): a node is copied into the transaction at its first access, so every
 * later read, directory, get-perms and existence check inside it sees that copy whatever others
 * write meanwhile; a commit whose reads have gone stale is EAGAIN and applies nothing; a clean
 * retry succeeds. The expected values below are what C xenstored answers to the same sequence.
 */
import test from 'ava';
import { XS_PERM_BOTH, XS_PERM_READ } from '../shared/public/io/xs_wire.ts';
import { makeRig, refusal } from './helpers/xs-fake.ts';

test('reads inside a transaction are repeatable: read, directory, get-perms and absence', async (t) => {
  const { dom0, guests, addGuest } = await makeRig();
  await addGuest(1);
  const xs = guests.get(1)!.xs;
  await xs.write('data/a', 'one');
  await xs.write('data/dir/x', '');
  const tx = await xs.transactionStart();
  t.is(await xs.read('data/a', tx), 'one');
  t.deepEqual(await xs.directory('data/dir', tx), ['x']);
  const perms = await xs.getPerms('data/a', tx);
  t.is(await xs.tryRead('data/ghost', tx), null);

  // Someone else changes every one of them.
  await dom0.write('/local/domain/1/data/a', 'two');
  await dom0.write('/local/domain/1/data/dir/y', '');
  await dom0.setPerms('/local/domain/1/data/a', [{ id: 1, perms: XS_PERM_READ }, { id: 0, perms: XS_PERM_BOTH }]);
  await dom0.write('/local/domain/1/data/ghost', 'boo');

  t.is(await xs.read('data/a', tx), 'one', 'the transaction keeps its copy');
  t.deepEqual(await xs.directory('data/dir', tx), ['x']);
  t.deepEqual(await xs.getPerms('data/a', tx), perms);
  t.is(await xs.tryRead('data/ghost', tx), null, 'a node absent at first access stays absent');
  // Outside the transaction, the new values.
  t.is(await xs.read('data/a'), 'two');
  t.deepEqual(await xs.directory('data/dir'), ['x', 'y']);
  t.is(await xs.read('data/ghost'), 'boo');
  t.is(await refusal(xs.transactionEnd(tx, true)), 'EAGAIN');
});

test('a node first touched after an outside write sees that write; only nodes read before it conflict', async (t) => {
  const { dom0, guests, addGuest } = await makeRig();
  await addGuest(1);
  const xs = guests.get(1)!.xs;
  await xs.write('data/a', '1');
  await xs.write('data/b', '1');
  const tx = await xs.transactionStart();
  await dom0.write('/local/domain/1/data/a', '2'); // before the transaction touched it
  t.is(await xs.read('data/a', tx), '2', 'copied at first access, not at start');
  await xs.write('data/b', 'mine', tx);
  await xs.transactionEnd(tx, true);
  t.is(await xs.read('data/b'), 'mine');
});

test('writes after reads: the transaction reads its own write, the commit checks the read', async (t) => {
  const { dom0, guests, addGuest } = await makeRig();
  await addGuest(1);
  const xs = guests.get(1)!.xs;
  await xs.write('data/n', '5');
  const tx = await xs.transactionStart();
  const n = Number(await xs.read('data/n', tx));
  await xs.write('data/n', String(n + 1), tx);
  await dom0.write('/local/domain/1/data/n', '50');
  t.is(await xs.read('data/n', tx), '6', 'its own write, not the outside one');
  await xs.rm('data/n', tx);
  t.is(await xs.tryRead('data/n', tx), null);
  t.is(await refusal(xs.transactionEnd(tx, true)), 'EAGAIN');
  t.is(await xs.read('data/n'), '50', 'nothing of the failed transaction was applied');
});

test('two transactions interleaved with outside writes: repeatable reads, EAGAIN, a clean retry', async (t) => {
  const { dom0, guests, addGuest } = await makeRig();
  await addGuest(1);
  await addGuest(2);
  const a = guests.get(1)!.xs;
  const b = guests.get(2)!.xs;
  await dom0.mkdir('/shared');
  await dom0.setPerms('/shared', [{ id: 0, perms: XS_PERM_BOTH }]); // everyone reads and writes
  await dom0.write('/shared/x', 'x0');
  await dom0.write('/shared/y', 'y0');
  await dom0.write('/shared/z', 'z0');

  const t1 = await a.transactionStart();
  const t2 = await b.transactionStart();
  t.is(await a.read('/shared/x', t1), 'x0');
  t.is(await b.read('/shared/y', t2), 'y0');
  await dom0.write('/shared/x', 'x1'); // outside: conflicts with t1's read
  await dom0.write('/shared/z', 'z1'); // outside: nobody has read z yet
  t.is(await a.read('/shared/x', t1), 'x0', 't1 keeps reading its copy');
  t.is(await b.read('/shared/z', t2), 'z1', 't2 first touches z after the outside write');
  await a.write('/shared/y', 'from t1', t1);
  await b.write('/shared/x', 'from t2', t2);
  await dom0.write('/shared/z', 'z2'); // outside: now conflicts with t2's read of z
  t.is(await b.read('/shared/z', t2), 'z1');

  t.is(await refusal(a.transactionEnd(t1, true)), 'EAGAIN', 't1 read x, which changed');
  t.is(await refusal(b.transactionEnd(t2, true)), 'EAGAIN', 't2 read z, which changed');
  t.is(await dom0.read('/shared/x'), 'x1');
  t.is(await dom0.read('/shared/y'), 'y0');

  // The clean retry: nobody interferes, both commit, one after the other.
  const r1 = await a.transactionStart();
  const r2 = await b.transactionStart();
  t.is(await a.read('/shared/x', r1), 'x1');
  await a.write('/shared/y', 'from t1', r1);
  t.is(await b.read('/shared/z', r2), 'z2');
  await b.write('/shared/x', 'from t2', r2);
  await a.transactionEnd(r1, true);
  await b.transactionEnd(r2, true);
  t.is(await dom0.read('/shared/x'), 'from t2');
  t.is(await dom0.read('/shared/y'), 'from t1');
});

test('hitting the transaction-nodes quota fails the whole transaction: its commit is ENOMEM', async (t) => {
  const { guests, addGuest } = await makeRig({ transactionNodes: 3 });
  await addGuest(1);
  const xs = guests.get(1)!.xs;
  for (const n of ['a', 'b', 'c', 'd']) await xs.write(`data/${n}`, n);
  const tx = await xs.transactionStart();
  await xs.read('data/a', tx);
  await xs.read('data/b', tx);
  await xs.read('data/c', tx);
  t.is(await xs.read('data/a', tx), 'a', 'a node already in the transaction costs nothing more');
  t.is(await refusal(xs.read('data/d', tx)), 'ENOSPC');
  t.is(await refusal(xs.transactionEnd(tx, true)), 'ENOMEM');
});
