// Deferred scrubbing (hypervisor/page-alloc.ts, hypervisor/mm/scrub.ts), in one thread where every
// step can be checked: a freed frame is only marked dirty, and no frame ever reaches a new owner
// with a previous owner's bytes, whichever path takes it (PoD first touch, the balloon's
// populate_physmap, a restore's foreign write, the builder's special pages, the Xen-heap pages).
// The World has no scrubber thread, so the clean frames run out and allocations must take the
// dead guest's dirty ones: if alloc_domheap_page forgot to scrub, these tests see the pattern.
import test from 'ava';
import { A, alloc_domheap_page, free_domheap_page, freeFrames, initAllocator, usedFrames } from '../hypervisor/page-alloc.ts';
import { scrubStats, scrub_free_pages, SCRUB_CHUNK } from '../hypervisor/mm/scrub.ts';
import { decrease_reservation, populate_physmap } from '../hypervisor/mm/reservation.ts';
import { p2m_fault } from '../hypervisor/mm/fault.ts';
import { GRANT_FRAMES, HypervisorState, allocateBuffers, grantFrameMfn, sharedInfoMfn } from '../hypervisor/state.ts';
import { fillPattern } from '../shared/checksum.ts';
import { PAGE_SIZE } from '../shared/public/xen.ts';
import { World, type TestDomain } from './helpers/world.ts';

/** Non-zero bytes in `d`'s gfns [first, first + n), read through its own memory (PoD-faulting as it goes). */
function nonZeroBytes(d: TestDomain, first: number, n: number): number {
  const page = new Uint8Array(PAGE_SIZE);
  let bad = 0;
  for (let g = first; g < first + n; g++) {
    page.fill(0xee);
    d.mem.read(g * PAGE_SIZE, page);
    for (const b of page) if (b !== 0) bad++;
  }
  return bad;
}

/** A guest of `pages` pages that writes a pattern over all but its special pages, then is destroyed. */
function dirtyGuest(w: World, pages: number): number {
  const a = w.domain({ memoryKiB: pages * 4 });
  const page = new Uint8Array(PAGE_SIZE);
  const n = pages - 3;
  for (let g = 0; g < n; g++) { fillPattern(page, 1000 + g); a.mem.write(g * PAGE_SIZE, page); }
  w.kill(a);
  return n;
}

/** Take every clean frame (a filler domain's first touches), so what comes next must be a dirty one. */
function takeAllClean(w: World): TestDomain {
  const clean = Atomics.load(w.hv.allocator, A.CLEAN);
  const f = w.domain({ memoryKiB: (clean + 64) * 4 });
  const page = new Uint8Array(PAGE_SIZE);
  for (let g = 0; Atomics.load(w.hv.allocator, A.CLEAN) > 0; g++) f.mem.read(g * PAGE_SIZE, page);
  return f;
}

test('a freed frame is marked dirty, not zeroed, and counts as free', (t) => {
  const hv = new HypervisorState(allocateBuffers(1));
  initAllocator(hv);
  const free0 = freeFrames(hv);
  const mfn = alloc_domheap_page(hv, 1);
  hv.mem8.fill(0x5a, mfn * PAGE_SIZE, (mfn + 1) * PAGE_SIZE);
  free_domheap_page(hv, mfn);
  t.is(freeFrames(hv), free0, 'a dirty frame is free memory');
  t.is(scrubStats(hv).dirty, 1);
  t.is(hv.mem8[mfn * PAGE_SIZE + 100], 0x5a, 'free did not spend the time to zero it');
});

test('a dead guest\'s frames reach the next guest\'s first touches (PoD) as zeros', (t) => {
  const w = new World(4);
  const base = usedFrames(w.hv);
  const n = dirtyGuest(w, 512);
  t.is(scrubStats(w.hv).dirty, n + 3, 'every frame of the dead guest is dirty');
  takeAllClean(w);
  const b = w.domain({ memoryKiB: 512 * 4 });
  t.is(nonZeroBytes(b, 0, n), 0, 'every byte the new guest reads is zero');
  t.is(scrubStats(w.hv).scrubbedAlloc, n + 3, 'each was scrubbed as it was allocated (the builder\'s special pages too)');
  t.is(scrubStats(w.hv).dirty, 0);
  t.true(usedFrames(w.hv) > base);
});

