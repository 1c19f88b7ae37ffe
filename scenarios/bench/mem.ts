/*
 * The mem suite: what the memory features cost and save, measured on the hypervisor's own code
 * paths in one thread (a host's state with domains built, as test/helpers/world.ts makes them;
 * no vCPU threads, so scheduling noise stays out of per-page figures):
 *
 *   pod-first-touch   writes that populate a PoD page, against writes to pages already backed
 *                     (the cost of a frame on demand); counters: frames a 64 MiB guest costs at
 *                     boot with PoD and with everything allocated up front
 *   balloon-inflate   decrease_reservation of touched pages, 512 at a time (MiB/s)
 *   balloon-deflate   populate_physmap of the same holes (MiB/s)
 *   sharing-scan      the scanner over two guests with a common image (pages/s); counter: frames saved
 *   cow-break         a write to a shared page (µs each, against a write to a private one)
 *   page-out, page-in the pager's eviction to a paging file and the page-in on access (µs each)
 *
 * and, on live hosts (./mem-live.ts):
 *   overcommit-ratio  promised memory over the host's frames for guests, every guest's data
 *                     verified (common image: goal ≥ 2×; none: goal ≥ 1.5×), the memory policy on
 *   mem-touch on/off  the guests' mem-image throughput overcommitted (policy, sharing, paging on)
 *                     against the same guests where they fit with everything off
 *   overcommit 3x     how far the same guests go when balloon and pager must step in (no goal)
 *
 * Xen: the figures an operator of PoD, xl mem-set, mem_sharing and xenpaging would ask for.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { build_domain, domain_create, domain_kill } from '../../hypervisor/domain-build.ts';
import { DomainMemory } from '../../hypervisor/guest-memory.ts';
import { mmCounters } from '../../hypervisor/mm/counters.ts';
import { Pager } from '../../hypervisor/mm/pager.ts';
import { setPagingDir } from '../../hypervisor/mm/paging.ts';
import { decrease_reservation, populate_physmap } from '../../hypervisor/mm/reservation.ts';
import { ShareScanner } from '../../hypervisor/mm/share-scan.ts';
import { initAllocator, usedFrames } from '../../hypervisor/page-alloc.ts';
import { D, DOMSTATE_RUNNING, HypervisorState, allocateBuffers } from '../../hypervisor/state.ts';
import { fillPattern } from '../../shared/checksum.ts';
import { PAGE_SIZE } from '../../shared/public/xen.ts';
import { median, type BenchRow, type SuiteOptions } from './types.ts';
import { liveMemRows } from './mem-live.ts';

interface Dom { domid: number; mem: DomainMemory; pages: number }

function world(mib: number): HypervisorState {
  const hv = new HypervisorState(allocateBuffers(mib));
  initAllocator(hv);
  return hv;
}

function dom(hv: HypervisorState, kib: number): Dom {
  const domid = domain_create(hv, false, false, 1);
  const built = build_domain(hv, domid, kib, '');
  if (typeof built === 'number') throw new Error(`build failed: ${built}`);
  Atomics.store(hv.domains, domid * D.WORDS + D.STATE, DOMSTATE_RUNNING);
  return { domid, mem: new DomainMemory(hv, domid), pages: built.nr_pages };
}

const row = (path: string, workload: string, perSec: number[], counters: Record<string, number>, extra: Partial<BenchRow> = {}): BenchRow => ({
  suite: 'mem', path, wait: 'spin', workload, blockSize: PAGE_SIZE, queueDepth: 1,
  reqPerSec: median(perSec), MBps: (median(perSec) * PAGE_SIZE) / 1e6, counters,
  repeats: perSec.length, min: Math.min(...perSec), max: Math.max(...perSec), medianUs: 1e6 / median(perSec), ...extra,
});

/** Run `f` (which does `n` operations) `repeats` times; operations per second each time. */
function rates(repeats: number, n: number, f: (i: number) => void): number[] {
  const out: number[] = [];
  for (let r = 0; r < repeats; r++) {
    const t = performance.now();
    f(r);
    out.push((n / (performance.now() - t)) * 1000);
  }
  return out;
}

