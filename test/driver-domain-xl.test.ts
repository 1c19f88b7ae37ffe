/*
 * Storage driver domains as a user of xl writes them (issue 16, item 1): a VM with
 * `driver_domain = 1` and `pci = [ '00:1f.1' ]` runs blkback on the controller it was given; a
 * guest's `disk = [ '..., backend=storage-dd' ]` is served by it (its backend directory under
 * the driver domain's home), and checks every byte; the config errors name file and line.
 */
import test from 'ava';
import type { BlockListRow, CreateResult } from '../dom0/toolstack/protocol.ts';
import type { PciListRow } from '../dom0/toolstack/pci.ts';
import { formatPciList } from '../cli/pci.ts';
import { consoleText } from '../scenarios/lib/console.ts';
import { until } from '../scenarios/lib/hang.ts';
import { XlClient } from '../cli/client.ts';
import { oneHost } from './helpers/one-host.ts';

const rig = oneHost(test, 'rv-ddxl-', 192);

const vm = (name: string, body: string): string => rig.vm(name, ['memory = 32', body]);

async function consoleSays(domain: string, re: RegExp): Promise<string> {
  return await consoleText(rig.rh.runDir, domain, re);
}

test.serial('a driver domain from xl.cfg serves a guest\'s disk: backend under its home, every byte checked', async (t) => {
  const dd = await rig.xl.call<CreateResult>({
    verb: 'create', path: vm('storage-dd', `driver_domain = 1\npci = [ '00:1f.1' ]\non_crash = "restart"\nworkload = "idle"`),
  });
  t.deepEqual(dd.warnings, []);
  t.regex(await consoleSays('storage-dd', /driver domain: blkback loaded/), /Command line: .*driver_domain=1/);
  t.deepEqual((await rig.xl.call<PciListRow[]>({ verb: 'pci-list', domain: 'storage-dd' })).map((r) => r.bdf), ['0000:00:1f.1']);
  t.deepEqual(await rig.xl.call<string[]>({ verb: 'pci-assignable-list' }), ['0000:00:1f.2'], 'Dom0\'s own controller is never assignable; 1f.1 is taken');
  const g = await rig.xl.call<CreateResult>({
    verb: 'create',
    path: vm('web', `disk = [ 'disk.img,raw,xvda,rw,backend=storage-dd' ]\ncreate_images = [ "disk.img=8" ]\n` +
      `workload = "disk-check"\nworkload_args = [ "disk=xvda", "bs=4096", "then=idle" ]`),
  });
  t.deepEqual(g.warnings, []);
  const out = await consoleSays('web', /disk-check on .*: (OK|FAIL)|block\(s\) read back wrong/);
  t.regex(out, /disk-check on .*: OK, every byte read back as written/);
  const rows = await rig.xl.call<BlockListRow[]>({ verb: 'block-list', domain: 'web' });
  t.is(rows.length, 1);
  t.is(rows[0].backendId, dd.domid, 'the driver domain is the backend');
  t.is(rows[0].backendPath, `/local/domain/${dd.domid}/backend/vbd/${g.domid}/51712`);
  t.is(rows[0].state, 4);

  // The driver domain crashes (sysrq-c at its console); on_crash = "restart": xl builds it again
  // under a new domid, gives it 00:1f.1 again, and the disk is handed to it; web reconnects.
  const con = await XlClient.open(rig.rh.runDir);
  const att = await con.console('storage-dd', () => undefined, () => undefined);
  att.send(Buffer.from('crash\r'));
  let now = rows[0];
  // Polling the toolstack, not timing anything; a restart that never comes fails with the last row seen.
  await until(async () => {
    if (now.backendId !== dd.domid && now.state === 4) return true;
    now = (await rig.xl.call<BlockListRow[]>({ verb: 'block-list', domain: 'web' }))[0];
    return false;
  }, 'web\'s disk served by a new storage-dd, Connected', { everyMs: 50, seen: () => JSON.stringify(now) });
  const list = await rig.xl.call<{ name: string; domid: number }[]>({ verb: 'list' });
  const again = list.find((d) => d.name === 'storage-dd')!.domid;
  t.not(again, dd.domid, 'a new driver domain');
  t.is(now.backendId, again, 'serves web\'s disk now');
  t.is(now.backendPath, `/local/domain/${again}/backend/vbd/${g.domid}/51712`);
  con.close();
  await rig.xl.call({ verb: 'destroy', domain: 'web' });
  await rig.xl.call({ verb: 'destroy', domain: 'storage-dd' });
  t.deepEqual(await rig.xl.call<string[]>({ verb: 'pci-assignable-list' }), ['0000:00:1f.1', '0000:00:1f.2'], 'the controller is Dom0\'s again');
  t.regex(formatPciList(await rig.xl.call<PciListRow[]>({ verb: 'pci-list', domain: 'Domain-0' })), /^Device +DMA-ops +IOMMU-faults\n0000:00:1f\.0 +\d+ +0\n0000:00:1f\.1/);
});

test.serial('pci = [...] and backend= errors name file and line', async (t) => {
  const cases: [string, string, RegExp][] = [
    ['dd-bad-bdf', `driver_domain = 1\npci = [ 'zz:1f.1' ]`, /vm\.cfg:4:.*pci 'zz:1f\.1': `zz:1f\.1' is not a PCI address/],
    ['dd-no-dev', `pci = [ '00:1e.0' ]`, /vm\.cfg:3:.*no PCI device 0000:00:1e\.0 on this host/],
    ['dd-dom0s', `pci = [ '0000:00:1f.0' ]`, /vm\.cfg:3:.*0000:00:1f\.0 is not assignable: Dom0's blkback/],
    ['dd-twice', `pci = [ '00:1f.1',\n  '00:1f.1' ]`, /vm\.cfg:4:.*already given at line 3/],
    ['dd-opt', `pci = [ '00:1f.1,frobnicate=1' ]`, /vm\.cfg:3:.*unknown option `frobnicate=1'/],
    ['no-backend', `disk = [ 'd.img,raw,xvda,rw,backend=nobody' ]\ncreate_images = [ "d.img=1" ]`, /vm\.cfg:3:.*backend=nobody: no such domain is running/],
  ];
  for (const [name, body, re] of cases) {
    const err = await t.throwsAsync(rig.xl.call({ verb: 'create', path: vm(name, body) }));
    t.regex(err!.message, re, name);
  }
});
