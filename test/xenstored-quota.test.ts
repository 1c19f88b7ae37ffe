/*
 * xenstored's per-domain quotas, each at Xen's default, and what a misbehaving ring costs its
 * owner (and nobody else), in one thread (test/helpers/xs-fake.ts). The same hostility from real
 * guests on their own threads is in hostile-guest.test.ts.
 */
import test from 'ava';
import { encodeMessage } from '../shared/kernel/xenbus/xs-message.ts';
import { ByteRingView } from '../shared/public/io/byte-ring.ts';
import {
  XENSTORE_ERROR_NONE, XENSTORE_ERROR_PROTO, XENSTORE_ERROR_RINGIDX, XENSTORE_REQ_RING, XENSTORE_RSP_RING,
  XS_READ, XS_SET_PERMS, XS_TRANSACTION_START, xenstore_domain_interface,
} from '../shared/public/io/xs_wire.ts';
import { DEFAULT_QUOTAS } from '../dom0/services/xenstored/quota.ts';
import { makeRig, refusal, settle, type FakeGuest } from './helpers/xs-fake.ts';

const ERROR_WORD = xenstore_domain_interface.error >> 2;

/** Write raw bytes into a fake guest's request ring, as a hostile kernel could, and notify. */
function rawSend(g: FakeGuest, bytes: Uint8Array): number {
  const n = new ByteRingView(g.bytes, g.page, XENSTORE_REQ_RING).write(bytes, 0, bytes.length);
  g.notify();
  return n;
}

test('Xen\'s default quotas', (t) => {
  t.deepEqual({ ...DEFAULT_QUOTAS }, {
    nodes: 1000, watches: 128, outstanding: 20, transactions: 10, nodeSize: 2048, pathMax: 2048,
    permsPerNode: 5, transactionNodes: 1024, memory: 2.5 * 1024 * 1024, memorySoft: 2 * 1024 * 1024,
  });
});

test('nodes: a guest may own 1000 nodes; the next one is ENOSPC, and Dom0 is not limited', async (t) => {
  const { guests, addGuest, xenstored, dom0 } = await makeRig();
  await addGuest(1);
  const xs = guests.get(1)!.xs;
  // Groups of 20 (one directory of 1000 names would hit the node-size quota first).
  const writes: Promise<void>[] = [];
  const leaves = 1000 - xenstored.store.owned(1) - 50; // data/ and device/ are the guest's already
  for (let g = 0; g < 50; g++) writes.push(xs.mkdir(`data/g${g}`));
  for (let i = 0; i < leaves; i++) writes.push(xs.write(`data/g${i % 50}/n${i}`, ''));
  await Promise.all(writes);
  t.is(xenstored.store.owned(1), 1000);
  t.is(await refusal(xs.write('data/g0/one-more', '')), 'ENOSPC');
  t.is(await refusal(xs.write('data/deeper/still', '')), 'ENOSPC');
  await xs.write('data/g0/n0', 'rewriting an existing node is fine');
  // The same limit holds for nodes created in a transaction.
  await xs.rm('data/g0/n0');
  const tx = await xs.transactionStart();
  await xs.write('data/g1/a', '', tx);
  t.is(await refusal(xs.write('data/g1/b', '', tx)), 'ENOSPC');
  await xs.transactionEnd(tx, false);
  for (let i = 0; i < 1100; i++) await dom0.write(`/dom0/n${i}`, '');
  t.pass();
});

test('watches: 128 per guest, the 129th is E2BIG', async (t) => {
  const { guests, addGuest } = await makeRig();
  await addGuest(1);
  const xs = guests.get(1)!.xs;
  for (let i = 0; i < 128; i++) await xs.watch(`data/w${i}`, () => undefined);
  t.is(await refusal(xs.watch('data/w128', () => undefined)), 'E2BIG');
  await xs.unwatch('data/w0', 'w1');
  await xs.watch('data/again', () => undefined);
});

test('transactions: 10 open per guest, the 11th is ENOSPC', async (t) => {
  const { guests, addGuest } = await makeRig();
  await addGuest(1);
  const xs = guests.get(1)!.xs;
  const open: number[] = [];
  for (let i = 0; i < 10; i++) open.push(await xs.transactionStart());
  t.is(await refusal(xs.request(XS_TRANSACTION_START, [''])), 'ENOSPC');
  await xs.transactionEnd(open[0], false);
  await xs.transactionStart();
});

