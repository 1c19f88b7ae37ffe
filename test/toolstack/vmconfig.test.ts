// VmConfig interpretation: every key, xl's defaults, ringvisor's keys, warnings for ignored and unknown keys, one test per error.
import test, { type ExecutionContext } from 'ava';
import { ConfigError, type Diagnostic } from '../../dom0/toolstack/config/config-error.ts';
import { domainConfigFields, interpretXlConfig, loadVmConfig } from '../../dom0/toolstack/config/vmconfig.ts';
import { parseXlConfig } from '../../dom0/toolstack/config/xlcfg-parse.ts';

const load = (text: string) => interpretXlConfig(parseXlConfig(text, 'vm.cfg'), '/vms/x/vm.cfg');
const config = (text: string) => load(text).config;
const warnings = (text: string) => load(text).warnings.map((w) => `${w.line}: ${w.message}`);

/** Asserts a ConfigError with an error at vm.cfg:`line` whose message matches `what`. */
function fails(t: ExecutionContext, text: string, line: number, what: RegExp): ConfigError {
  const e = t.throws(() => load(text), { instanceOf: ConfigError })!;
  const hit = e.diagnostics.find((d: Diagnostic) => d.line === line && what.test(d.message));
  t.truthy(hit, e.message);
  t.regex(e.message, new RegExp(`^vm\\.cfg:${line}(:\\d+)?: `, 'm'));
  return e;
}

test('a name alone: xl\'s defaults for everything else', (t) => {
  const c = config('name = "x"\n');
  t.like(c, {
    name: 'x', uuid: null, type: 'pv', memoryMiB: 32, maxmemMiB: 32, vcpus: 1, maxvcpus: 1,
    disks: [], vifs: [], workload: null, template: false, createImages: [], dir: '/vms/x', file: '/vms/x/vm.cfg',
  });
  t.deepEqual([c.on_poweroff, c.on_reboot, c.on_crash], [
    { xen: 'destroy', action: 'destroy' }, { xen: 'restart', action: 'restart' }, { xen: 'destroy', action: 'destroy' },
  ]);
  t.deepEqual(load('name = "x"\n').warnings, []);
});

