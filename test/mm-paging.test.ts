// Hypervisor paging (hypervisor/mm/paging.ts, pager.ts): pages go to the domain's paging file and
// come back on access with every byte; the pager keeps the host above its low-water mark; a
// guest bigger than the host runs with its data intact; destroy leaves no frame and no file.
import test from 'ava';
import { existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Host } from '../hypervisor/host.ts';
import { mmCounters } from '../hypervisor/mm/counters.ts';
import { MD, md } from '../hypervisor/mm/mm-state.ts';
import { Pager } from '../hypervisor/mm/pager.ts';
import { pagingFile, setPagingDir } from '../hypervisor/mm/paging.ts';
import { usedFrames } from '../hypervisor/page-alloc.ts';
import { checksum, fillPattern } from '../shared/checksum.ts';
import { PAGE_SIZE } from '../shared/public/xen.ts';
import { World } from './helpers/world.ts';
import { until } from '../scenarios/lib/hang.ts';

test('evicted pages read back byte for byte (page-in on access), in random order; destroy removes the file', (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'rv-paging-'));
  const w = new World(16);
  setPagingDir(w.hv, dir);
  const base = usedFrames(w.hv);
  const d = w.domain({ memoryKiB: 2048 });
  const page = new Uint8Array(PAGE_SIZE);
  const sums: number[] = [];
  for (let g = 0; g < 300; g++) { fillPattern(page, g * 31 + 1); d.mem.write(g * PAGE_SIZE, page); sums.push(checksum(page)); }
  const held = usedFrames(w.hv);
  const pager = new Pager(w.hv, { domains: () => [{ domid: d.domid, pages: 300 }], quiesce: async () => () => undefined }, 0);
  t.is(pager.evict(d.domid, 300, 250), 250);
  t.is(usedFrames(w.hv), held - 250, 'the evicted frames are free');
  t.is(w.hv.mm[md(d.domid, MD.PAGED)], 250);
  t.true(existsSync(pagingFile(w.hv, d.domid)!));
  let x = 12345;
  for (let i = 0; i < 600; i++) {
    x ^= x << 13; x ^= x >>> 17; x ^= x << 5;
    const g = (x >>> 0) % 300;
    d.mem.read(g * PAGE_SIZE, page);
    if (checksum(page) !== sums[g]) t.fail(`gfn ${g} came back wrong`);
  }
  const c = mmCounters(w.hv);
  t.true(c.page_ins > 0 && c.page_ins <= 250);
  t.is(c.paged_out, 250 - c.page_ins);
  const file = pagingFile(w.hv, d.domid)!;
  w.kill(d);
  t.false(existsSync(file), 'the paging file goes with the domain');
  t.is(usedFrames(w.hv), base);
  t.is(mmCounters(w.hv).paged_out, 0);
  rmSync(dir, { recursive: true, force: true });
});

test('on a live host, a guest larger than the host runs under the pager with every byte intact, and 10 create/destroy cycles leak nothing', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'rv-paging-'));
  const host = new Host({ memoryMiB: 8, log: () => {}, pagingDir: dir });
  const said: string[] = [];
  host.on('console', (e: { domid: number; text: string }) => said.push(`d${e.domid} ${e.text}`));
  const base = host.usage().framesUsed;
  host.mm.setPaging({ run: true, low_water_pages: 256 });
  const kernel = new URL('./kernels/mem-guest.ts', import.meta.url).href;
  // 12 MiB of data in a 16 MiB guest on an 8 MiB host.
  const d = await host.createDomain({ name: 'big', vcpus: 1, memoryKiB: 16384, kernel, module: { action: 'churn', pages: 3072, seed: 9, rounds: 3, writes: 64 } });
  await until(() => said.some((s) => s.startsWith(`d${d} churned`)) || host.info(d)?.state === 'shutdown', `d${d} churned`, { everyMs: 20, seen: () => said });
  t.true(said.includes(`d${d} churned 3072 pages for 3 rounds, 0 bad`), said.filter((s) => s.startsWith(`d${d}`)).join(' | '));
  const c = mmCounters(host.hv);
  t.true(c.page_outs > 0 && c.page_ins > 0, `paged out ${c.page_outs}, in ${c.page_ins}`);
  await host.destroy(d);
  t.is(host.usage().framesUsed, base);
  for (let i = 0; i < 10; i++) {
    const id = await host.createDomain({ name: `c${i}`, vcpus: 1, memoryKiB: 16384, kernel, module: { action: 'touch', pages: 2500, seed: i } });
    await until(() => said.some((s) => s.startsWith(`d${id} touched`)), `d${id} touched`, { seen: () => said });
    t.true(said.includes(`d${id} touched 2500 pages, 0 bad`));
    await host.destroy(id);
  }
  t.is(host.usage().framesUsed, base, 'no frame leaked');
  t.deepEqual(readdirSync(dir), [], 'no paging file left');
  t.is(mmCounters(host.hv).paged_out, 0);
  await host.close();
  rmSync(dir, { recursive: true, force: true });
});
