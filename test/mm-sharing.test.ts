// Content-based page sharing with copy-on-write (hypervisor/mm/sharing.ts, share-scan.ts):
// identical pages of several domains become one read-only frame; a write breaks the share and
// leaves the other sharers' data intact; cached page views follow; destroy frees by reference count.
import test from 'ava';
import { mmCounters } from '../hypervisor/mm/counters.ts';
import { ShareScanner } from '../hypervisor/mm/share-scan.ts';
import { usedFrames } from '../hypervisor/page-alloc.ts';
import { checksum, fillPattern } from '../shared/checksum.ts';
import { PAGE_SIZE } from '../shared/public/xen.ts';
import { World, type TestDomain } from './helpers/world.ts';
import { until } from '../scenarios/lib/hang.ts';

function scanner(w: World, doms: TestDomain[]) {
  return new ShareScanner(w.hv, {
    domains: () => doms.filter((d) => w.hv.isAlive(d.domid)).map((d) => ({ domid: d.domid, pages: d.built.nr_pages })),
    quiesce: async () => () => undefined, // one thread: nothing runs while the pass does
  });
}

/** Every domain's gfns 0..n: half a common "boot image" pattern, a quarter zeros, a quarter its own. */
function writeImage(d: TestDomain, n: number, own: number): number[] {
  const page = new Uint8Array(PAGE_SIZE);
  const sums: number[] = [];
  for (let g = 0; g < n; g++) {
    if (g < n / 2) fillPattern(page, 1000 + g);
    else if (g < (3 * n) / 4) page.fill(0);
    else fillPattern(page, own * 100000 + g);
    d.mem.write(g * PAGE_SIZE, page);
    sums.push(checksum(page));
  }
  return sums;
}

function verify(t: { fail(m: string): void }, d: TestDomain, sums: number[]): void {
  const page = new Uint8Array(PAGE_SIZE);
  sums.forEach((s, g) => { d.mem.read(g * PAGE_SIZE, page); if (checksum(page) !== s) t.fail(`d${d.domid} gfn ${g} changed`); });
}

test('identical pages of two domains become shared frames; every byte reads back; the host saves frames', async (t) => {
  const w = new World(16);
  const base = usedFrames(w.hv);
  const a = w.domain({ memoryKiB: 1024 });
  const b = w.domain({ memoryKiB: 1024 });
  const s = scanner(w, [a, b]);
  // The builder's pages come first: both start_info pages are alike, the rings are zero pages.
  for (let i = 0; i < 2; i++) await s.pass(1000);
  const c0 = mmCounters(w.hv);
  t.true(c0.sharing_full_scans >= 1 && c0.sharing_shared_frames === 2, 'a start_info frame and a zero frame');
  const sa = writeImage(a, 128, 1);
  const sb = writeImage(b, 128, 2);
  const before = usedFrames(w.hv);
  for (let i = 0; i < 8; i++) await s.pass(100);
  const c = mmCounters(w.hv);
  // 64 image pages shared by both (64 frames, 128 mappings); 64 zero pages (32 per domain) join the zero frame.
  t.is(c.sharing_shared_frames - c0.sharing_shared_frames, 64);
  t.is(c.sharing_mappings - c0.sharing_mappings, 128 + 64);
  t.is(usedFrames(w.hv), before - (c.sharing_freed_memory - c0.sharing_freed_memory), 'the host holds that many frames fewer');
  verify(t, a, sa);
  verify(t, b, sb);
  w.kill(a);
  t.is(mmCounters(w.hv).sharing_shared_frames, 64 + 2, 'the other sharer keeps the frames alive');
  verify(t, b, sb);
  w.kill(b);
  const after = mmCounters(w.hv);
  t.is(after.sharing_shared_frames, 0);
  t.is(after.sharing_mappings, 0);
  t.is(usedFrames(w.hv), base, 'destroy frees shared frames by reference count: back to the baseline');
});

