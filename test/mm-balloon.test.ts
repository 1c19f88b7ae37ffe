// The balloon (domu/balloon/balloon.ts, hypervisor/mm/reservation.ts) and xl mem-set / mem-max
// (dom0/toolstack/mem.ts): frames go back to the host and come back exactly; a ballooned-out gfn
// faults; a guest with memory < maxmem boots ballooned down; list shows the current size.
import test from 'ava';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseMemSizeKiB } from '../dom0/toolstack/mem.ts';
import type { CreateResult, HostInfo, ListedDomain } from '../dom0/toolstack/protocol.ts';
import { decrease_reservation, populate_physmap } from '../hypervisor/mm/reservation.ts';
import { freeFrames, usedFrames } from '../hypervisor/page-alloc.ts';
import { D } from '../hypervisor/state.ts';
import { checksum, fillPattern } from '../shared/checksum.ts';
import { PageFault } from '../shared/public/memory.ts';
import { PAGE_SIZE } from '../shared/public/xen.ts';
import { World } from './helpers/world.ts';
import { consoleText } from '../scenarios/lib/console.ts';
import { oneHost } from './helpers/one-host.ts';

test('decrease_reservation gives exactly the touched frames back; populate_physmap takes exactly as many; a ballooned gfn faults', (t) => {
  const w = new World(16);
  const d = w.domain({ memoryKiB: 4096 });
  const gfns = Array.from({ length: 100 }, (_, i) => 10 + i);
  const page = new Uint8Array(PAGE_SIZE);
  for (const g of gfns) { fillPattern(page, g); d.mem.write(g * PAGE_SIZE, page); }
  const untouched = Array.from({ length: 50 }, (_, i) => 500 + i);
  const free0 = freeFrames(w.hv);
  const tot0 = w.hv.domains[d.domid * D.WORDS + D.TOT_PAGES];
  t.is(decrease_reservation(w.hv, d.domid, gfns, gfns.length), 100);
  t.is(freeFrames(w.hv), free0 + 100, 'every touched frame is back on the host\'s free list');
  t.is(decrease_reservation(w.hv, d.domid, untouched, untouched.length), 50, 'untouched (PoD) pages go back too');
  t.is(freeFrames(w.hv), free0 + 100, '...costing the host nothing: they had no frame');
  t.is(w.hv.domains[d.domid * D.WORDS + D.TOT_PAGES], tot0 - 100);
  t.throws(() => d.mem.read(gfns[0] * PAGE_SIZE, page), { instanceOf: PageFault, message: /no translation/ });
  t.throws(() => d.mem.write(untouched[0] * PAGE_SIZE, page), { instanceOf: PageFault, message: /no translation/ });
  t.is(populate_physmap(w.hv, d.domid, gfns, gfns.length), 100);
  t.is(freeFrames(w.hv), free0, 'and deflating takes exactly as many');
  d.mem.read(gfns[0] * PAGE_SIZE, page);
  t.true(page.every((b) => b === 0), 'a repopulated page is a fresh, scrubbed frame');
  t.is(populate_physmap(w.hv, d.domid, [gfns[0]], 1), 0, 'only holes are populated');
});

test('a page that is viewed or granted elsewhere is refused (Xen: extra references), and the count stops there', (t) => {
  const w = new World(16);
  const d = w.domain({ memoryKiB: 1024 });
  d.mem.page(20, true); // an unchecked view, as a ring page has
  t.is(decrease_reservation(w.hv, d.domid, [19, 20, 21], 3), 1);
  t.false(d.mem.present(19), 'the first went');
  t.true(d.mem.present(20), 'the viewed page stayed');
  t.notThrows(() => d.mem.writeU32(21 * PAGE_SIZE, 1), 'and the one after it was never given');
});

test('populate_physmap stops at max_pages and when the host has no frame', (t) => {
  const w = new World(1);
  const d = w.domain({ memoryKiB: 128 });
  const holes = Array.from({ length: 32 }, (_, i) => i);
  t.is(decrease_reservation(w.hv, d.domid, holes, 29), 29);
  w.hv.domains[d.domid * D.WORDS + D.MAX_PAGES] = 10;
  t.is(populate_physmap(w.hv, d.domid, holes, 29), 7, 'up to max_pages (3 special pages + 7)');
  w.hv.domains[d.domid * D.WORDS + D.MAX_PAGES] = 1 << 20;
  const big = w.domain({ memoryKiB: 4096 });
  const page = new Uint8Array(PAGE_SIZE);
  let g = 0;
  for (; freeFrames(w.hv) > 5; g++) big.mem.write(g * PAGE_SIZE, page);
  t.is(populate_physmap(w.hv, d.domid, holes.slice(7), 22), 5, 'as many as the host has');
});

