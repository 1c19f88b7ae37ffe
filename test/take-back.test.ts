// Taking a frame back (hypervisor/guest-memory.ts): a GuestPage view stops working when its
// mapping ends (grant unmap, foreign unmap, the mapper's destroy), faulting as an unmapped page
// does, and follows the P2M when the gfn is mapped again.
import test from 'ava';
import { gnttab_map_grant_ref, gnttab_unmap_grant_ref } from '../hypervisor/grant-table.ts';
import { add_to_physmap_batch_foreign, remove_from_physmap } from '../hypervisor/p2m-foreign.ts';
import { GNTMAP_host_map, GNTST_okay, type GnttabMapGrantRef } from '../shared/public/grant_table.ts';
import { PageFault } from '../shared/public/memory.ts';
import { PAGE_SIZE } from '../shared/public/xen.ts';
import { World, type TestDomain } from './helpers/world.ts';

function mapOp(dom: number, ref: number, gfn: number): GnttabMapGrantRef {
  return { host_addr: gfn, flags: GNTMAP_host_map, ref, dom, status: 99, handle: -1 };
}

function grantPage(d: TestDomain, to: number, fill: number) {
  const gfn = d.pages.alloc();
  d.mem.fill(gfn * PAGE_SIZE, PAGE_SIZE, fill);
  return { gfn, ref: d.gnttab.grant(to, gfn, false) };
}

function setup() {
  const w = new World();
  return { w, back: w.domain({ privileged: true }), front: w.domain() };
}

const faults = (w: World, d: TestDomain) => w.hv.counter(d.domid, 'page_faults');

test('a view of a grant mapping faults after the unmap, as an unmapped page does', (t) => {
  const { w, back, front } = setup();
  const { ref, gfn } = grantPage(front, back.domid, 0x11);
  const hole = back.pages.allocHole();
  const op = mapOp(front.domid, ref, hole);
  gnttab_map_grant_ref(back.c, op);
  t.is(op.status, GNTST_okay);

  const view = back.mem.map(hole, true);
  t.is(view.bytes()[100], 0x11, 'the view shows the granter\'s page');
  view.bytes()[100] = 0x22;
  const seen = new Uint8Array(1);
  front.mem.read(gfn * PAGE_SIZE + 100, seen);
  t.is(seen[0], 0x22, 'and writes through to it');
  t.is(Atomics.load(view.words(), 0), 0x11111111);

  const un = { host_addr: hole, handle: op.handle, status: 99 };
  gnttab_unmap_grant_ref(back.c, un);
  t.is(un.status, GNTST_okay);
  const before = faults(w, back);
  const e = t.throws(() => view.bytes(), { instanceOf: PageFault });
  t.regex(e!.message, new RegExp(`d${back.domid} write at gpa 0x${(hole * PAGE_SIZE).toString(16)} .*no translation`));
  t.throws(() => view.words(), { instanceOf: PageFault });
  t.is(faults(w, back), before + 2, 'each refused access counts as a page fault');
  t.true(front.gnttab.endAccessRef(ref), 'and the granter has its page back');
});

test('a view made before the unmap and used only after it still faults (the check is at use, not at creation)', (t) => {
  const { back, front } = setup();
  const { ref } = grantPage(front, back.domid, 0x33);
  const hole = back.pages.allocHole();
  const op = mapOp(front.domid, ref, hole);
  gnttab_map_grant_ref(back.c, op);
  const view = back.mem.map(hole, false);
  gnttab_unmap_grant_ref(back.c, { host_addr: hole, handle: op.handle, status: 99 });
  t.throws(() => view.bytes(), { instanceOf: PageFault });
});

test('unmapping one grant does not break the views of the others; a gfn mapped again is followed', (t) => {
  const { back, front } = setup();
  const a = grantPage(front, back.domid, 0xaa);
  const b = grantPage(front, back.domid, 0xbb);
  const holeA = back.pages.allocHole();
  const holeB = back.pages.allocHole();
  const opA = mapOp(front.domid, a.ref, holeA);
  const opB = mapOp(front.domid, b.ref, holeB);
  gnttab_map_grant_ref(back.c, opA);
  gnttab_map_grant_ref(back.c, opB);
  const viewA = back.mem.map(holeA, false);
  const viewB = back.mem.map(holeB, false);
  gnttab_unmap_grant_ref(back.c, { host_addr: holeA, handle: opA.handle, status: 99 });
  t.is(viewB.bytes()[0], 0xbb, 'the other mapping is still there, checked again once');
  t.throws(() => viewA.bytes(), { instanceOf: PageFault });

  // Map b's grant again at A's gfn: the stale view finds the new translation, as an MMU would.
  const again = mapOp(front.domid, b.ref, holeA);
  gnttab_map_grant_ref(back.c, again);
  t.is(again.status, GNTST_okay);
  t.is(viewA.bytes()[0], 0xbb);
});

test('a read-only view of a writable mapping keeps reading; a writable view of a read-only one faults', (t) => {
  const { back, front } = setup();
  const gfn = front.pages.alloc();
  front.mem.fill(gfn * PAGE_SIZE, PAGE_SIZE, 0x44);
  const ref = front.gnttab.grant(back.domid, gfn, true);
  const hole = back.pages.allocHole();
  const op = { ...mapOp(front.domid, ref, hole), flags: GNTMAP_host_map | 4 /* GNTMAP_readonly */ };
  gnttab_map_grant_ref(back.c, op);
  t.is(op.status, GNTST_okay);
  t.is(back.mem.map(hole, false).bytes()[7], 0x44);
  t.throws(() => back.mem.map(hole, true), { instanceOf: PageFault, message: /read-only/ });
});

test('a view of a foreign mapping faults after remove_from_physmap', (t) => {
  const { back, front } = setup();
  const gfn = front.pages.alloc();
  front.mem.fill(gfn * PAGE_SIZE, PAGE_SIZE, 0x5c);
  const hole = back.pages.allocHole();
  const errs = new Int32Array(1);
  t.is(add_to_physmap_batch_foreign(back.c, front.domid, [gfn], [hole], errs, 1), 0);
  t.is(errs[0], 0);
  const view = back.mem.map(hole, true);
  t.is(view.bytes()[9], 0x5c);
  t.is(remove_from_physmap(back.c, hole), 0);
  t.throws(() => view.bytes(), { instanceOf: PageFault });
});

test('destroying a domain takes back every view it holds: its own pages and the grants it mapped', (t) => {
  const { w, back, front } = setup();
  const mapper = w.domain();
  const { ref } = grantPage(front, mapper.domid, 0x66);
  const hole = mapper.pages.allocHole();
  const op = mapOp(front.domid, ref, hole);
  gnttab_map_grant_ref(mapper.c, op);
  const granted = mapper.mem.map(hole, true);
  const own = mapper.mem.map(mapper.pages.alloc(), true);
  t.is(granted.bytes()[0], 0x66);
  t.is(own.bytes().length, PAGE_SIZE);
  w.kill(mapper);
  t.throws(() => granted.bytes(), { instanceOf: PageFault });
  t.throws(() => own.words(), { instanceOf: PageFault });
  t.true(front.gnttab.endAccessRef(ref), 'the granter got its grant back at the destroy');
  t.truthy(back, 'the other domains are untouched');
});