export async function benchMem(opts: SuiteOptions): Promise<BenchRow[]> {
  const say = opts.progress ?? (() => {});
  const repeats = opts.quick ? 3 : 7;
  const pages = opts.quick ? 4096 : 16384; // 16 or 64 MiB
  const rows: BenchRow[] = [];
  const page = new Uint8Array(PAGE_SIZE);
  fillPattern(page, 7);
  const dir = mkdtempSync(join(tmpdir(), 'ringvisor-bench-mem-'));
  try {
    say(`mem: populate on demand, ${pages} pages, ${repeats} repeats`);
    const hv = world(pages / 256 * 3 + 16);
    const first: number[] = [];
    const again: number[] = [];
    const bootFrames: number[] = [];
    for (let r = 0; r < repeats; r++) {
      const before = usedFrames(hv);
      const d = dom(hv, pages * 4);
      bootFrames.push(usedFrames(hv) - before);
      first.push(...rates(1, pages - 3, () => { for (let g = 0; g < pages - 3; g++) d.mem.write(g * PAGE_SIZE, page); }));
      again.push(...rates(1, pages - 3, () => { for (let g = 0; g < pages - 3; g++) d.mem.write(g * PAGE_SIZE, page); }));
      domain_kill(hv, d.domid);
    }
    rows.push(row('pod', 'pod-first-touch', first, { bootFramesPoD: median(bootFrames), bootFramesFull: pages, pageWriteBackedPerSec: median(again) }));

    say('mem: balloon inflate and deflate, 512 pages a batch');
    const d = dom(hv, pages * 4);
    const gfns = Array.from({ length: pages - 3 }, (_, i) => i);
    for (const g of gfns) d.mem.write(g * PAGE_SIZE, page);
    const inflate: number[] = [];
    const deflate: number[] = [];
    for (let r = 0; r < repeats; r++) {
      inflate.push(...rates(1, gfns.length, () => { for (let i = 0; i < gfns.length; i += 512) decrease_reservation(hv, d.domid, gfns.slice(i, i + 512), Math.min(512, gfns.length - i)); }));
      deflate.push(...rates(1, gfns.length, () => { for (let i = 0; i < gfns.length; i += 512) populate_physmap(hv, d.domid, gfns.slice(i, i + 512), Math.min(512, gfns.length - i)); }));
    }
    rows.push(row('balloon', 'balloon-inflate', inflate, {}));
    rows.push(row('balloon', 'balloon-deflate', deflate, {}));
    domain_kill(hv, d.domid);

    say('mem: the sharing scanner over two guests with a common image; COW breaks');
    const scan: number[] = [];
    const cow: number[] = [];
    const priv: number[] = [];
    let saved = 0;
    for (let r = 0; r < repeats; r++) {
      const a = dom(hv, (pages / 2) * 4);
      const b = dom(hv, (pages / 2) * 4);
      const n = pages / 2 - 3;
      for (const x of [a, b]) for (let g = 0; g < n; g++) { fillPattern(page, g < n / 2 ? g + 1 : g * 1000 + x.domid); x.mem.write(g * PAGE_SIZE, page); }
      const base = mmCounters(hv).sharing_freed_memory;
      const s = new ShareScanner(hv, { domains: () => [a, b].map((x) => ({ domid: x.domid, pages: x.pages })), quiesce: async () => () => undefined });
      const t = performance.now();
      for (let i = 0; i < 2; i++) await s.pass(pages);
      scan.push(((2 * pages) / (performance.now() - t)) * 1000);
      saved = mmCounters(hv).sharing_freed_memory - base;
      cow.push(...rates(1, n / 2, () => { for (let g = 0; g < n / 2; g++) a.mem.writeU32(g * PAGE_SIZE, r); }));
      priv.push(...rates(1, n / 2, () => { for (let g = 0; g < n / 2; g++) a.mem.writeU32(g * PAGE_SIZE, r + 1); }));
      domain_kill(hv, a.domid);
      domain_kill(hv, b.domid);
    }
    rows.push(row('sharing', 'sharing-scan', scan, { framesSavedPerPass: saved }));
    rows.push(row('sharing', 'cow-break', cow, { privateWritePerSec: median(priv) }));

    say('mem: paging out to a file and in on access');
    setPagingDir(hv, dir);
    const out: number[] = [];
    const inn: number[] = [];
    for (let r = 0; r < repeats; r++) {
      const p = dom(hv, pages * 4);
      for (let g = 0; g < pages - 3; g++) p.mem.write(g * PAGE_SIZE, page);
      const pager = new Pager(hv, { domains: () => [], quiesce: async () => () => undefined }, 0);
      out.push(...rates(1, pages - 3, () => pager.evict(p.domid, pages, pages - 3)));
      inn.push(...rates(1, pages - 3, () => { for (let g = 0; g < pages - 3; g++) p.mem.readU32(g * PAGE_SIZE); }));
      domain_kill(hv, p.domid);
    }
    rows.push(row('paging', 'page-out', out, {}));
    rows.push(row('paging', 'page-in', inn, {}));
    rows.push(...await liveMemRows(opts.quick, say));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  return rows;
}