test('node size: a node whose record reaches 2048 bytes is ENOSPC, for data and for children alike', async (t) => {
  const { guests, addGuest, dom0 } = await makeRig();
  await addGuest(1);
  const xs = guests.get(1)!.xs;
  // Record = 24-byte header + 8 per permission + data + children's names.
  await xs.write('data/big', 'x'.repeat(2048 - 24 - 8 - 1));
  t.is(await refusal(xs.write('data/big', 'x'.repeat(2048 - 24 - 8))), 'ENOSPC');
  await xs.mkdir('data/dir');
  let i = 0;
  let err = '';
  while ((err = await refusal(xs.mkdir(`data/dir/${'c'.repeat(60)}${i}`))) === 'resolved') i++;
  t.is(err, 'ENOSPC', 'a directory cannot grow past the limit either');
  t.true(i > 25 && i < 35);
  await dom0.write('/local/domain/1/data/big', 'x'.repeat(3000));
  t.pass('Dom0 is not limited');
});

test('path length: 2048 bytes below /local/domain/<id>/, beyond that EINVAL', async (t) => {
  const { guests, addGuest } = await makeRig();
  await addGuest(1);
  const xs = guests.get(1)!.xs;
  // Long names spread over levels (one 2000-byte name would break its parent's node-size quota).
  let ok = 'data';
  while (ok.length + 100 <= 2048) ok += `/${'p'.repeat(99)}`;
  ok += `/${'q'.repeat(2048 - ok.length - 1)}`;
  t.is(ok.length, 2048);
  await xs.write(ok, 'v');
  t.is(await xs.read(ok), 'v');
  t.is(await refusal(xs.write(`${ok}q`, 'v')), 'EINVAL');
  t.is(await refusal(xs.watch(`${ok}q`, () => undefined)), 'EINVAL');
});

test('permissions per node: 5 entries, a 6th is ENOSPC', async (t) => {
  const { guests, addGuest } = await makeRig();
  await addGuest(1);
  const xs = guests.get(1)!.xs;
  await xs.write('data/p', '');
  const perms = [1, 2, 3, 4, 5, 6].map((id) => ({ id, perms: 1 }));
  await xs.setPerms('data/p', perms.slice(0, 5));
  t.is(await refusal(xs.request(XS_SET_PERMS, ['data/p', 'n1', 'r2', 'r3', 'r4', 'r5', 'r6'])), 'ENOSPC');
});

test('transaction nodes: one transaction may touch 1024 nodes, the next is ENOSPC', async (t) => {
  const { guests, addGuest, dom0 } = await makeRig();
  await addGuest(1);
  const xs = guests.get(1)!.xs;
  await dom0.mkdir('/pub');
  await dom0.setPerms('/pub', [{ id: 0, perms: 1 }]); // readable by all, and so are its children
  await dom0.transaction(async (tx) => {
    for (let i = 0; i < 1100; i++) await dom0.write(`/pub/${i}`, String(i), tx);
  });
  const tx = await xs.transactionStart();
  let touched = 0;
  let err = '';
  for (let i = 0; i < 1100 && err === ''; i++) {
    const r = await refusal(xs.read(`/pub/${i}`, tx));
    if (r === 'ENOSPC') err = r;
    else touched++;
  }
  t.is(err, 'ENOSPC');
  t.is(touched, 1024);
});

test('outstanding: a guest that never collects replies stops being read after 20; others are served', async (t) => {
  const { guests, addGuest, xenstored } = await makeRig();
  const flooder = await addGuest(1);
  await addGuest(2);
  await flooder.xs.write('data/big', 'v'.repeat(500));
  flooder.transport.interrupt = () => undefined; // its kernel never looks at the ring again
  // 40 reads written straight into the ring (25 bytes each: all fit), replies never taken. Two
  // 516-byte replies fill the reply ring; the rest queue in xenstored, up to the quota.
  const req = encodeMessage(XS_READ, 7, 0, ['data/big']);
  const N = 40;
  let sent = 0;
  for (let i = 0; i < N; i++) sent += rawSend(flooder, req);
  t.is(sent, N * req.length);
  for (let i = 0; i < 10; i++) await settle();
  const conn = xenstored.domains.get(1)!;
  t.is(conn.outstanding, 20, 'reading stopped with 20 replies outstanding');
  const unread = new ByteRingView(flooder.bytes, flooder.page, XENSTORE_REQ_RING).used();
  t.true(unread > 0, 'the rest of its requests wait in its ring');
  // Meanwhile the other guest is served as usual.
  const other = guests.get(2)!.xs;
  await other.write('data/k', 'v');
  t.is(await other.read('data/k'), 'v');
  // Taking replies off the ring (and saying so) lets xenstored read on, until all are answered.
  const rsp = new ByteRingView(flooder.bytes, flooder.page, XENSTORE_RSP_RING);
  const sink = new Uint8Array(4096);
  let bytes = 0;
  for (let round = 0; round < 200 && bytes < N * 516; round++) {
    bytes += rsp.read(sink, 0, sink.length);
    flooder.notify();
    await settle();
  }
  t.is(bytes, N * 516);
  t.is(conn.outstanding, 0);
  t.is(Atomics.load(flooder.page, ERROR_WORD), XENSTORE_ERROR_NONE);
});

