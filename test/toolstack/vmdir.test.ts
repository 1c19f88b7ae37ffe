// VM directories: sparse images, validation for boot, provisioning from a template or a copied directory, identities on one host.
import test from 'ava';
import { cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ConfigError } from '../../dom0/toolstack/config/config-error.ts';
import { loadVmConfig } from '../../dom0/toolstack/config/vmconfig.ts';
import { checkDistinctIdentities, validateForBoot } from '../../dom0/toolstack/config/vmcheck.ts';
import {
  createRawImage, ensureImage, ensureVmImages, listVmDirs, loadVmDir, newVmFromTemplate, provisionInPlace,
} from '../../dom0/toolstack/config/vmdir.ts';

const MiB = 1024 * 1024;
const TEMPLATE = 'examples/templates/small-guest';
const GUEST_PV = 'examples/vms/guest-pv';

function scratch(t: import('ava').ExecutionContext): string {
  const dir = mkdtempSync(join(tmpdir(), 'ringvisor-vmdir-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** The comment lines of a config, in order: what provisioning must leave alone. */
const comments = (file: string) => readFileSync(file, 'utf8').split('\n').filter((l) => l.trimStart().startsWith('#'));

test('createRawImage makes a sparse image of N MiB and never overwrites one', (t) => {
  const dir = scratch(t);
  const img = join(dir, 'd.img');
  createRawImage(img, 64);
  const st = statSync(img);
  t.is(st.size, 64 * MiB);
  t.true(st.blocks * 512 < st.size, 'no blocks allocated up front');
  t.throws(() => createRawImage(img, 1), { code: 'EEXIST' });
  t.throws(() => createRawImage(join(dir, 'e.img'), 0), { instanceOf: RangeError });
  writeFileSync(join(dir, 'mine.img'), Buffer.alloc(512, 7));
  t.false(ensureImage(join(dir, 'mine.img'), 16));
  t.is(statSync(join(dir, 'mine.img')).size, 512);
  t.true(ensureImage(join(dir, 'new.img'), 2));
  t.is(statSync(join(dir, 'new.img')).size, 2 * MiB);
});

test('a missing disk image stops the boot, at the disk entry\'s file:line; loading does not care', (t) => {
  const file = 'test/fixtures/toolstack/missing-image.cfg';
  const { config } = loadVmConfig(file);
  const e = t.throws(() => validateForBoot(config), { instanceOf: ConfigError })!;
  t.regex(e.message, new RegExp(`^${file}:3:10: disk 'no-such.img,raw,xvda,rw': image .*/no-such\\.img does not exist`));
});

test('images must be raw, regular and a whole number of sectors', (t) => {
  const dir = scratch(t);
  writeFileSync(join(dir, 'odd.img'), Buffer.alloc(1000));
  mkdirSync(join(dir, 'adir.img'));
  writeFileSync(join(dir, 'vm.cfg'), 'name = "v"\ndisk = [ "odd.img,raw,xvda",\n "adir.img,raw,xvdb",\n "q.img,qcow2,xvdc" ]\n');
  const e = t.throws(() => validateForBoot(loadVmDir(dir).config), { instanceOf: ConfigError })!;
  t.deepEqual(e.diagnostics.map((d) => d.line), [2, 3, 4]);
  t.regex(e.diagnostics[0]!.message, /is 1000 bytes \(expected a non-zero whole number of 512-byte sectors\)/);
  t.regex(e.diagnostics[1]!.message, /is not a regular file/);
  t.regex(e.diagnostics[2]!.message, /format qcow2 cannot be served \(expected format raw\)/);
});

test('a template refuses to boot until a VM is provisioned from it', (t) => {
  const host = scratch(t);
  const tpl = join(host, 'templates', 'small-guest');
  cpSync(TEMPLATE, tpl, { recursive: true });
  const template = loadVmDir(tpl);
  ensureVmImages(template.config);
  const e = t.throws(() => validateForBoot(template.config), { instanceOf: ConfigError })!;
  t.regex(e.message, /vm\.cfg:\d+: small-guest is a template \(template = 1\), which cannot be booted/);
  t.is(e.diagnostics[0]!.line, template.config.lines['template']);

  const before = readFileSync(join(tpl, 'vm.cfg'), 'utf8');
  const vm = newVmFromTemplate(tpl, join(host, 'vms', 'web1'));
  t.is(readFileSync(join(tpl, 'vm.cfg'), 'utf8'), before, 'the template itself is untouched');
  t.false(vm.config.template);
  t.is(vm.config.name, 'web1');
  t.regex(vm.config.uuid!, /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
  t.regex(vm.config.vifs[0]!.mac!, /^00:16:3e:[0-7][0-9a-f]:[0-9a-f]{2}:[0-9a-f]{2}$/);
  t.is(vm.config.vifs[0]!.bridge, 'xenbr0', 'the rest of the vif spec is kept');
  t.regex(readFileSync(vm.configFile, 'utf8'), /^vif = \[ 'mac=00:16:3e:[0-9a-f:]{8},bridge=xenbr0' \]$/m, 'in its own quotes');
  // The admin's comments survive provisioning; the template's own words (its opening comment,
  // the one above the marker) are replaced by a line saying where this VM came from.
  const tplText = readFileSync(join(tpl, 'vm.cfg'), 'utf8');
  const header = tplText.split('\n').findIndex((l) => !l.startsWith('#'));
  const marker = comments(join(tpl, 'vm.cfg')).filter((c, i) => i >= header && /The marker/.test(c));
  t.is(marker.length, 1);
  const kept = comments(join(tpl, 'vm.cfg')).slice(header).filter((c) => c !== marker[0]);
  const got = comments(vm.configFile);
  t.regex(got[0]!, /^# VM web1, provisioned by `ringvisor new-vm` from a template on /);
  t.deepEqual(got.slice(2), kept, 'every other comment survives provisioning');
  t.false(readFileSync(vm.configFile, 'utf8').includes('template = 1'));
  ensureVmImages(vm.config);
  t.notThrows(() => validateForBoot(vm.config));

  const vm2 = newVmFromTemplate(tpl, join(host, 'vms', 'web2'));
  t.not(vm2.config.uuid, vm.config.uuid);
  t.not(vm2.config.vifs[0]!.mac, vm.config.vifs[0]!.mac);
  t.notThrows(() => checkDistinctIdentities([vm.config, vm2.config]));
  t.deepEqual(listVmDirs(join(host, 'vms')).map((d) => d.split('/').pop()), ['web1', 'web2']);
});

test('a copied VM directory shares its identity until it is provisioned', (t) => {
  const host = scratch(t);
  const orig = join(host, 'guest-pv');
  const copy = join(host, 'guest-pv-copy');
  cpSync(GUEST_PV, orig, { recursive: true });
  cpSync(orig, copy, { recursive: true }); // "copying the directory copies the server"
  const a = loadVmDir(orig).config;
  const b = loadVmDir(copy).config;
  const e = t.throws(() => checkDistinctIdentities([a, b]), { instanceOf: ConfigError })!;
  t.deepEqual(e.diagnostics.map((d) => d.message.split(' ')[0]), ['name', 'name', 'uuid', 'uuid', 'mac', 'mac']);

  const p = provisionInPlace(copy);
  t.is(p.config.name, 'guest-pv-copy');
  t.not(p.config.uuid, a.uuid);
  t.not(p.config.vifs[0]!.mac, a.vifs[0]!.mac);
  t.deepEqual(p.config.workload, a.workload, 'the software is the same server\'s');
  t.deepEqual(comments(p.configFile), comments(join(orig, 'vm.cfg')));
  t.notThrows(() => checkDistinctIdentities([a, p.config]));
  ensureVmImages(p.config);
  t.notThrows(() => validateForBoot(p.config));
  t.deepEqual(loadVmDir(copy).warnings, [], 'the rewritten config loads cleanly');
});

test('provisioning names: given, derived, never one a VM beside it has', (t) => {
  const host = scratch(t);
  cpSync(GUEST_PV, join(host, 'guest-pv'), { recursive: true }); // its config says name = "guest-pv"
  mkdirSync(join(host, 'db'));
  writeFileSync(join(host, 'db', 'vm.cfg'), 'name = "database"\n');

  const dirClash = t.throws(() => newVmFromTemplate(TEMPLATE, join(host, 'new1'), { name: 'db' }), { instanceOf: ConfigError })!;
  t.regex(dirClash.message, /db: name "db" is already used by this VM/);
  const cfgClash = t.throws(() => newVmFromTemplate(TEMPLATE, join(host, 'new1'), { name: 'database' }), { instanceOf: ConfigError })!;
  t.regex(cfgClash.message, /db\/vm\.cfg:1: name "database" is already used by this VM/);
  t.throws(() => newVmFromTemplate(TEMPLATE, join(host, 'new1'), { name: 'no/slash' }), { message: /expected letters, digits/ });
  t.false(existsSync(join(host, 'new1')), 'a refused provisioning leaves nothing behind');

  t.is(newVmFromTemplate(TEMPLATE, join(host, 'new1'), { name: 'app' }).config.name, 'app');
  t.is(newVmFromTemplate(TEMPLATE, join(host, 'database')).config.name, 'database-2', 'derived name made unique');
  t.throws(() => newVmFromTemplate(TEMPLATE, join(host, 'new1')), { instanceOf: ConfigError, message: /destination already exists/ });
});

test('run-time files are not copied into a new VM', (t) => {
  const host = scratch(t);
  const src = join(host, 'src');
  cpSync(GUEST_PV, src, { recursive: true });
  writeFileSync(join(src, 'console.log'), 'boot messages\n');
  writeFileSync(join(src, 'paging.bin'), '');
  mkdirSync(join(src, 'run'));
  const vm = newVmFromTemplate(src, join(host, 'dst'));
  for (const f of ['console.log', 'paging.bin', 'run']) t.false(existsSync(join(vm.dir, f)), f);
  t.true(existsSync(join(vm.dir, 'vm.cfg')));
});

test('two VMs with one name on a host: both file:lines are reported', (t) => {
  const a = loadVmDir('test/fixtures/toolstack/dup-names/a').config;
  const b = loadVmDir('test/fixtures/toolstack/dup-names/b').config;
  const e = t.throws(() => checkDistinctIdentities([a, b]), { instanceOf: ConfigError })!;
  t.is(e.diagnostics.length, 2);
  t.regex(e.message, /^test\/fixtures\/toolstack\/dup-names\/a\/vm\.cfg:2: name "twin" is also used by test\/fixtures\/toolstack\/dup-names\/b\/vm\.cfg:3/m);
  t.regex(e.message, /^test\/fixtures\/toolstack\/dup-names\/b\/vm\.cfg:3: name "twin" is also used by test\/fixtures\/toolstack\/dup-names\/a\/vm\.cfg:2/m);
});

test('a provisioned config keeps layout: only identity lines change', (t) => {
  const host = scratch(t);
  const dir = join(host, 'odd');
  mkdirSync(dir);
  const text = [
    '# my server',
    'template = 1   # remove me',
    'name = "old" ; memory = 64   # same line',
    'vif = [ "bridge=br0",',
    '        # second nic',
    '        "mac=00:16:3e:00:00:01" ]',
    'name += "-suffix"',
    'disk = [ ]',
  ].join('\n');
  writeFileSync(join(dir, 'vm.cfg'), text);
  const vm = provisionInPlace(dir, { name: 'fresh' });
  const out = readFileSync(vm.configFile, 'utf8').split('\n');
  t.is(out[0], '# my server');
  t.is(out[1], 'memory = 64   # same line', 'the template line went; the replaced name went from a shared line');
  t.regex(out[2]!, /^vif = \[ "mac=00:16:3e:[0-9a-f:]{8},bridge=br0",$/);
  t.is(out[3], '        # second nic');
  t.regex(out[4]!, /^        "mac=00:16:3e:[0-9a-f:]{8}" \]$/);
  t.not(out[4], '        "mac=00:16:3e:00:00:01" ]');
  t.is(out[5], 'name = "fresh"', 'the name is set where its last statement was');
  t.regex(out[6]!, /^uuid = "[0-9a-f-]{36}"$/);
  t.deepEqual(out.slice(7), ['disk = [ ]']);
  t.is(vm.config.name, 'fresh');
  t.is(vm.config.memoryMiB, 64);
});