test('xl sizes: a bare number is KiB; b k m g t', (t) => {
  t.is(parseMemSizeKiB('256m'), 262144);
  t.is(parseMemSizeKiB('1g'), 1048576);
  t.is(parseMemSizeKiB('4096'), 4096);
  t.is(parseMemSizeKiB('8192b'), 8);
  t.throws(() => parseMemSizeKiB('12q'), { message: /invalid memory size: 12q/ });
});

const rig = oneHost(test, 'rv-balloon-', 96);

async function consoleSays(domain: string, re: RegExp): Promise<string> {
  return await consoleText(rig.rh.runDir, domain, re);
}

const mem = async (name: string) => (await rig.xl.call<ListedDomain[]>({ verb: 'list' })).find((d) => d.name === name)!.memMiB;

test.serial('memory < maxmem boots ballooned down; mem-set moves the balloon both ways; mem-max and mem-set refuse as xl does; destroy frees every frame', async (t) => {
  const base = usedFrames(rig.rh.host.hv);
  const d = join(rig.dir, 'bal');
  mkdirSync(d);
  writeFileSync(join(d, 'vm.cfg'), 'name = "bal"\nmemory = 16\nmaxmem = 32\nworkload = "idle"\n');
  await rig.xl.call<CreateResult>({ verb: 'create', path: d });
  const boot = await consoleSays('bal', /at target: 16384 KiB/);
  t.regex(boot, /32 MiB/, 'the guest sees maxmem');
  t.is(await mem('bal'), 16, 'list shows the current size');
  await rig.xl.call({ verb: 'mem-set', domain: 'bal', size: '24m' });
  await consoleSays('bal', /at target: 24576 KiB/);
  t.is(await mem('bal'), 24);
  await rig.xl.call({ verb: 'mem-set', domain: 'bal', size: '12m' });
  await consoleSays('bal', /at target: 12288 KiB/);
  t.is(await mem('bal'), 12);
  const e1 = await t.throwsAsync(rig.xl.call({ verb: 'mem-set', domain: 'bal', size: '40m' }));
  t.regex(e1!.message, /memory_dynamic_max must be less than or equal to memory_static_max/);
  const e2 = await t.throwsAsync(rig.xl.call({ verb: 'mem-max', domain: 'bal', size: '8m' }));
  t.regex(e2!.message, /memory_static_max must be greater than or equal to memory_dynamic_max/);
  await rig.xl.call({ verb: 'mem-max', domain: 'bal', size: '20m' });
  const e3 = await t.throwsAsync(rig.xl.call({ verb: 'mem-set', domain: 'bal', size: '24m' }));
  t.regex(e3!.message, /static-max is 20480 KiB/);
  const info = await rig.xl.call<HostInfo>({ verb: 'info' });
  t.true(info.free_memory > 0 && info.mm !== undefined && 'sharing_freed_memory' in info.mm);
  await rig.xl.call({ verb: 'destroy', domain: 'bal' });
  t.is(usedFrames(rig.rh.host.hv), base, 'host usage is back to its baseline');
});

test.serial('the balloon keeps every byte of the pages the guest still uses (checksums across inflate and deflate)', async (t) => {
  const w = new World(16);
  const d = w.domain({ memoryKiB: 2048 });
  const keep = Array.from({ length: 64 }, (_, i) => i * 2);
  const give = Array.from({ length: 64 }, (_, i) => i * 2 + 1);
  const page = new Uint8Array(PAGE_SIZE);
  const sums = keep.map((g) => { fillPattern(page, g * 7); d.mem.write(g * PAGE_SIZE, page); return checksum(page); });
  for (const g of give) d.mem.write(g * PAGE_SIZE, page);
  t.is(decrease_reservation(w.hv, d.domid, give, give.length), give.length);
  t.is(populate_physmap(w.hv, d.domid, give, give.length), give.length);
  keep.forEach((g, i) => { d.mem.read(g * PAGE_SIZE, page); if (checksum(page) !== sums[i]) t.fail(`gfn ${g} changed`); });
  t.pass();
});

test.serial('mem-sharing and mem-paging turn the scanner and the pager on and off through the toolstack; bad settings are refused', async (t) => {
  t.like(await rig.xl.call({ verb: 'mem-sharing', run: true, pages_to_scan: 500 }), { run: true, pages_to_scan: 500, sleep_millisecs: 20 });
  t.like(await rig.xl.call({ verb: 'mem-sharing', run: false }), { run: false, pages_to_scan: 500 });
  t.like(await rig.xl.call({ verb: 'mem-paging', run: true, low_water_pages: 128 }), { run: true, low_water_pages: 128 });
  t.like(await rig.xl.call({ verb: 'mem-paging', run: false }), { run: false });
  const e = await t.throwsAsync(rig.xl.call({ verb: 'mem-sharing', pages_to_scan: -1 }));
  t.regex(e!.message, /refused: EINVAL/);
});
