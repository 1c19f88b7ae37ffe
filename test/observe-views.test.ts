// The views are generic over figures, counters and devices: a figure the hypervisor adds to a
// domain or to physinfo (shared, paged pages; online vCPUs), a counter it adds, a device kind Dom0
// adds, each appears in `ringvisor top -c` and in the web view's panels (cli/webview/static/
// views.js) by its name, with no code naming it; and what a sample does not carry is not shown.
import test from 'ava';
import type { DomainInfo } from '../shared/public/hypercall.ts';
import type { TopSample } from '../dom0/toolstack/protocol.ts';
import { render } from '../cli/top.ts';

interface Views {
  memoryPicture(s: TopSample): { host: { name: string; mib: number }[]; columns: { name: string }[]; rows: { name: string; mib: (number | null)[]; tot: number; max: number }[] };
  schedShares(s: TopSample, prev: TopSample | null): { pool: number; rows: { name: string; weight: number; entitled: number; used: number }[] };
  otherFigures(d: DomainInfo): [string, number][];
  ioRates(s: TopSample, prev: TopSample | null, domid: number, dt: number): { io: number; net: number };
  hostFigures(s: TopSample): [string, number][];
}
const views = async (): Promise<Views> => {
  const url = new URL('../cli/webview/static/views.js', import.meta.url).href;
  await import(url);
  return (globalThis as unknown as { RingvisorViews: Views }).RingvisorViews;
};

function domain(domid: number, name: string, extra: Record<string, unknown>, counters: Record<string, number>): DomainInfo {
  return {
    domid, name, state: 'running', shutdown_reason: null, vcpus: 1, tot_pages: 8192, max_pages: 8192, privileged: domid === 0,
    cpu_time_ms: 1000, running: false, blocked: true, counters, ...extra,
  } as DomainInfo;
}

function sample(time: number, grown: boolean, cpuMs = 1000): TopSample {
  const guestExtra = grown ? { shr_pages: 1024, paged_pages: 256, online_vcpus: 2, cpu_time_ms: cpuMs } : { cpu_time_ms: cpuMs };
  const counters: Record<string, number> = grown ? { hypercalls: time, pod_faults: time * 2 } : { hypercalls: time };
  return {
    time, nr_cpus: 2, total_pages: 65536, free_pages: 40000,
    host: grown ? { nr_cpus: 2, total_pages: 65536, free_pages: 40000, sharing_freed_pages: 512 } : { nr_cpus: 2, total_pages: 65536, free_pages: 40000 },
    domains: [domain(0, 'Domain-0', {}, { hypercalls: time }), domain(1, 'web1', { ...guestExtra, max_pages: 16384 }, counters)],
    devices: grown ? [{ kind: 'ioemu-widget', frontend: 1, devid: 0, name: 'widget1.0', stats: { widgets_made: 5 }, rings: [] }] : [],
    pcpus: [{ cpu: 0, curr: 'd1v0', load: 0.5 }, { cpu: 1, curr: 'idle', load: 0.1 }],
    sched: { 0: { weight: 256, cap: 0 }, 1: { weight: 512, cap: 0 } },
  };
}

test('the memory picture shows every *_pages figure there is, and nothing for those absent', async (t) => {
  const v = await views();
  const plain = v.memoryPicture(sample(1000, false));
  t.deepEqual(plain.columns.map((c) => c.name), ['tot_pages', 'max_pages']);
  t.deepEqual(plain.host.map((h) => h.name), ['total_pages', 'free_pages']);
  const grown = v.memoryPicture(sample(1000, true));
  t.deepEqual(grown.columns.map((c) => c.name), ['tot_pages', 'max_pages', 'paged_pages', 'shr_pages']);
  t.deepEqual(grown.host.map((h) => h.name), ['total_pages', 'free_pages', 'sharing_freed_pages']);
  const dom0 = grown.rows.find((r) => r.name === 'Domain-0')!;
  const web1 = grown.rows.find((r) => r.name === 'web1')!;
  t.deepEqual(dom0.mib, [32, 32, null, null], 'Domain-0 has no shared or paged figure: blank, not 0');
  t.deepEqual(web1.mib, [32, 64, 1, 4]);
  t.is(web1.max, 64);
});

