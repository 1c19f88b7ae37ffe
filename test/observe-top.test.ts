// `ringvisor top -b -i 2` against what was counted elsewhere: each xentop column of each guest is
// compared with the same figure read another way, exactly wherever the figure is a count.
//  - MEM(k), MAXMEM(k), their %, VCPUS: read straight from the hypervisor's domain table (the
//    host runs in this process, so the test reads hv.domains as the hypervisor keeps it).
//  - VBD_RD/WR/RSECT/WSECT, VBD_OO: the requests the guests' fio workloads report having made.
//  - NETTX(k)/NETRX(k): the bytes the pinging guest's netfront counted (its workload-result); the
//    guest it pings sees exactly those, the other way round (nothing else is on the bridge).
//  - CPU(sec): between the hypervisor's figure read before and after (it only grows).
// Rates (CPU(%), the per-second columns) are not asserted: no test asserts on time.
import test from 'ava';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { CreateResult, TopSample } from '../dom0/toolstack/protocol.ts';
import { D, XENHEAP_FRAMES } from '../hypervisor/state.ts';
import { MD, md } from '../hypervisor/mm/mm-state.ts';
import { mmCounters } from '../hypervisor/mm/counters.ts';
import { rv } from './helpers/cli.ts';
import { oneHost } from './helpers/one-host.ts';

const rig = oneHost(test, 'rv-top-', 240);
const vm = (name: string, body: string[]): string => rig.vm(name, ['type = "pv"', ...body]);

/** The workload-result JSON on a VM's console log, once it is there (the guest prints it when done). */
async function result(name: string): Promise<Record<string, unknown> & { device: Record<string, number> }> {
  return JSON.parse(/workload-result (\{.*\})/.exec(await says(name, /workload-result (\{.*\})/))![1]!);
}

/** The VM's console once `re` matches it. */
async function says(name: string, re: RegExp): Promise<string> {
  const log = join(rig.dir, name, 'console.log');
  // A bound on turns, not a timing claim: fail with what the guest said rather than hang.
  for (let turn = 0; turn < 6000; turn++) {
    const text = existsSync(log) ? readFileSync(log, 'utf8') : '';
    if (re.test(text)) return text;
    await new Promise((r) => setTimeout(r, 20));
  }
  throw new Error(`${name} never printed ${re}; its console:\n${existsSync(log) ? readFileSync(log, 'utf8').slice(-2000) : '(none)'}`);
}

const COLUMNS = ['NAME', 'STATE', 'CPU(sec)', 'CPU(%)', 'MEM(k)', 'MEM(%)', 'MAXMEM(k)', 'MAXMEM(%)', 'VCPUS', 'NETS', 'NETTX(k)', 'NETRX(k)',
  'VBDS', 'VBD_OO', 'VBD_RD', 'VBD_WR', 'VBD_RSECT', 'VBD_WSECT'];

