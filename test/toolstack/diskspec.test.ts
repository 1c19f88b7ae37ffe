// Disk specs (xl-disk-configuration(5), libxlu_disk_l.l) and vdev numbers (xen-vbd-interface(7), libxl_device.c).
import test from 'ava';
import { parseDiskSpec, type DiskSpec } from '../../dom0/toolstack/config/diskspec.ts';
import { parseVdev } from '../../dom0/toolstack/config/vdev.ts';

function ok(spec: string): DiskSpec {
  const r = parseDiskSpec(spec);
  if (!r.ok) throw new Error(`${spec}: ${r.error}`);
  return r.disk;
}

function err(spec: string): string {
  const r = parseDiskSpec(spec);
  if (r.ok) throw new Error(`${spec} parsed, expected an error`);
  return r.error;
}

const essentials = (d: DiskSpec) => [d.target, d.format, d.vdev.name, d.readonly, d.devtype];

test('vdev numbers as xen-vbd-interface(7) encodes them', (t) => {
  const n = (v: string) => parseVdev(v)?.devid;
  t.is(n('xvda'), 51712);
  t.is(n('xvdb'), 51728);
  t.is(n('xvda1'), 51713);
  t.is(n('xvdp15'), (202 << 8) | (15 << 4) | 15);
  t.is(n('xvdq'), (1 << 28) | (16 << 8)); // disk 16: the extended form
  t.is(n('xvdaa'), (1 << 28) | (26 << 8));
  t.is(n('xvdtq37'), (1 << 28) | (536 << 8) | 37); // the doc's own example: disk 536 partition 37
  t.is(n('d0p0'), 51712);
  t.is(n('d1p2'), (202 << 8) | (1 << 4) | 2);
  t.is(n('hda'), 768);
  t.is(n('hdb'), 832);
  t.is(n('hdc'), 5632);
  t.is(n('hdd'), 5696);
  t.is(n('hdc2'), (22 << 8) | 2);
  t.is(n('sda'), 2048);
  t.is(n('sdb3'), (8 << 8) | (1 << 4) | 3);
  t.is(n('51712'), 51712);
  t.is(n('0xca00'), 51712);
  t.deepEqual(parseVdev('hdc2'), { name: 'hdc2', kind: 'hd', disk: 2, partition: 2, devid: 5634 });
});

test('vdevs libxl refuses', (t) => {
  for (const v of ['hde', 'sdq', 'xvd', 'xvda01', 'xvda256', 'hda64', 'sda16', 'vda', 'xvdA', 'd0', '']) {
    t.is(parseVdev(v), null, v);
  }
});

test('the positional form and the key=value form are one disk', (t) => {
  const want = ['/dev/vg/guest-volume', 'raw', 'hda', false, 'disk'];
  for (const spec of [
    '/dev/vg/guest-volume,,hda',
    '/dev/vg/guest-volume,raw,hda,rw',
    'format=raw, vdev=hda, access=rw, target=/dev/vg/guest-volume',
    'raw:/dev/vg/guest-volume,hda,w',
    'phy:/dev/vg/guest-volume,hda,w',
    'vdev=hda,/dev/vg/guest-volume',
  ]) {
    t.deepEqual(essentials(ok(spec)), want, spec);
  }
});

test('CD-ROMs in every documented spelling are read-only', (t) => {
  const want = ['/root/image.iso', 'raw', 'hdc', true, 'cdrom'];
  for (const spec of [
    '/root/image.iso,,hdc,cdrom',
    '/root/image.iso,,hdc,,cdrom',
    '/root/image.iso,raw,hdc,devtype=cdrom',
    'format=raw, vdev=hdc, access=ro, devtype=cdrom, target=/root/image.iso',
    'raw:/root/image.iso,hdc:cdrom,ro',
  ]) {
    t.deepEqual(essentials(ok(spec)), want, spec);
  }
  t.deepEqual(essentials(ok(',hdc:cdrom,r')), [null, 'empty', 'hdc', true, 'cdrom']); // xend's empty drive
});