test('the scheduler shares: weight over the pool, limited by vCPUs, against the CPU used', async (t) => {
  const v = await views();
  const sh = v.schedShares(sample(2000, false, 1500), sample(1000, false, 1000));
  t.is(sh.pool, 200);
  const [d0, web1] = sh.rows;
  t.is(Math.round(d0!.entitled), 67, 'Domain-0: 256 of 768 of two pCPUs');
  t.is(web1!.entitled, 100, 'web1: 512 of 768 would be 133%, but it has one vCPU');
  t.is(web1!.used, 50, '500 ms of CPU over 1 s');
  t.deepEqual(v.schedShares({ ...sample(1000, false), sched: {} }, null).rows, []);
});

test('a figure, a counter and a device kind added later appear in top -c and the domain table', async (t) => {
  const v = await views();
  t.deepEqual(v.otherFigures(sample(1000, true).domains[1]!).map(([k]) => k), ['online_vcpus']);
  t.deepEqual(v.otherFigures(sample(1000, false).domains[1]!), []);
  const opts = { batch: true, iterations: 1, delaySeconds: 1, vbds: false, nets: false, counters: true };
  const out = render(sample(2000, true), sample(1000, true), opts);
  t.regex(out, /counters\/s: hypercalls 1000  pod_faults 2000/);
  t.regex(out, /figures: .*online_vcpus 2/);
  t.regex(out, /figures: .*shr_pages 1024/);
  t.regex(out, /ioemu-widget 0 \[widget1\.0\]: widgets_made 5/);
  t.regex(out, /^Host: sharing_freed 2048k$/m);
  const before = render(sample(2000, false), sample(1000, false), opts);
  t.notRegex(before, /Host:|pod_faults|online_vcpus|widget/);
});

test('I/O per second from the devices: block requests from vbds, network KiB from vifs, for what both samples have', async (t) => {
  const v = await views();
  const dev = (kind: string, devid: number, stats: Record<string, number>) => ({ kind, frontend: 1, devid, name: `${kind}${devid}`, stats, rings: [] });
  const at = (time: number, devices: TopSample['devices']): TopSample => ({ ...sample(time, false), devices });
  const before = at(1000, [dev('vbd', 51712, { rd_req: 100, wr_req: 50 }), dev('vif', 0, { tx_bytes: 1024, rx_bytes: 0 })]);
  const after = at(3000, [dev('vbd', 51712, { rd_req: 300, wr_req: 50 }), dev('vif', 0, { tx_bytes: 1024 + 4096, rx_bytes: 2048 }),
    dev('vif', 1, { tx_bytes: 1 << 20, rx_bytes: 0 })]);
  t.deepEqual(v.ioRates(after, before, 1, 2), { io: 100, net: 3 }, '200 requests and 6 KiB over 2 s; vif 1 is new: not counted yet');
  t.deepEqual(v.ioRates(after, null, 1, 0), { io: 0, net: 0 });
  t.deepEqual(v.ioRates(after, before, 0, 2), { io: 0, net: 0 }, 'Dom0 has no devices of its own here');
});

test('the host\'s memory-management counters (info\'s mm) beside the memory picture, by name', async (t) => {
  const v = await views();
  const s = sample(1000, true);
  s.host = { ...s.host, sharing_shared_frames: 30, sharing_mappings: 90, paged_out: 7 };
  t.deepEqual(v.hostFigures(s), [['sharing_shared_frames', 30], ['sharing_mappings', 90], ['paged_out', 7]], 'not the _pages figures (the picture has them), nor the summary\'s');
  t.deepEqual(v.hostFigures(sample(1000, false)), []);
});
