/*
 * xenstored's operations and permissions, precisely, in one thread: the real daemon and client
 * over a real ring page, with a fake hypervisor (test/helpers/xs-fake.ts). One test per
 * operation and per refusal.
 */
import test from 'ava';
import { XsError } from '../shared/kernel/xenbus/client.ts';
import { splitStrings } from '../shared/kernel/xenbus/xs-message.ts';
import {
  XS_DIRECTORY, XS_DIRECTORY_PART, XS_GET_DOMAIN_PATH, XS_INVALID, XS_READ, XS_SET_PERMS, XS_TYPE_COUNT, XS_WATCH_EVENT,
} from '../shared/public/io/xs_wire.ts';
import { makeRig } from './helpers/xs-fake.ts';

const errno = async (t: { is: (a: unknown, b: unknown, m?: string) => void }, p: Promise<unknown>, expected: string) => {
  try {
    await p;
    t.is('resolved', expected, 'expected a refusal');
  } catch (e) {
    t.is((e as XsError).errno, expected);
  }
};

test('write, read, mkdir, directory and rm round-trip over a guest ring', async (t) => {
  const { guests, addGuest } = await makeRig();
  await addGuest(1);
  const g = guests.get(1)!;
  await g.xs.write('data/a', 'one');
  await g.xs.write('data/b/c', new Uint8Array([0, 1, 2, 255]));
  await g.xs.mkdir('data/d');
  t.is(await g.xs.read('data/a'), 'one');
  t.deepEqual(await g.xs.readBytes('data/b/c'), new Uint8Array([0, 1, 2, 255]), 'values are bytes, NULs included');
  t.is(await g.xs.read('data/b'), '', 'missing parents are created empty');
  t.deepEqual(await g.xs.directory('data'), ['a', 'b', 'd'], 'children in creation order');
  t.deepEqual(await g.xs.directory('data/d'), []);
  await g.xs.write('data/a', 'two');
  t.is(await g.xs.read('/local/domain/1/data/a'), 'two', 'relative paths are below /local/domain/<id>');
  await g.xs.rm('data/b');
  await errno(t, g.xs.read('data/b/c'), 'ENOENT');
  t.deepEqual(await g.xs.directory('data'), ['a', 'd']);
});

test('mkdir of an existing node leaves it alone; rm of a missing node is fine if its parent exists', async (t) => {
  const { dom0 } = await makeRig();
  await dom0.write('/m/x', 'keep');
  await dom0.mkdir('/m/x');
  t.is(await dom0.read('/m/x'), 'keep');
  await dom0.rm('/m/nothing');
  await errno(t, dom0.rm('/m/no/such'), 'ENOENT');
  await errno(t, dom0.rm('/'), 'EINVAL');
});

test('new nodes inherit the nearest ancestor permissions, and a guest owns what it creates', async (t) => {
  const { guests, addGuest, dom0 } = await makeRig();
  await addGuest(3);
  await dom0.write('/local/domain/3/data/shared', '');
  await dom0.setPerms('/local/domain/3/data/shared', [{ id: 3, perms: 0 }, { id: 7, perms: 1 }]);
  await guests.get(3)!.xs.write('data/shared/x/y', 'v');
  t.deepEqual(await dom0.getPerms('/local/domain/3/data/shared/x/y'), [{ id: 3, perms: 0 }, { id: 7, perms: 1 }]);
  await dom0.write('/local/domain/3/data/shared/z', 'by dom0');
  t.deepEqual(await dom0.getPerms('/local/domain/3/data/shared/z'), [{ id: 3, perms: 0 }, { id: 7, perms: 1 }],
    'Dom0 creating a node keeps the inherited owner');
});