test('access: r and ro are read-only, w, rw and empty read-write', (t) => {
  t.true(ok('d.img,raw,xvda,r').readonly);
  t.true(ok('d.img,raw,xvda,ro').readonly);
  t.false(ok('d.img,raw,xvda,w').readonly);
  t.false(ok('d.img,raw,xvda,').readonly);
  t.false(ok('d.img,raw,xvda').readonly);
  t.false(ok('d.img,raw,xvda,rw').sharedWrite, 'only w! overrides the sharing check');
});

test('access w! and rw!: read-write, the image shared on purpose (the block script\'s override)', (t) => {
  for (const spec of ['d.img,raw,xvda,w!', 'd.img,raw,xvda,rw!', 'vdev=xvda, access=w!, target=d.img']) {
    t.like(ok(spec), { readonly: false, sharedWrite: true }, spec);
  }
  t.like(ok('d.iso,raw,xvdc,w!,devtype=cdrom'), { readonly: true, sharedWrite: false }, 'a CD-ROM stays read-only media');
});

test('target= takes the rest of the spec, commas included', (t) => {
  const d = ok('vdev=xvdb, target=/images/a,b.img');
  t.is(d.target, '/images/a,b.img');
});

test('flags and the other parameters are kept', (t) => {
  const d = ok('d.img,raw,xvda,rw,discard,untrusted,direct-io-safe,backendtype=qdisk,backend=dom1,script=block-x,specification=xen');
  t.deepEqual([d.discard, d.trusted, d.directIoSafe, d.backendtype, d.backend, d.script, d.specification],
    [true, false, true, 'qdisk', 'dom1', 'block-x', 'xen']);
  t.false(ok('d.img,raw,xvda,no-discard').discard!);
  t.true(ok('d.img,raw,xvda,colo,colo-host=h,colo-port=9000').colo);
  t.is(ok('nbd:host:1234,xvda').script, 'block-nbd');
  t.is(ok('qcow2:/x.q,xvda').format, 'qcow2');
  t.is(ok('tap:aio:/x.img,xvda,w').target, '/x.img');
});

test('errors say what was wrong and what was expected', (t) => {
  t.regex(err('d.img,raw,xvda,rw,extra'), /too many positional parameters at `extra'.*expected at most TARGET,FORMAT,VDEV,ACCESS/);
  t.regex(err('d.img,raw'), /no vdev given \(expected a virtual disk name/);
  t.regex(err('d.img,raw,vda'), /invalid or unsupported vdev `vda'/);
  t.regex(err('d.img,qcow3,xvda'), /unknown value for format: `qcow3' \(expected raw, qcow/);
  t.regex(err('d.img,raw,xvda,rx'), /unknown value for access: `rx' \(expected r, ro, w or rw; w! to share an image read-write\)/);
  t.regex(err('d.img,raw,xvda,size=10'), /unknown parameter `size='/);
  t.regex(err('d.img,raw,xvda,devtype=floppy'), /unknown value for devtype/);
  t.regex(err('d.img,raw,xvda,backendtype=nfs'), /unknown value for backendtype/);
  t.regex(err('vdev=xvda,vdev=xvdb,target=d.img'), /vdev respecified/);
  t.regex(err('d.img,qcow2,xvda,format=raw'), /format respecified/);
  // format= given first: the positionals after the target shift to vdev, access (libxlu's order)
  t.regex(err('format=raw,d.img,qcow2,xvda'), /unknown value for access: `xvda'/);
  t.regex(err(',,xvda'), /no target given/);
  t.regex(err('foo:/d.img,xvda'), /unknown deprecated disk prefix `foo:'/);
  t.regex(err('d.img,raw,hdc:floppy'), /unknown deprecated type `floppy'/);
  t.regex(err('/a=b.img,raw,xvda'), /bad disk syntax.*target=/);
});