test('name: required, a single non-empty value', (t) => {
  fails(t, 'memory = 64\n', 1, /no `name' given \(expected name = "NAME"/);
  fails(t, 'name = [ "a" ]\n', 1, /`name' is a list but should be a single value/);
  fails(t, 'memory = 64\nname = ""\n', 2, /expected a non-empty name/);
  t.is(config('name = 42').name, '42'); // libxlu values are text: a number is a fine name
});

test('uuid: 8-4-4-4-12 hex, kept lower case', (t) => {
  t.is(config('name = "x"\nuuid = "67E848AB-8979-4A9D-A730-A41E4B2C0CE8"').uuid, '67e848ab-8979-4a9d-a730-a41e4b2c0ce8');
  fails(t, 'name = "x"\nuuid = "XXXXXXXX-XXXX-XXXX-XXXX-XXXXXXXXXXXX"\n', 2, /not a UUID \(expected 8-4-4-4-12 hex digits\)/);
});

test('type and the deprecated builder', (t) => {
  t.is(config('name = "x"\ntype = "hvm"').type, 'hvm');
  t.is(config('name = "x"\ntype = "pvh"').type, 'pvh');
  t.is(config('name = "x"\ntype = "pv"').type, 'pv');
  t.is(config('name = "x"\nbuilder = "hvm"').type, 'hvm');
  t.is(config('name = "x"\nbuilder = "generic"').type, 'pv');
  t.true(warnings('name = "x"\nbuilder = "hvm"').some((w) => /^2: `builder' is deprecated/.test(w)));
  fails(t, 'name = "x"\ntype = "hv"\n', 2, /`type' is "hv" \(expected "pv", "pvh" or "hvm"\)/);
  fails(t, 'name = "x"\ntype = "pv"\nbuilder = "hvm"\n', 3, /`builder' says hvm but `type' at line 2 says pv/);
  fails(t, 'name = "x"\nbuilder = "linux"\n', 2, /`builder' is "linux"/);
});

test('memory and maxmem in MiB, read as xl reads numbers', (t) => {
  t.like(config('name = "x"\nmemory = 128'), { memoryMiB: 128, maxmemMiB: 128 });
  t.like(config('name = "x"\nmemory = "128"'), { memoryMiB: 128 });
  t.like(config('name = "x"\nmemory = 0x80'), { memoryMiB: 128 });
  t.like(config('name = "x"\nmaxmem = 256'), { memoryMiB: 256, maxmemMiB: 256 });
  t.like(config('name = "x"\nmemory = 128\nmaxmem = 512'), { memoryMiB: 128, maxmemMiB: 512 });
  t.like(config('name = "x"\nmemory = 010'), { memoryMiB: 8 });
  t.true(warnings('name = "x"\nmemory = 010').some((w) => /^2: `memory = 010' is read as octal \(8\)/.test(w)));
  fails(t, 'name = "x"\nmemory = "lots"\n', 2, /`memory' is not a valid number: "lots" \(expected memory = MiB/);
  fails(t, 'name = "x"\nmemory = 12ab\n', 2, /not a valid number/);
  fails(t, 'name = "x"\nmemory = [ 512 ]\n', 2, /`memory' is a list but should be a single value/);
  fails(t, 'name = "x"\nmemory = 0\n', 2, /`memory' is 0, smaller than the minimum 1/);
  fails(t, 'name = "x"\nmemory = 1\nmemory += 2\n', 3, /can't use \+= with numbers for `memory'/);
  fails(t, 'name = "x"\nmemory = 512\nmaxmem = 256\n', 3, /maxmem \(256 MiB\) is less than memory \(512 MiB\)/);
});

test('vcpus and maxvcpus', (t) => {
  t.like(config('name = "x"\nvcpus = 4'), { vcpus: 4, maxvcpus: 4 });
  t.like(config('name = "x"\nvcpus = 2\nmaxvcpus = 8'), { vcpus: 2, maxvcpus: 8 });
  t.like(config('name = "x"\nvcpus = 0'), { vcpus: 1 });
  t.true(warnings('name = "x"\nvcpus = 0').some((w) => /^2: vcpus = 0 means 1/.test(w)));
  fails(t, 'name = "x"\nvcpus = 4\nmaxvcpus = 2\n', 3, /maxvcpus \(2\) < vcpus \(4\)/);
});

test('disk: targets resolve against the config\'s directory; placement follows the guest type', (t) => {
  const pv = config('name = "x"\ndisk = [ "disk.img,raw,xvda,rw", "/abs/b.img,raw,hdb,ro", "sub/c.img,,sda" ]');
  t.deepEqual(pv.disks.map((d) => [d.path, d.vdev.devid, d.readonly, d.io]), [
    ['/vms/x/disk.img', 51712, false, 'pv'], ['/abs/b.img', 832, true, 'pv'], ['/vms/x/sub/c.img', 2048, false, 'pv'],
  ]);
  const hvm = config('name = "x"\ntype = "hvm"\ndisk = [ "a.img,raw,hda,rw", "b.img,raw,xvdb,ro", "c.iso,,hdc,cdrom" ]');
  t.deepEqual(hvm.disks.map((d) => [d.vdev.name, d.io, d.readonly, d.devtype]), [
    ['hda', 'emulated', false, 'disk'], ['xvdb', 'pv', true, 'disk'], ['hdc', 'emulated', true, 'cdrom'],
  ]);
  t.is(config('name = "x"\ntype = "pvh"\ndisk = [ "a.img,raw,hda,rw" ]').disks[0]!.io, 'pv');
});

test('disk: HVM cases that fall back to PV warn, a read-only IDE disk is an error', (t) => {
  const w = warnings('name = "x"\ntype = "hvm"\ndisk = [ "a.img,raw,sda,rw",\n "b.img,raw,hda1,rw" ]');
  t.true(w.some((x) => /^3: disk 'a.img,raw,sda,rw': ringvisor emulates no SCSI controller/.test(x)));
  t.true(w.some((x) => /^4: disk 'b.img,raw,hda1,rw': hda1 is a partition/.test(x)));
  fails(t, 'name = "x"\ntype = "hvm"\ndisk = [ "a.img,raw,hda,ro" ]\n', 3, /emulated IDE disk cannot be read-only.*xvda/);
});

test('disk: a bad spec is an error at its own line and column, with what was expected', (t) => {
  const e = fails(t, 'name = "x"\ndisk = [\n  "a.img,raw,xvda,rw",\n  "b.img,raw,xvdb,rw,oops",\n]\n', 4,
    /disk 'b.img,raw,xvdb,rw,oops': too many positional parameters/);
  t.is(e.diagnostics[0]!.column, 3);
  fails(t, 'name = "x"\ndisk = "a.img,raw,xvda"\n', 2, /`disk' is a single value but should be a list \(expected disk = \[/);
  fails(t, 'name = "x"\ndisk = [ [ "a" ] ]\n', 2, /an item of `disk' is a list but should be a string/);
  fails(t, 'name = "x"\ndisk = [ "a.img,raw,xvda", "b.img,raw,d0p0" ]\n', 2, /vdev d0p0 is the same device as xvda at line 2/);
  t.true(warnings('name = "x"\ndisk = [ "a.q,qcow2,xvda" ]').some((x) => /raw images only; a qcow2 image cannot be booted/.test(x)));
  t.true(warnings('name = "x"\ndisk = [ "a,raw,xvda,backendtype=qdisk" ]').some((x) => /not modelled, ignored: backendtype=qdisk/.test(x)));
});

test('vif: parsed and kept, with Xen\'s defaults and ringvisor\'s emulated model', (t) => {
  const c = config('name = "x"\nvif = [ "", "mac=00:16:3E:12:34:56,bridge=br1,ip=10.0.0.2,mtu=9000,vifname=v1,rate=10Mb/s" ]');
  t.like(c.vifs[0], { devid: 0, mac: null, bridge: 'xenbr0', mtu: 1500, io: 'pv', model: null });
  t.like(c.vifs[1], { devid: 1, mac: '00:16:3e:12:34:56', bridge: 'br1', ip: '10.0.0.2', mtu: 9000, vifname: 'v1', rate: '10Mb/s' });
  const h = config('name = "x"\ntype = "hvm"\nvif = [ "model=e1000", "type=vif", "model=rtl8139" ]');
  t.deepEqual(h.vifs.map((v) => [v.io, v.model]), [['emulated', 'e1000'], ['pv', null], ['emulated', 'e1000']]);
  t.true(warnings('name = "x"\ntype = "hvm"\nvif = [ "model=rtl8139" ]').some((w) => /model=rtl8139 is served as e1000/.test(w)));
  t.true(warnings('name = "x"\nvif = [ "colour=blue" ]').some((w) => /unrecognized vif argument `colour=blue'/.test(w)));
  fails(t, 'name = "x"\nvif = [ "mac=00:16:3e:12:34" ]\n', 2, /invalid mac `00:16:3e:12:34' \(expected six hex octets/);
  fails(t, 'name = "x"\nvif = [ "mac=01:16:3e:12:34:56" ]\n', 2, /multicast/);
  fails(t, 'name = "x"\nvif = [ "type=tap" ]\n', 2, /invalid type `tap'/);
  fails(t, 'name = "x"\nvif = [ "mac=00:16:3e:00:00:01",\n "mac=00:16:3e:00:00:01" ]\n', 3, /also used by the vif at line 2/);
});

test('on_poweroff, on_reboot, on_crash: Xen\'s actions, mapped to what ringvisor models', (t) => {
  const expect: Record<string, string> = {
    'destroy': 'destroy', 'restart': 'restart', 'preserve': 'preserve', 'rename-restart': 'restart',
    'coredump-destroy': 'destroy', 'coredump-restart': 'restart', 'soft-reset': 'restart',
  };
  for (const [xen, action] of Object.entries(expect)) {
    for (const key of ['on_poweroff', 'on_reboot', 'on_crash'] as const) {
      const r = load(`name = "x"\n${key} = "${xen}"\n`);
      t.deepEqual(r.config[key], { xen, action });
      t.is(r.warnings.some((w) => w.line === 2 && /is not modelled; ringvisor will/.test(w.message)), xen !== action);
    }
  }
  fails(t, 'name = "x"\non_crash = "reboot"\n', 2, /unknown on_crash action "reboot" \(expected one of destroy, restart/);
  t.true(warnings('name = "x"\non_watchdog = "restart"').some((w) => /^2: `on_watchdog' is checked but not modelled/.test(w)));
  fails(t, 'name = "x"\non_soft_reset = "nap"\n', 2, /unknown on_soft_reset action/);
});

test('workload and workload_args', (t) => {
  const c = config('name = "x"\ndisk = [ "d.img,raw,xvda" ]\nworkload = "fio-rand-read"\n' +
    'workload_args = [ "disk=xvda", "bs=8192", "count=100", "seed=7", "depth=4" ]');
  t.deepEqual(c.workload, { name: 'fio-rand-read', args: { disk: 'xvda', bs: '8192', count: '100', seed: '7', depth: '4' }, line: 3 });
  t.true(warnings('name = "x"\nworkload = "disk-chek"').some((w) => /^2: workload "disk-chek" is not one ringvisor ships \(did you mean "disk-check"\?\)/.test(w)));
  fails(t, 'name = "x"\nworkload = "Disk Check"\n', 2, /expected a name of lower-case letters/);
  fails(t, 'name = "x"\nworkload = "idle"\nworkload_args = [ "verbose" ]\n', 3, /workload_args entry "verbose" \(expected KEY=VALUE/);
  fails(t, 'name = "x"\nworkload = "idle"\nworkload_args = [ "bs=1000" ]\n', 3, /bs=1000 \(expected a positive multiple of 512\)/);
  fails(t, 'name = "x"\nworkload = "idle"\nworkload_args = [ "disk=xvdb" ]\n', 3, /disk=xvdb \(expected a vdev of this VM/);
  fails(t, 'name = "x"\nworkload = "idle"\nworkload_args = [ "seed=1", "seed=2" ]\n', 3, /gives `seed' twice/);
  fails(t, 'name = "x"\nworkload_args = [ "seed=1" ]\n', 2, /workload_args given without a workload/);
  fails(t, `name = "x"\nworkload = "idle"\nworkload_args = [ "pad=${'x'.repeat(1100)}" ]\n`, 2, /command line is \d+ bytes \(expected at most 1023\)/);
});

test('template: a boolean, as xl reads booleans', (t) => {
  t.true(config('name = "x"\ntemplate = 1').template);
  t.false(config('name = "x"\ntemplate = 0').template);
  fails(t, 'name = "x"\ntemplate = "yes"\n', 2, /`template' is not a valid number: "yes" \(expected template = 0 or template = 1/);
});

test('create_images: PATH=MiB for a disk of this config', (t) => {
  const c = config('name = "x"\ndisk = [ "disk.img,raw,xvda" ]\ncreate_images = [ "disk.img=16" ]');
  t.deepEqual(c.createImages, [{ path: '/vms/x/disk.img', sizeMiB: 16, line: 3 }]);
  fails(t, 'name = "x"\ndisk = [ "disk.img,raw,xvda" ]\ncreate_images = [ "other.img=16" ]\n', 3, /names other.img, which no disk of this config uses/);
  fails(t, 'name = "x"\ndisk = [ "disk.img,raw,xvda" ]\ncreate_images = [ "disk.img=0" ]\n', 3, /expected PATH=MiB with MiB >= 1/);
});

test('Xen keys ringvisor ignores are warnings that say why; unknown keys suggest the nearest', (t) => {
  const w = warnings('name = "x"\nkernel = "/boot/vmlinuz"\nvnc = 1\npci_permissive = 1\npool = "Pool-0"\n' +
    'memroy = 64\nvpcus = 2\nfrobnicate = 1\ndevice_model_version = "qemu-xen"\n');
  t.true(w.some((x) => /^2: `kernel' ignored: ringvisor boots its own guest kernel/.test(x)));
  t.true(w.some((x) => /^3: `vnc' ignored: no graphics/.test(x)));
  t.true(w.some((x) => /^4: `pci_permissive' ignored: the storage controllers are passed through whole/.test(x)));
  t.true(w.some((x) => /^5: `pool' ignored: ringvisor has one cpupool/.test(x)));
  t.true(w.some((x) => /^6: unknown key `memroy' ignored \(did you mean `memory'\?\)/.test(x)));
  t.true(w.some((x) => /^7: unknown key `vpcus' ignored \(did you mean `vcpus'\?\)/.test(x)));
  t.true(w.some((x) => x === '8: unknown key `frobnicate\' ignored'));
  t.true(w.some((x) => /^9: `device_model_version' ignored: ringvisor's device models run in Dom0/.test(x)));
});

test('pci = [...] and driver_domain: the devices given, by BDF; options and a slot are warnings; a bad one is an error at its line', (t) => {
  const c = config('name = "dd"\ndriver_domain = 1\npci = [ "00:1f.2", "0000:00:1f.1@3,permissive=1" ]');
  t.true(c.driverDomain);
  t.deepEqual(c.pci.map((p) => [p.dev, p.bdf, p.line]), [[2, '0000:00:1f.2', 3], [1, '0000:00:1f.1', 3]]);
  t.false(config('name = "x"').driverDomain);
  t.deepEqual(config('name = "x"').pci, []);
  const w = warnings('name = "dd"\npci = [ "00:1f.1,seize=1" ]');
  t.true(w.some((x) => /^2: pci '00:1f\.1,seize=1': not modelled, ignored: seize=1/.test(x)), w.join('\n'));
  fails(t, 'name = "x"\npci = [ "00:1f.0" ]\n', 2, /0000:00:1f\.0 is not assignable/);
  fails(t, 'name = "x"\npci = "00:1f.1"\n', 2, /`pci' is a single value but should be a list/);
  fails(t, 'name = "x"\ndriver_domain = "yes"\n', 2, /`driver_domain' is not a valid number/);
});

test('every error of a config is reported at once, each with its file:line', (t) => {
  const e = t.throws(() => load('name = "x"\nmemory = "a"\nvcpus = [ 1 ]\ndisk = [ "d.img" ]\n'), { instanceOf: ConfigError })!;
  t.deepEqual(e.diagnostics.map((d) => d.line), [2, 3, 4]);
  t.deepEqual(e.message.split('\n').map((l) => l.split(': ')[0]), ['vm.cfg:2:10', 'vm.cfg:3:9', 'vm.cfg:4:10']);
});

test('domainConfigFields: what the hypervisor gets', (t) => {
  const c = config('name = "x"\nmemory = 64\nvcpus = 2\non_crash = "coredump-restart"\ndisk = [ "d,raw,xvda" ]\n' +
    'workload = "disk-check"\nworkload_args = [ "disk=xvda", "bs=4096" ]');
  t.deepEqual(domainConfigFields(c), {
    name: 'x', vcpus: 2, max_vcpus: 2, memoryKiB: 65536, on_poweroff: 'destroy', on_reboot: 'restart', on_crash: 'restart',
    cmdline: 'workload=disk-check disk=xvda bs=4096',
  });
});

const fixture = (f: string) => `test/fixtures/toolstack/${f}`;

test('malformed fixture files: each a ConfigError naming file:line', (t) => {
  const cases: Array<[string, string, RegExp]> = [
    ['wrong-type.cfg', '3:10', /`memory' is a list but should be a single value/],
    ['bad-diskspec.cfg', '4:3', /disk 'other.img,raw,xvdb,rw,extra': too many positional parameters/],
    ['unterminated-list.cfg', '2:8', /unterminated list.*before `memory' at line 4/],
    ['unterminated-string.cfg', '1:8', /unterminated string/],
  ];
  for (const [f, where, what] of cases) {
    const e = t.throws(() => loadVmConfig(fixture(f)), { instanceOf: ConfigError })!;
    t.true(e.message.startsWith(`${fixture(f)}:${where}: `), e.message);
    t.regex(e.message, what);
  }
  const e = t.throws(() => loadVmConfig(fixture('no-such.cfg')), { instanceOf: ConfigError })!;
  t.regex(e.message, /no-such\.cfg: unable to open configuration file/);
});