test('memory: a guest over its memory quota loses watch events instead of growing xenstored', async (t) => {
  const { addGuest, dom0, xenstored } = await makeRig({ memory: 4096 });
  const g = await addGuest(1);
  await g.xs.watch('/local/domain/1', () => undefined);
  // Stop taking anything off the ring: replies and events pile up in xenstored for this guest.
  g.transport.interrupt = () => undefined;
  for (let i = 0; i < 200; i++) await dom0.write(`/local/domain/1/data/e${i}`, '');
  const conn = xenstored.domains.get(1)!;
  t.true(conn.stats.eventsDropped > 0);
  t.true(conn.stats.events < 200);
});

test('an oversized payload gets the ring ignored with XENSTORE_ERROR_PROTO; other guests carry on', async (t) => {
  const { guests, addGuest, xenstored, log } = await makeRig();
  const bad = await addGuest(1);
  await addGuest(2);
  const hdr = encodeMessage(XS_READ, 1, 0, []);
  new DataView(hdr.buffer).setUint32(12, 4097, true);
  rawSend(bad, hdr);
  await settle();
  t.is(Atomics.load(bad.page, ERROR_WORD), XENSTORE_ERROR_PROTO);
  t.truthy(xenstored.domains.get(1)!.ignored);
  t.true(log.some((l) => l.includes('ignoring domain 1')));
  rawSend(bad, encodeMessage(XS_READ, 2, 0, ['data']));
  await settle();
  t.is(new ByteRingView(bad.bytes, bad.page, XENSTORE_RSP_RING).used(), 0, 'an ignored ring gets no more replies');
  await guests.get(2)!.xs.write('data/fine', 'yes');
  t.is(await guests.get(2)!.xs.read('data/fine'), 'yes');
});

test('impossible ring indices get the ring ignored with XENSTORE_ERROR_RINGIDX', async (t) => {
  const { guests, addGuest } = await makeRig();
  const bad = await addGuest(1);
  await addGuest(2);
  Atomics.store(bad.page, xenstore_domain_interface.req_prod >> 2, 5000);
  bad.notify();
  await settle();
  t.is(Atomics.load(bad.page, ERROR_WORD), XENSTORE_ERROR_RINGIDX);
  t.is(await guests.get(2)!.xs.read('data'), '');
});

test('garbage that parses is answered with errors and the connection goes on', async (t) => {
  const { addGuest } = await makeRig();
  const g = await addGuest(1);
  let seed = 12345;
  const rnd = () => (seed = (seed * 1103515245 + 12345) >>> 0) >>> 16;
  for (let i = 0; i < 200; i++) {
    const payload = new Uint8Array(rnd() % 64);
    for (let j = 0; j < payload.length; j++) payload[j] = rnd() & 0xff;
    const type = rnd() % 40; // valid and invalid types alike
    if (type === 4 || type === 6 || type === 8 || type === 9 || type === 21) continue; // keep state simple
    const m = encodeMessage(type, 1000 + i, 0, [payload]);
    rawSend(g, m);
    await settle();
    // Drain replies so the ring never fills.
    new ByteRingView(g.bytes, g.page, XENSTORE_RSP_RING).read(new Uint8Array(4096), 0, 4096);
  }
  t.is(Atomics.load(g.page, ERROR_WORD), XENSTORE_ERROR_NONE);
  // The client's own framing was broken by the raw bytes; a fresh one on a fresh guest still works.
  const fresh = await addGuest(2);
  t.is(await fresh.xs.read('data'), '');
});