test('a write to a shared page breaks the share: the writer gets a private copy, the other sharer keeps its data; views refill', async (t) => {
  const w = new World(16);
  const a = w.domain({ memoryKiB: 1024 });
  const b = w.domain({ memoryKiB: 1024 });
  const page = new Uint8Array(PAGE_SIZE);
  fillPattern(page, 42);
  a.mem.write(10 * PAGE_SIZE, page);
  b.mem.write(20 * PAGE_SIZE, page);
  const sum = checksum(page);
  const viewA = a.mem.map(10, true); // a writable cached view (a GuestPage) taken before sharing
  const viewB = b.mem.map(20, false);
  const s = scanner(w, [a, b]);
  for (let i = 0; i < 4; i++) await s.pass(400);
  t.is(mmCounters(w.hv).sharing_shared_frames, 3, 'the page, and the builder\'s start_info and zero pages');
  t.is(checksum(viewB.bytes()), sum);
  // The writable view goes back through the gate: the write fault breaks the share.
  const bytes = viewA.bytes();
  t.is(mmCounters(w.hv).cow_breaks, 1, 'taking a writable view of a shared page is a COW break');
  bytes[0] ^= 0xff;
  const back = new Uint8Array(PAGE_SIZE);
  b.mem.read(20 * PAGE_SIZE, back);
  t.is(checksum(back), sum, 'b never sees a\'s write through the shared frame');
  t.is(checksum(viewB.bytes()), sum);
  a.mem.read(10 * PAGE_SIZE, back);
  t.is(back[0], page[0] ^ 0xff, 'a sees its own write');
  // b now holds the last reference: its write takes the frame back without a copy.
  const free = usedFrames(w.hv);
  b.mem.writeU32(20 * PAGE_SIZE, 7);
  t.is(usedFrames(w.hv), free, 'the last holder gets the frame itself');
  t.is(mmCounters(w.hv).sharing_shared_frames, 2);
  t.is(mmCounters(w.hv).cow_breaks, 2);
});

test('pinned pages (unchecked views, grants) are never shared', async (t) => {
  const w = new World(16);
  const a = w.domain({ memoryKiB: 1024 });
  const b = w.domain({ memoryKiB: 1024 });
  const page = new Uint8Array(PAGE_SIZE);
  fillPattern(page, 5);
  a.mem.write(30 * PAGE_SIZE, page);
  b.mem.write(30 * PAGE_SIZE, page);
  const raw = a.mem.page(30, true);
  const s = scanner(w, [a, b]);
  for (let i = 0; i < 4; i++) await s.pass(400);
  raw[0] ^= 1;
  const back = new Uint8Array(PAGE_SIZE);
  b.mem.read(30 * PAGE_SIZE, back);
  t.is(checksum(back), checksum(page), 'a\'s unchecked view still writes its own frame only');
});

test('on a live host, sharing under concurrent writes keeps every guest\'s data exact (COW), and destroy frees everything', async (t) => {
  const { Host } = await import('../hypervisor/host.ts');
  const host = new Host({ memoryMiB: 32, log: () => {} });
  const said: string[] = [];
  host.on('console', (e: { domid: number; text: string }) => said.push(`d${e.domid} ${e.text}`));
  const base = host.usage().framesUsed;
  const kernel = new URL('./kernels/mem-guest.ts', import.meta.url).href;
  const ids: number[] = [];
  host.mm.setSharing({ run: true, pages_to_scan: 200, sleep_millisecs: 1 });
  for (let i = 0; i < 3; i++) {
    ids.push(await host.createDomain({ name: `g${i}`, vcpus: 1, memoryKiB: 4096, kernel, module: { action: 'churn', pages: 400, seed: i + 1, rounds: 30, writes: 16 } }));
  }
  await until(() => ids.every((d) => said.some((s) => s.startsWith(`d${d} churned`))), `${ids.map((d) => `d${d}`).join(', ')} churned`, { seen: () => said });
  for (const d of ids) t.true(said.includes(`d${d} churned 400 pages for 30 rounds, 0 bad`), `d${d}: ${said.filter((s) => s.startsWith(`d${d}`)).join(' | ')}`);
  const c = mmCounters(host.hv);
  t.true(c.sharing_freed_memory > 200, `sharing saved frames (${c.sharing_freed_memory})`);
  t.true(c.cow_breaks > 0, 'and writes broke shares');
  host.mm.setSharing({ run: false });
  for (const d of ids) await host.destroy(d);
  t.is(host.usage().framesUsed, base);
  t.is(mmCounters(host.hv).sharing_shared_frames, 0);
  await host.close();
});