test.serial('top -b -i 2: every xentop column of every guest matches the figure counted elsewhere', async (t) => {
  const READS = 300;
  const WRITES = 200;
  const PINGS = 40;
  // The pinged guest first, idle, so nothing crosses the bridge before the pinger's count starts.
  const target = await rig.xl.call<CreateResult>({ verb: 'create', path: vm('target', ['memory = 24', "vif = [ 'ip=10.0.7.11' ]", 'workload = "idle"']) });
  // Its vif Connected before the pinger exists: a broadcast the pinger sent (its gratuitous ARP, an
  // ARP request asked again) while the target's vif was not yet on the bridge would be in the
  // pinger's NETTX and in nobody's NETRX. The kernel starts its workload once its vifs are up.
  await says('target', /workload idle/);
  const reader = await rig.xl.call<CreateResult>({ verb: 'create', path: vm('reader', ['memory = 32', "disk = [ 'disk.img,raw,xvda,rw' ]", 'create_images = [ "disk.img=16" ]',
    'workload = "fio-rand-read"', `workload_args = [ "bs=4096", "count=${READS}", "iodepth=8" ]`]) });
  const writer = await rig.xl.call<CreateResult>({ verb: 'create', path: vm('writer', ['memory = 32', 'vcpus = 2', "disk = [ 'disk.img,raw,xvda,rw' ]", 'create_images = [ "disk.img=16" ]',
    'workload = "fio-rand-write"', `workload_args = [ "bs=4096", "count=${WRITES}", "iodepth=8" ]`]) });
  const pinger = await rig.xl.call<CreateResult>({ verb: 'create', path: vm('pinger', ['memory = 24', "vif = [ 'ip=10.0.7.10' ]",
    'workload = "ping"', `workload_args = [ "target=10.0.7.11", "count=${PINGS}", "size=1000" ]`]) });
  const read = await result('reader');
  const wrote = await result('writer');
  const pinged = await result('pinger');
  t.is(read.ios, READS, 'fio made the reads it was asked for');
  t.is(wrote.ios, WRITES);
  t.is(pinged.received, PINGS, 'every echo answered');

  const hv = rig.rh.host.hv;
  const cpuNow = (domid: number) => rig.rh.host.info(domid)!.cpu_time_ms / 1000;
  const ids = { target: target.domid, reader: reader.domid, writer: writer.domid, pinger: pinger.domid };
  const cpuBefore = Object.fromEntries(Object.entries(ids).map(([n, id]) => [n, cpuNow(id)]));
  const top = await rv(['--run-dir', rig.rh.runDir, 'top', '-b', '-i', '2', '-d', '0.2']);
  const cpuAfter = Object.fromEntries(Object.entries(ids).map(([n, id]) => [n, cpuNow(id)]));
  t.is(top.code, 0, top.stderr);
  const blocks = top.stdout.trim().split(/\n\n/);
  t.is(blocks.length, 2, 'two samples, one after the other');
  const lines = blocks[1]!.split('\n');
  t.deepEqual(lines.find((l) => l.includes('NAME'))!.trim().split(/\s+/).slice(0, COLUMNS.length), COLUMNS);
  const row = (name: string) => {
    const cells = lines.find((l) => new RegExp(`^\\s*${name} `).test(l))!.trim().split(/\s+/);
    return Object.fromEntries(COLUMNS.map((c, i) => [c, cells[i]!]));
  };

  const totalK = (hv.nrFrames - XENHEAP_FRAMES) * 4;
  for (const [name, domid] of Object.entries(ids)) {
    const r = row(name);
    const dom = (w: number) => hv.domains[domid * D.WORDS + w]!;
    // What the hypervisor holds for it: frames owned, or, for a guest populated on demand, those
    // plus the PoD entries its target covers (Xen's PoD cache, as getdomaininfo reports it); plus
    // shared and paged-out frames, as xl list's Mem.
    const mm = (w: number) => hv.mm[md(domid, w)]!;
    const tot = Math.max(dom(D.TOT_PAGES), Math.min(dom(D.TOT_PAGES) + mm(MD.POD_ENTRIES), mm(MD.POD_TARGET) - mm(MD.SHARED) - mm(MD.PAGED)));
    const memK = (tot + mm(MD.SHARED) + mm(MD.PAGED)) * 4;
    t.is(Number(r['MEM(k)']), memK, `${name} MEM(k)`);
    t.is(r['MEM(%)'], ((memK / totalK) * 100).toFixed(1), `${name} MEM(%)`);
    t.is(Number(r['MAXMEM(k)']), dom(D.MAX_PAGES) * 4, `${name} MAXMEM(k)`);
    t.is(r['MAXMEM(%)'], ((dom(D.MAX_PAGES) * 4 / totalK) * 100).toFixed(1), `${name} MAXMEM(%)`);
    t.is(Number(r.VCPUS), dom(D.ONLINE_VCPUS), `${name} VCPUS`);
    t.regex(r.STATE!, /^[-d][-s][-b][-c][-p][-r]$/);
    t.true(Number(r['CPU(sec)']) >= Math.round(cpuBefore[name]!) && Number(r['CPU(sec)']) <= Math.round(cpuAfter[name]!), `${name} CPU(sec)`);
  }
  t.is(row('writer').VCPUS, '2', 'the writer was made with two');
  t.is(row('reader')['MEM(k)'], String(32 * 1024), 'memory = 32');

  // The disks: what blkback served is what the guests' fio made.
  const rd = row('reader');
  t.deepEqual([rd.VBDS, rd.VBD_OO, rd.VBD_RD, rd.VBD_WR, rd.VBD_RSECT, rd.VBD_WSECT], ['1', '0', String(read.ios), '0', String((READS * 4096) / 512), '0']);
  const wr = row('writer');
  t.deepEqual([wr.VBDS, wr.VBD_OO, wr.VBD_RD, wr.VBD_WR, wr.VBD_RSECT, wr.VBD_WSECT], ['1', '0', '0', String(wrote.ios), '0', String((WRITES * 4096) / 512)]);
  for (const n of ['reader', 'writer']) t.deepEqual([row(n).NETS, row(n)['NETTX(k)'], row(n)['NETRX(k)']], ['0', '0', '0'], `${n} has no vif`);

  // The network: netback's counts of each vif against the bytes the pinger's netfront counted.
  const txK = Math.floor(pinged.device.tx_bytes! / 1024);
  const rxK = Math.floor(pinged.device.rx_bytes! / 1024);
  t.true(txK >= PINGS, `the echoes carried ${PINGS} KiB or more (${pinged.device.tx_bytes} bytes)`);
  const p = row('pinger');
  t.deepEqual([p.NETS, p['NETTX(k)'], p['NETRX(k)'], p.VBDS], ['1', String(txK), String(rxK), '0'], 'the pinger: what its netfront sent and received');
  const g = row('target');
  t.deepEqual([g.NETS, g['NETTX(k)'], g['NETRX(k)'], g.VBDS], ['1', String(rxK), String(txK), '0'], 'the target: the same bytes, the other way round');

  // The host's memory-management counters (`ringvisor info`'s mm), as the hypervisor keeps them.
  const host = lines.find((l) => l.startsWith('Host: '))!;
  for (const [k, v] of Object.entries(mmCounters(hv))) t.true(host.includes(`${k} ${v}`), `Host: ${k} ${v} in ${host}`);

  // The sample the web view draws carries each vif with its counters and both rings, as it does
  // each vbd: the view draws whatever devices a sample has (cli/webview/static/app.js).
  const sample = await rig.xl.call<TopSample>({ verb: 'top' });
  const vif = sample.devices.find((d) => d.kind === 'vif' && d.frontend === pinger.domid)!;
  t.is(vif.name, `vif${pinger.domid}.0`);
  t.is(vif.stats.tx_packets, pinged.device.tx_packets, 'packets too');
  t.deepEqual(vif.rings.map((r) => r.name), ['tx-ring-ref', 'rx-ring-ref']);
  t.true(vif.rings.every((r) => r.req_prod > 0 && r.size > 0), 'both rings have carried requests');
});