test('a DomU cannot read, list or write another DomU\'s nodes, nor learn whether they exist', async (t) => {
  const { guests, addGuest } = await makeRig();
  await addGuest(1);
  await addGuest(2);
  const [a, b] = [guests.get(1)!.xs, guests.get(2)!.xs];
  await a.write('data/secret', 'mine');
  await errno(t, b.read('/local/domain/1/data/secret'), 'EACCES');
  await errno(t, b.read('/local/domain/1/data/no-such-node'), 'EACCES');
  await errno(t, b.directory('/local/domain/1/data'), 'EACCES');
  await errno(t, b.getPerms('/local/domain/1/data/secret'), 'EACCES');
  await errno(t, b.write('/local/domain/1/data/secret', 'theirs'), 'EACCES');
  await errno(t, b.write('/local/domain/1/data/new', 'x'), 'EACCES');
  await errno(t, b.rm('/local/domain/1/data/secret'), 'EACCES');
  await errno(t, b.read('/tool/xenstored'), 'EACCES');
  t.is(await a.read('data/secret'), 'mine');
  // Its own home is readable (the toolstack's r<id>), but not writable outside data/ and device/.
  t.is(await b.read('/local/domain/2'), '');
  await errno(t, b.write('name', 'renamed'), 'EACCES');
});

test('a grant in the permission list lets another domain read; write needs w or b', async (t) => {
  const { guests, addGuest } = await makeRig();
  await addGuest(1);
  await addGuest(2);
  const [a, b] = [guests.get(1)!.xs, guests.get(2)!.xs];
  await a.write('data/pub', 'hello');
  await a.setPerms('data/pub', [{ id: 1, perms: 0 }, { id: 2, perms: 1 }]);
  t.is(await b.read('/local/domain/1/data/pub'), 'hello');
  await errno(t, b.write('/local/domain/1/data/pub', 'no'), 'EACCES');
  await a.setPerms('data/pub', [{ id: 1, perms: 0 }, { id: 2, perms: 3 }]);
  await b.write('/local/domain/1/data/pub', 'yes');
  t.is(await a.read('data/pub'), 'yes');
  // The owner's letter is what everyone unlisted gets.
  await a.setPerms('data/pub', [{ id: 1, perms: 1 }]);
  t.is(await b.read('/local/domain/1/data/pub'), 'yes');
});

test('only the owner or Dom0 sets permissions, and only Dom0 changes the owner', async (t) => {
  const { guests, addGuest, dom0 } = await makeRig();
  await addGuest(1);
  await addGuest(2);
  const [a, b] = [guests.get(1)!.xs, guests.get(2)!.xs];
  await a.write('data/p', 'x');
  await a.setPerms('data/p', [{ id: 1, perms: 0 }, { id: 2, perms: 3 }]);
  await errno(t, b.setPerms('/local/domain/1/data/p', [{ id: 1, perms: 3 }]), 'EACCES');
  await errno(t, a.setPerms('data/p', [{ id: 2, perms: 0 }]), 'EPERM');
  await dom0.setPerms('/local/domain/1/data/p', [{ id: 2, perms: 0 }]);
  t.deepEqual(await dom0.getPerms('/local/domain/1/data/p'), [{ id: 2, perms: 0 }]);
  await b.write('/local/domain/1/data/p', 'now theirs');
  await errno(t, a.setPerms('data/p', [{ id: 1, perms: 0 }]), 'EACCES');
  await errno(t, a.request(XS_SET_PERMS, ['data/p', 'q9']), 'EINVAL'); // a permission letter that does not exist
});

test('GET_DOMAIN_PATH, and requests with malformed arguments or unknown types', async (t) => {
  const { guests, addGuest } = await makeRig();
  await addGuest(4);
  const xs = guests.get(4)!.xs;
  t.is(await xs.getDomainPath(9), '/local/domain/9');
  await errno(t, xs.request(XS_GET_DOMAIN_PATH, ['x']), 'EINVAL');
  await errno(t, xs.request(XS_READ, [new TextEncoder().encode('data/no-nul')]), 'EINVAL');
  await errno(t, xs.request(XS_READ, ['data', 'extra']), 'EINVAL');
  await errno(t, xs.read('data/bad path'), 'EINVAL');
  await errno(t, xs.read('/local//domain'), 'EINVAL');
  await errno(t, xs.read('/local/domain/'), 'EINVAL');
  await errno(t, xs.request(XS_TYPE_COUNT, ['x']), 'ENOSYS');
  await errno(t, xs.request(XS_INVALID, ['x']), 'ENOSYS');
  await errno(t, xs.request(XS_WATCH_EVENT, ['x', 'y']), 'ENOSYS');
  await errno(t, xs.read('data', 42), 'ENOENT'); // a transaction this connection does not have
  t.is(await xs.read('data'), '', 'the connection goes on serving after refusals');
});

