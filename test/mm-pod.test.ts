// Populate on demand (hypervisor/mm/pod.ts): RAM costs a frame at first touch, a guest always
// sees its configured size, destroy frees exactly what was touched, and a touch the host cannot
// back crashes that domain only.
import test from 'ava';
import { Host, type ShutdownEvent } from '../hypervisor/host.ts';
import { freeFrames, usedFrames } from '../hypervisor/page-alloc.ts';
import { D, MAX_DOMAINS } from '../hypervisor/state.ts';
import { MD, MH, MM_DOMAINS, md } from '../hypervisor/mm/mm-state.ts';
import { DomainMemory } from '../hypervisor/guest-memory.ts';
import { checksum, fillPattern } from '../shared/checksum.ts';
import { PAGE_SIZE } from '../shared/public/xen.ts';
import { PageFault } from '../shared/public/memory.ts';
import { World } from './helpers/world.ts';
import type { MemGuestModule } from './kernels/mem-guest.ts';
import { until } from '../scenarios/lib/hang.ts';

const MEM_GUEST = new URL('./kernels/mem-guest.ts', import.meta.url).href;
const tot = (w: World, d: number) => w.hv.domains[d * D.WORDS + D.TOT_PAGES];

test('mm-state sizes its per-domain words for every domain id', (t) => {
  t.is(MM_DOMAINS, MAX_DOMAINS);
});

test('a guest larger than the host boots: only the pages it touches cost frames; it sees its whole size', (t) => {
  const w = new World(16);
  const base = usedFrames(w.hv);
  const d = w.domain({ memoryKiB: 64 * 1024 }); // 64 MiB guest on a 16 MiB host
  t.is(d.built.nr_pages, 16384, 'the guest sees its configured size');
  t.is(usedFrames(w.hv) - base, 3, 'only start_info, the store and console rings are backed');
  t.is(w.hv.mm[md(d.domid, MD.POD_ENTRIES)], 16384 - 3);
  const zero = new Uint8Array(PAGE_SIZE).fill(0xee);
  d.mem.read(5000 * PAGE_SIZE, zero);
  t.true(zero.every((b) => b === 0), 'a first touch reads a zeroed frame');
  const page = new Uint8Array(PAGE_SIZE);
  for (let g = 0; g < 100; g++) { fillPattern(page, g); d.mem.write(g * PAGE_SIZE, page); }
  t.is(tot(w, d.domid), 3 + 1 + 100, 'tot_pages counts the frames it holds');
  t.is(w.hv.mm[md(d.domid, MD.POD_ENTRIES)], 16384 - 104);
  for (let g = 0; g < 100; g++) {
    fillPattern(page, g);
    const back = new Uint8Array(PAGE_SIZE);
    d.mem.read(g * PAGE_SIZE, back);
    if (checksum(back) !== checksum(page)) t.fail(`gfn ${g} read back wrong`);
  }
  t.true(w.hv.mm[MH.POD_FILLS] >= 104);
  w.kill(d);
  t.is(usedFrames(w.hv), base, 'destroy frees exactly the touched frames');
  t.is(w.hv.mm[md(d.domid, MD.POD_ENTRIES)], 0);
});

test('a PoD touch with no free frame crashes the domain (Xen: "PoD: out of memory"); others keep their data', (t) => {
  const w = new World(1);
  const other = w.domain({ memoryKiB: 64 });
  const page = new Uint8Array(PAGE_SIZE);
  fillPattern(page, 7);
  other.mem.write(0, page);
  const d = w.domain({ memoryKiB: 8 * 1024 });
  const crashes: string[] = [];
  const mem = new DomainMemory(w.hv, d.domid, 0, { crash: (why) => { crashes.push(why); throw new Error('crashed'); } });
  let g = 0;
  const e = t.throws(() => { for (; g < 2048; g++) mem.write(g * PAGE_SIZE, page); });
  t.is(e!.message, 'crashed');
  t.is(freeFrames(w.hv), 0, 'it ran the host out of frames');
  t.is(crashes.length, 1);
  t.regex(crashes[0], /^PoD: out of memory: d\d+ touched gfn 0x[0-9a-f]+ and the host has no free frame$/);
  const back = new Uint8Array(PAGE_SIZE);
  other.mem.read(0, back);
  t.is(checksum(back), checksum(page), 'the other domain is untouched');
  // Without a crash hook (a foreign access), the same touch is a page fault naming the reason.
  t.throws(() => d.mem.write(g * PAGE_SIZE, page), { instanceOf: PageFault, message: /PoD: out of memory/ });
  w.kill(d);
  t.true(freeFrames(w.hv) > 200, 'its frames are back');
});

test('on a live host, a guest that outgrows the host crashes alone; its neighbour verifies its data and destroy gives every frame back', async (t) => {
  const host = new Host({ memoryMiB: 8, log: () => {} });
  const said: string[] = [];
  host.on('console', (e: { domid: number; text: string }) => said.push(`d${e.domid} ${e.text}`));
  const base = host.usage().framesUsed;
  const guest = (name: string, memoryKiB: number, pages: number) => ({
    name, vcpus: 1, memoryKiB, kernel: MEM_GUEST, module: { action: 'touch', pages, seed: 3 } satisfies MemGuestModule,
    on_crash: 'preserve' as const,
  });
  const a = await host.createDomain(guest('small', 2048, 256));
  await until(() => said.some((s) => s.startsWith(`d${a} touched`)), `d${a} touched`, { everyMs: 5, seen: () => said });
  t.true(said.includes(`d${a} touched 256 pages, 0 bad`));
  const crashed = new Promise<ShutdownEvent>((resolve) => host.on('shutdown', (e: ShutdownEvent) => { if (e.reason === 'crash') resolve(e); }));
  const b = await host.createDomain(guest('greedy', 16 * 1024, 4000)); // 16 MiB on an 8 MiB host
  const e = await crashed;
  t.is(e.domid, b);
  t.regex(e.detail, /PoD: out of memory/);
  t.false(said.some((s) => s.startsWith(`d${b} caught`)), 'the guest never saw the fault: the hypervisor crashed it');
  t.is(host.info(a)?.state, 'running', 'the neighbour runs on');
  await host.destroy(b);
  await host.destroy(a);
  t.is(host.usage().framesUsed, base, 'host usage is back to its baseline');
  await host.close();
});