test('the balloon\'s populate_physmap gets zeroed frames, never the dead guest\'s bytes', (t) => {
  const w = new World(4);
  const n = dirtyGuest(w, 400);
  takeAllClean(w);
  const b = w.domain({ memoryKiB: 600 * 4 }); // its RAM is all PoD, untouched
  const gfns = Array.from({ length: n }, (_, i) => i);
  t.is(decrease_reservation(w.hv, b.domid, gfns, n), n, 'the balloon inflates over untouched PoD entries');
  t.is(populate_physmap(w.hv, b.domid, gfns, n), n, 'and deflates: each hole gets a frame');
  t.true(scrubStats(w.hv).scrubbedAlloc >= n, 'they were dirty frames, scrubbed on the way');
  t.is(nonZeroBytes(b, 0, n), 0);
});

test('a restore\'s page-in through a foreign mapping (p2m_fault) starts from a zeroed frame', (t) => {
  const w = new World(4);
  const n = dirtyGuest(w, 300);
  takeAllClean(w);
  const r = w.domain({ memoryKiB: 300 * 4 }); // the domain a receive or restore fills
  let bad = 0;
  for (let g = 0; g < n; g++) {
    const mfn = p2m_fault(w.hv, r.domid, g, true); // what p2m-foreign.ts does before it maps the page for Dom0
    t.true(mfn > 0);
    for (let i = mfn * PAGE_SIZE; i < (mfn + 1) * PAGE_SIZE; i++) if (w.hv.mem8[i] !== 0) bad++;
  }
  t.is(bad, 0, 'a page the stream does not fill (or fills in part) never shows the dead guest');
});

test('a dead guest\'s Xen-heap pages (shared_info, grant table) are zeroed at destroy, before the slot is reused', (t) => {
  const w = new World(4);
  const a = w.domain({ memoryKiB: 64 });
  const xenheap = [sharedInfoMfn(a.domid), ...Array.from({ length: GRANT_FRAMES }, (_, i) => grantFrameMfn(a.domid, i))];
  for (const mfn of xenheap) w.hv.mem8.fill(0x77, mfn * PAGE_SIZE, (mfn + 1) * PAGE_SIZE);
  w.kill(a);
  for (const mfn of xenheap) t.true(w.hv.mem8.subarray(mfn * PAGE_SIZE, (mfn + 1) * PAGE_SIZE).every((b) => b === 0), `Xen-heap mfn ${mfn}`);
});

test('scrub_free_pages cleans the dirty frames in chunks and stops when none is left', (t) => {
  const w = new World(4);
  const n = dirtyGuest(w, 700);
  const dirty0 = scrubStats(w.hv).dirty;
  t.is(dirty0, n + 3);
  const free = freeFrames(w.hv);
  let calls = 0;
  while (scrub_free_pages(w.hv)) calls++;
  calls++;
  t.is(calls, Math.ceil(dirty0 / SCRUB_CHUNK), 'one chunk per call');
  t.false(scrub_free_pages(w.hv), 'nothing dirty: nothing to do');
  const s = scrubStats(w.hv);
  t.is(s.dirty, 0);
  t.is(s.scrubbing, 0);
  t.is(s.scrubbedIdle, dirty0);
  t.is(freeFrames(w.hv), free, 'no frame lost on the way');
  // Every free frame is zero now: take them all for one guest and look.
  const b = w.domain({ memoryKiB: (freeFrames(w.hv) + 3) * 4 });
  t.is(nonZeroBytes(b, 0, freeFrames(w.hv)), 0);
  t.is(scrubStats(w.hv).scrubbedAlloc, 0, 'the allocations found only clean frames');
});

test('scrub mode "free" zeroes at free, as before: nothing is ever dirty', (t) => {
  const hv = new HypervisorState(allocateBuffers(1));
  initAllocator(hv, 'free');
  const mfn = alloc_domheap_page(hv, 1);
  hv.mem8.fill(0x5a, mfn * PAGE_SIZE, (mfn + 1) * PAGE_SIZE);
  free_domheap_page(hv, mfn);
  t.is(scrubStats(hv).dirty, 0);
  t.is(scrubStats(hv).scrubbedFree, 1);
  t.true(hv.mem8.subarray(mfn * PAGE_SIZE, (mfn + 1) * PAGE_SIZE).every((b) => b === 0));
});
