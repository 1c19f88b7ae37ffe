// Real configs: Xen's own example configs load (warnings, no error), and ringvisor's shipped examples load, boot-validate and differ in identity.
import test from 'ava';
import { cpSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ConfigError } from '../../dom0/toolstack/config/config-error.ts';
import { loadVmConfig } from '../../dom0/toolstack/config/vmconfig.ts';
import { checkDistinctIdentities, validateForBoot } from '../../dom0/toolstack/config/vmcheck.ts';
import { ensureVmImages, listVmDirs, loadVmDir } from '../../dom0/toolstack/config/vmdir.ts';

const XEN = 'test/fixtures/xen-examples';

test('Xen\'s xlexample.pvlinux loads, warning about the keys ringvisor ignores', (t) => {
  const { config, warnings } = loadVmConfig(`${XEN}/xlexample.pvlinux`);
  t.like(config, { name: 'example.pvlinux', type: 'pv', memoryMiB: 128, vcpus: 2, uuid: null });
  t.deepEqual(config.disks.map((d) => [d.path, d.vdev.devid, d.io, d.readonly]), [['/dev/vg/guest-volume', 51712, 'pv', false]]);
  t.like(config.vifs[0], { mac: null, bridge: 'xenbr0', io: 'pv' });
  t.deepEqual(warnings.map((w) => `${w.file}:${w.line}: ${w.message.split(' ')[0]}`), [
    `${XEN}/xlexample.pvlinux:17: \`kernel'`, `${XEN}/xlexample.pvlinux:23: \`extra'`,
  ]);
});

test('Xen\'s xlexample.pvhlinux loads', (t) => {
  const { config, warnings } = loadVmConfig(`${XEN}/xlexample.pvhlinux`);
  t.like(config, { name: 'example.pvhlinux', type: 'pvh', memoryMiB: 512, vcpus: 4 });
  t.is(config.disks[0]!.path, '/dev/zvol/tank/guest-volume');
  t.deepEqual(warnings.map((w) => w.line), [20, 26]);
});

test('Xen\'s xlexample.hvm loads: its xvda stays PV, its vif is the emulated NIC', (t) => {
  const { config, warnings } = loadVmConfig(`${XEN}/xlexample.hvm`);
  t.like(config, { name: 'example.hvm', type: 'hvm', memoryMiB: 128, maxmemMiB: 128, vcpus: 2 });
  t.is(config.disks[0]!.io, 'pv');
  t.like(config.vifs[0], { io: 'emulated', model: 'e1000' });
  t.deepEqual(warnings.map((w) => [w.line, w.message]), [[46, '`sdl\' ignored: no graphics, sound, serial or USB devices ' +
    'are modelled (the guest\'s console is the PV console)']]);
});

test('Xen\'s examples load for inspection, but their images are not here, so they cannot boot', (t) => {
  for (const f of ['xlexample.hvm', 'xlexample.pvlinux', 'xlexample.pvhlinux']) {
    const { config } = loadVmConfig(`${XEN}/${f}`);
    const e = t.throws(() => validateForBoot(config), { instanceOf: ConfigError })!;
    t.regex(e.message, new RegExp(`^${XEN}/${f}:4[0-9]:10: disk '.*': image .* does not exist`));
  }
});

test('ringvisor\'s shipped examples: two bootable VMs (PV disk, emulated disk) and a template', (t) => {
  const host = mkdtempSync(join(tmpdir(), 'ringvisor-examples-'));
  t.teardown(() => rmSync(host, { recursive: true, force: true }));
  cpSync('examples', host, { recursive: true }); // images are made in the copy, never in the checkout

  const vms = listVmDirs(join(host, 'vms')).map((d) => loadVmDir(d));
  t.deepEqual(vms.map((v) => v.config.name), ['guest-hvm', 'guest-pv']);
  for (const v of vms) {
    t.deepEqual(v.warnings, [], v.configFile);
    t.throws(() => validateForBoot(v.config), { message: /disk\.img does not exist.*create_images makes it/ });
    t.deepEqual(ensureVmImages(v.config), [join(v.dir, 'disk.img')]);
    t.notThrows(() => validateForBoot(v.config));
    t.is(v.config.workload?.name, 'disk-check');
  }
  const [hvm, pv] = vms.map((v) => v.config);
  t.deepEqual([pv!.type, pv!.disks[0]!.vdev.name, pv!.disks[0]!.io], ['pv', 'xvda', 'pv']);
  t.deepEqual([hvm!.type, hvm!.disks[0]!.vdev.name, hvm!.disks[0]!.io], ['hvm', 'hda', 'emulated']);
  t.notThrows(() => checkDistinctIdentities([pv!, hvm!]));

  const tpl = loadVmDir(join(host, 'templates', 'small-guest'));
  t.deepEqual(tpl.warnings, []);
  t.true(tpl.config.template);
  t.throws(() => validateForBoot(tpl.config), { message: /is a template/ });
});