test('a directory too long for one reply is E2BIG, and DIRECTORY_PART returns it in pieces', async (t) => {
  const { dom0 } = await makeRig();
  const names: string[] = [];
  for (let i = 0; i < 300; i++) names.push(`child-with-a-long-name-${String(i).padStart(4, '0')}`);
  await dom0.transaction(async (tx) => { for (const n of names) await dom0.mkdir(`/big/${n}`, tx); });
  await errno(t, dom0.request(XS_DIRECTORY, ['/big']), 'E2BIG');
  const got: string[] = [];
  let gen = '';
  for (let off = 0; ;) {
    const part = await dom0.request(XS_DIRECTORY_PART, ['/big', String(off)]);
    const [g, ...rest] = splitStrings(part);
    if (gen === '') gen = g;
    t.is(g, gen, 'the generation stays put while nothing changes');
    const end = rest.length > 0 && rest[rest.length - 1] === '';
    const list = end ? rest.slice(0, -1) : rest;
    got.push(...list);
    off += list.reduce((n, s) => n + s.length + 1, 0);
    t.true(part.length <= 4096);
    if (end) break;
  }
  t.deepEqual(got, names);
});

test('introduce and release are Dom0\'s; release drops the domain\'s nodes and fires @releaseDomain', async (t) => {
  const { guests, addGuest, dom0, xenstored } = await makeRig();
  const events: string[] = [];
  await dom0.watch('@introduceDomain', (p) => { events.push(p); });
  await dom0.watch('@releaseDomain', (p) => { events.push(p); });
  await addGuest(5);
  const xs = guests.get(5)!.xs;
  await errno(t, xs.introduce(6, 0, 1), 'EACCES');
  await errno(t, xs.release(5), 'EACCES');
  await errno(t, xs.isDomainIntroduced(5), 'EACCES');
  t.true(await dom0.isDomainIntroduced(5));
  t.false(await dom0.isDomainIntroduced(6));
  await xs.write('data/left/behind', 'x');
  await dom0.write('/elsewhere', '');
  await dom0.setPerms('/elsewhere', [{ id: 5, perms: 0 }]); // owned by 5 outside its home
  const t5 = await xs.transactionStart();
  await xs.watch('data', () => undefined);
  t.is(xenstored.store.owned(5) > 0, true);
  await dom0.release(5);
  t.false(await dom0.isDomainIntroduced(5));
  t.is(xenstored.store.owned(5), 0, 'every node the domain owned is gone');
  t.is(await dom0.tryRead('/elsewhere'), null);
  t.is(await dom0.read('/local/domain/5'), '', 'its home (Dom0\'s) stays for the toolstack to remove');
  t.is(xenstored.connections.size, 1, 'its connection, watches and transaction are gone');
  await errno(t, dom0.release(5), 'ENOENT');
  await errno(t, dom0.release(0), 'EINVAL');
  await errno(t, dom0.introduce(0, 0, 1), 'EINVAL');
  void t5;
  await new Promise((r) => setImmediate(r));
  // Each watch fired once when set and once for the event itself.
  t.deepEqual([...events].sort(), ['@introduceDomain', '@introduceDomain', '@releaseDomain', '@releaseDomain']);
});

test('a guest may not watch @introduceDomain unless Dom0 lets it', async (t) => {
  const { guests, addGuest, dom0 } = await makeRig();
  await addGuest(1);
  const seen: string[] = [];
  await guests.get(1)!.xs.watch('@releaseDomain', (p) => { seen.push(p); });
  await addGuest(2);
  await dom0.release(2);
  await new Promise((r) => setImmediate(r));
  t.deepEqual(seen, ['@releaseDomain'], 'only the event every watch gets when set');
  await dom0.setPerms('@releaseDomain', [{ id: 0, perms: 0 }, { id: 1, perms: 1 }]);
  await addGuest(3);
  await dom0.release(3);
  await new Promise((r) => setImmediate(r));
  t.deepEqual(seen, ['@releaseDomain', '@releaseDomain']);
  await errno(t, guests.get(1)!.xs.setPerms('@releaseDomain', [{ id: 1, perms: 1 }]), 'EACCES');
});
