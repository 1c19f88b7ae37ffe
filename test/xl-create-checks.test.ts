/*
 * What `ringvisor create` refuses and what it allows, as an administrator sees it (issue 11,
 * items 5-9): a build failure names its errno and the config key behind it; a guest as large as
 * the host can hold boots (Xen's own xlexample.pvhlinux, 512 MiB); disk images are locked as the
 * block hotplug script checks them (rw needs the image unused, ro needs no writer, `w!`
 * overrides); run-time files belong to each config file; a config already running is said once.
 * One host in this process; the command line is the bin, in child processes.
 */
import test from 'ava';
import { existsSync, mkdirSync, readFileSync, readdirSync, statSync, truncateSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { imageLockDir } from '../dom0/toolstack/image-lock.ts';
import type { ListedDomain } from '../dom0/toolstack/protocol.ts';
import { DomctlError, Host } from '../hypervisor/host.ts';
import { XEN_EINVAL, XEN_ENOMEM } from '../shared/public/xen.ts';
import { rv } from './helpers/cli.ts';
import { consoleText } from '../scenarios/lib/console.ts';
import { oneHost } from './helpers/one-host.ts';

const EXAMPLES = new URL('./fixtures/xen-examples', import.meta.url).pathname;
const GUEST = new URL('../domu/kernel.ts', import.meta.url).href;

// 512 MiB for the largest guest, beside Dom0 and a few small ones.
const rig = oneHost(test, 'rv-create-', 640);

const create = (cfg: string) => rv(['--run-dir', rig.rh.runDir, 'create', cfg]);
const list = () => rig.xl.call<ListedDomain[]>({ verb: 'list' });
const names = async () => (await list()).map((d) => d.name).sort();

/** A config file `file` in `sub` (created), with these lines; returns its path. */
function cfg(sub: string, file: string, lines: string): string {
  mkdirSync(join(rig.dir, sub), { recursive: true });
  const p = join(rig.dir, sub, file);
  writeFileSync(p, `${lines}\n`);
  return p;
}

/** The domain's console (its output so far, then live) once it matches `re`. */
async function consoleSays(domain: string, re: RegExp): Promise<string> {
  return await consoleText(rig.rh.runDir, domain, re);
}

/** A sparse raw image of 4 MiB. */
function image(sub: string, file: string): string {
  mkdirSync(join(rig.dir, sub), { recursive: true });
  const p = join(rig.dir, sub, file);
  writeFileSync(p, '');
  truncateSync(p, 4 * 1024 * 1024);
  return p;
}

test.serial('item 5: vcpus = 1000 is refused with EINVAL at the vcpus line, and nothing starts', async (t) => {
  const before = await names();
  const p = cfg('five', 'many.cfg', 'name = "many"\nmemory = 16\n\nvcpus = 1000');
  const r = await create(p);
  t.is(r.code, 1);
  t.true(r.stderr.includes(`${p}:4: vcpus = 1000: the hypervisor refused to create the domain: EINVAL`), r.stderr);
  t.notRegex(r.stderr, /ESRCH/);
  t.regex(r.stderr, /nothing was started/);
  t.deepEqual(await names(), before);
});

test('item 5: the hypervisor answers a build it cannot do with its errno, not ESRCH', async (t) => {
  const host = new Host({ memoryMiB: 16, log: () => undefined });
  // RAM is populated on demand (hypervisor/mm/pod.ts), so more than the host has is overcommit, not
  // an error; what the builder cannot do is a guest larger than its P2M window (4 GiB).
  const config = { name: 'big', vcpus: 1, memoryKiB: 4 * 1024 * 1024, kernel: GUEST };
  const e1 = await t.throwsAsync(host.createDomain(config), { instanceOf: DomctlError });
  t.is(e1?.errno, XEN_ENOMEM);
  t.regex(e1?.message ?? '', /ENOMEM \(4194304 KiB asked, \d+ KiB free\)/);
  const e2 = await t.throwsAsync(host.createDomain({ ...config, memoryKiB: 1024, vcpus: 1000 }), { instanceOf: DomctlError });
  t.is(e2?.errno, XEN_EINVAL);
  t.is(host.usage().domains, 0, 'nothing half-built stays');
  await host.close();
});

test.serial('item 6: Xen\'s xlexample.pvhlinux (memory = 512, 4 vCPUs) boots, and is destroyed', async (t) => {
  const text = readFileSync(join(EXAMPLES, 'xlexample.pvhlinux'), 'utf8').replace('/dev/zvol/tank/guest-volume', 'pvh.img');
  image('six', 'pvh.img');
  const p = cfg('six', 'pvhlinux.cfg', text);
  const r = await create(p);
  t.is(r.code, 0, r.stderr);
  const d = (await list()).find((x) => x.name === 'example.pvhlinux');
  t.like(d, { memMiB: 512, vcpus: 4 });
  // Its kernel came up and says how big it is.
  t.regex(await consoleSays('example.pvhlinux', /512 MiB/), /example\.pvhlinux, PVH guest, 512 MiB, 4 vCPU/);
  t.is((await rv(['--run-dir', rig.rh.runDir, 'destroy', 'example.pvhlinux'])).code, 0);
});

test.serial('item 9: creating a config that runs says once that it runs, and as which domain', async (t) => {
  image('nine', 'd.img');
  const p = cfg('nine', 'once.cfg', 'name = "once"\nmemory = 16\nuuid = "3c1f0b1e-0000-4000-8000-000000000009"\n' +
    'disk = [ \'d.img,raw,xvda,rw\' ]\nvif = [ \'mac=00:16:3e:00:00:09\' ]');
  const first = await create(p);
  t.is(first.code, 0, first.stderr);
  const domid = Number(/id=(\d+)/.exec(first.stdout)![1]);
  const again = await create(p);
  t.is(again.code, 1);
  const lines = again.stderr.trim().split('\n').filter((l) => !/^Parsing config|nothing was started/.test(l));
  t.deepEqual(lines, [`${p}: once is already running as domain ${domid} (expected it shut down or destroyed first)`]);
  t.is((await rv(['--run-dir', rig.rh.runDir, 'destroy', 'once'])).code, 0);
});

test.serial('item 8: config files in one directory each get their own console log and state file', async (t) => {
  image('eight', 'a.img');
  image('eight', 'b.img');
  const a = cfg('eight', 'a.cfg', 'name = "eight-a"\nmemory = 16\ndisk = [ \'a.img,raw,xvda,rw\' ]');
  const b = cfg('eight', 'b.cfg', 'name = "eight-b"\nmemory = 16\ndisk = [ \'b.img,raw,xvda,rw\' ]');
  t.is((await create(a)).code, 0);
  t.is((await create(b)).code, 0);
  await consoleSays('eight-a', /eight-a/);
  await consoleSays('eight-b', /eight-b/);
  const d = join(rig.dir, 'eight');
  t.deepEqual(readdirSync(join(d, 'run')).sort(), ['a.json', 'b.json']);
  t.like(JSON.parse(readFileSync(join(d, 'run', 'a.json'), 'utf8')), { name: 'eight-a', config: a, state: 'running' });
  t.like(JSON.parse(readFileSync(join(d, 'run', 'b.json'), 'utf8')), { name: 'eight-b', config: b, state: 'running' });
  t.is((await rv(['--run-dir', rig.rh.runDir, 'destroy', 'eight-a'])).code, 0);
  t.false(existsSync(join(d, 'run', 'a.json')), 'a\'s state went with it');
  t.true(existsSync(join(d, 'run', 'b.json')), 'b\'s state is untouched');
  await rv(['--run-dir', rig.rh.runDir, 'destroy', 'eight-b']);
  // Each log is its own guest's console only.
  const logA = readFileSync(join(d, 'a.console.log'), 'utf8');
  const logB = readFileSync(join(d, 'b.console.log'), 'utf8');
  t.regex(logA, /eight-a/);
  t.notRegex(logA, /eight-b/);
  t.regex(logB, /eight-b/);
  t.notRegex(logB, /eight-a/);
});

test.serial('item 7: image locks: rw needs the image unused, ro needs no writer, w! overrides', async (t) => {
  const img = image('seven', 'shared.img');
  const vm = (name: string, access: string) =>
    cfg('seven', `${name}.cfg`, `name = "${name}"\nmemory = 16\n\ndisk = [ '${img},raw,xvda,${access}' ]`);
  const w1 = vm('w1', 'rw');
  t.is((await create(w1)).code, 0);
  // A second writer, and a reader, are refused at the disk's line, naming who holds the image.
  for (const [name, access] of [['w2', 'rw'], ['r1', 'ro']] as const) {
    const p = vm(name, access);
    const r = await create(p);
    t.is(r.code, 1, name);
    t.true(r.stderr.includes(`${p}:4:`), r.stderr);
    t.regex(r.stderr, new RegExp(`image ${img} is in use read-write by w1 \\(host pid ${process.pid}`));
  }
  // xl's w!: the administrator says the sharing is intended.
  const forced = vm('w3', 'w!');
  const f = await create(forced);
  t.is(f.code, 0, f.stderr);
  await rv(['--run-dir', rig.rh.runDir, 'destroy', 'w3']);
  await rv(['--run-dir', rig.rh.runDir, 'destroy', 'w1']);
  // Readers share; a writer then waits for them all to go.
  t.is((await create(vm('r2', 'ro'))).code, 0);
  t.is((await create(vm('r3', 'ro'))).code, 0);
  const w4 = await create(vm('w4', 'rw'));
  t.is(w4.code, 1);
  t.regex(w4.stderr, /in use read-only by r2 .*; read-only by r3/);
  await rv(['--run-dir', rig.rh.runDir, 'destroy', 'r2']);
  await rv(['--run-dir', rig.rh.runDir, 'destroy', 'r3']);
  t.is((await create(join(rig.dir, 'seven', 'w4.cfg'))).code, 0, 'free again once the readers are destroyed');
  await rv(['--run-dir', rig.rh.runDir, 'destroy', 'w4']);
  t.deepEqual(readdirSync(imageLockDir()).filter((f) => f.includes(`.${process.pid}.`) && f.startsWith(lockKey(img))), []);
});

test.serial('item 7: a lock left by a process that is gone is stale: removed, and the attach goes ahead', async (t) => {
  const img = image('seven-stale', 'old.img');
  // What a host killed with -9 leaves: a holder file naming a pid that no longer exists.
  const dead = 2 ** 22 + 12345; // above Linux's pid_max default of 4194304: never a live process
  const holder = join(imageLockDir(), `${lockKey(img)}.${dead}.deadbeef.w`);
  writeFileSync(holder, JSON.stringify({ image: img, mode: 'w', domain: 'ghost', pid: dead, host: '', since: '' }));
  const p = cfg('seven-stale', 'new.cfg', `name = "fresh"\nmemory = 16\ndisk = [ '${img},raw,xvda,rw' ]`);
  const r = await create(p);
  t.is(r.code, 0, r.stderr);
  t.false(existsSync(holder));
  await rv(['--run-dir', rig.rh.runDir, 'destroy', 'fresh']);
});

/* The holder files' key for an image: its device and inode (dom0/toolstack/image-lock.ts). */
function lockKey(p: string): string {
  const { dev, ino } = statSync(p);
  return `${dev}-${ino}`;
}
