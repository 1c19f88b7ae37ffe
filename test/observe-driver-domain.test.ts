// `ringvisor top` and the web view show the disks a storage driver domain serves, as they show
// Dom0's: the driver domain publishes its blkback's counters in XenStore (its data/devstats,
// backends/lib/devstats-publish.ts) and Dom0's top reads them with the rest of its sample
// (dom0/toolstack/devstats-remote.ts). Checked against the guests' own counts: each xentop VBD
// column of a guest whose disk the driver domain serves equals the requests its fio made, as
// test/observe-top.test.ts checks for Dom0's. The published figures may be a period behind, so
// the test waits (bounded, scenarios/lib/hang.ts) until they have caught up, then compares exactly.
// A domain that writes rows for devices it does not serve is not believed.
import test from 'ava';
import { get } from 'node:http';
import { join } from 'node:path';
import { xsOpen } from '../dom0/lib/libxenstore.ts';
import { serveWebView } from '../cli/webview/server.ts';
import type { CreateResult, TopSample } from '../dom0/toolstack/protocol.ts';
import { consoleText, fileSays } from '../scenarios/lib/console.ts';
import { until } from '../scenarios/lib/hang.ts';
import { rv } from './helpers/cli.ts';
import { oneHost } from './helpers/one-host.ts';

const rig = oneHost(test, 'rv-topdd-', 224);
const vm = (name: string, body: string[]): string => rig.vm(name, ['memory = 32', ...body]);

async function result(name: string): Promise<{ ios: number }> {
  return JSON.parse((await fileSays(join(rig.dir, name, 'console.log'), /workload-result (\{.*\})/))[1]!) as { ios: number };
}

const COLUMNS = ['NAME', 'STATE', 'CPU(sec)', 'CPU(%)', 'MEM(k)', 'MEM(%)', 'MAXMEM(k)', 'MAXMEM(%)', 'VCPUS', 'NETS', 'NETTX(k)', 'NETRX(k)',
  'VBDS', 'VBD_OO', 'VBD_RD', 'VBD_WR', 'VBD_RSECT', 'VBD_WSECT'];

test.serial('top -x and the web view\'s sample show a driver domain\'s disks, with the requests the guests made', async (t) => {
  const READS = 300;
  const WRITES = 200;
  const dd = await rig.xl.call<CreateResult>({ verb: 'create', path: vm('storage-dd', ['driver_domain = 1', "pci = [ '00:1f.1' ]", 'workload = "idle"']) });
  await consoleText(rig.rh.runDir, 'storage-dd', /driver domain: blkback loaded/);
  const disk = (verb: string, n: number) => ["disk = [ 'disk.img,raw,xvda,rw,backend=storage-dd' ]", 'create_images = [ "disk.img=16" ]',
    `workload = "${verb}"`, `workload_args = [ "bs=4096", "count=${n}", "iodepth=8", "then=idle" ]`];
  const reader = await rig.xl.call<CreateResult>({ verb: 'create', path: vm('reader', disk('fio-rand-read', READS)) });
  const writer = await rig.xl.call<CreateResult>({ verb: 'create', path: vm('writer', disk('fio-rand-write', WRITES)) });
  const read = await result('reader');
  const wrote = await result('writer');
  t.is(read.ios, READS, 'fio made the reads it was asked for');
  t.is(wrote.ios, WRITES);

  // Wait for the driver domain's next publication to carry the last requests (a hang fails with the rows seen).
  let sample: TopSample | null = null;
  const vbd = (s: TopSample | null, fe: number) => s?.devices.find((r) => r.kind === 'vbd' && r.frontend === fe);
  await until(async () => {
    sample = await rig.xl.call<TopSample>({ verb: 'top' });
    return vbd(sample, reader.domid)?.stats.rd_req === READS && vbd(sample, writer.domid)?.stats.wr_req === WRITES;
  }, 'the driver domain\'s published counters to reach the guests\' counts', { everyMs: 200, seen: () => JSON.stringify(sample?.devices ?? []).split('},{') });

  const top = await rv(['--run-dir', rig.rh.runDir, 'top', '-b', '-i', '1', '-x']);
  t.is(top.code, 0, top.stderr);
  const lines = top.stdout.trim().split('\n');
  const row = (name: string) => {
    const cells = lines.find((l) => new RegExp(`^\\s*${name} `).test(l))!.trim().split(/\s+/);
    return Object.fromEntries(COLUMNS.map((c, i) => [c, cells[i]!]));
  };
  const rd = row('reader');
  t.deepEqual([rd.VBDS, rd.VBD_OO, rd.VBD_RD, rd.VBD_WR, rd.VBD_RSECT, rd.VBD_WSECT], ['1', '0', String(read.ios), '0', String((READS * 4096) / 512), '0']);
  const wr = row('writer');
  t.deepEqual([wr.VBDS, wr.VBD_OO, wr.VBD_RD, wr.VBD_WR, wr.VBD_RSECT, wr.VBD_WSECT], ['1', '0', '0', String(wrote.ios), '0', String((WRITES * 4096) / 512)]);
  t.deepEqual(row('storage-dd').VBDS, '0', 'the driver domain itself has no disk');
  // xentop -x: one line per device, saying which domain serves it.
  t.true(lines.some((l) => l.includes(`VBD BlkBack 51712 [vbd-${reader.domid}-51712 by storage-dd, d${dd.domid}]`) && new RegExp(`RD: +${READS} `).test(l)), top.stdout);

  // The web view's sample: the same row, with the ring's indices and the serving domain.
  const web = await serveWebView('127.0.0.1:0', { sample: () => rig.xl.call<TopSample>({ verb: 'top' }), consoleHistory: async () => new Uint8Array() });
  try {
    const body = await new Promise<string>((resolve, reject) => {
      get(`${web.url}api/sample`, (res) => { let s = ''; res.on('data', (c: Buffer) => { s += c.toString(); }); res.on('end', () => resolve(s)); }).on('error', reject);
    });
    const s = JSON.parse(body) as TopSample;
    const v = vbd(s, writer.domid)!;
    t.is(v.backend, dd.domid, 'served by the driver domain');
    t.is(v.name, `vbd-${writer.domid}-51712`);
    t.is(v.stats.wr_req, WRITES);
    t.true(v.rings.length >= 1, 'its rings');
    for (const r of v.rings) t.true(r.size > 0 && r.rsp_prod <= r.req_prod + r.size, JSON.stringify(r));
  } finally {
    await web.close();
  }

  // A guest that writes a row for a device it does not serve (in its own data/, which it may
  // write; here written through xenstored's socket) is not believed.
  const liar = reader.domid;
  const xsPath = `/local/domain/${liar}/data/devstats/vbd-${writer.domid}-51712`;
  const c = await xsOpen(rig.rh.xenstoredSocket);
  try {
    for (const [k, v] of [['kind', 'vbd'], ['frontend', String(writer.domid)], ['devid', '51712'], ['statistics/wr_req', '999999']]) await c.write(`${xsPath}/${k}`, v!);
    const after = await rig.xl.call<TopSample>({ verb: 'top' });
    t.false(after.devices.some((r) => r.backend === liar), 'no row from a domain that is not the device\'s backend');
  } finally {
    c.close();
  }
});
