// Grant tables v1: map, unmap and copy with Xen's checks and status codes.
import test from 'ava';
import { gnttab_copy, gnttab_map_grant_ref, gnttab_unmap_grant_ref, grantsActive } from '../hypervisor/grant-table.ts';
import { D } from '../hypervisor/state.ts';
import { usedFrames } from '../hypervisor/page-alloc.ts';
import {
  GNTCOPY_dest_gref, GNTCOPY_source_gref, GNTMAP_host_map, GNTMAP_readonly, GNTST_bad_copy_arg, GNTST_bad_domain,
  GNTST_bad_gntref, GNTST_bad_handle, GNTST_bad_page, GNTST_bad_virt_addr, GNTST_general_error, GNTST_okay,
  GNTST_permission_denied, GTF_reading, GTF_writing, newGnttabCopy, type GnttabMapGrantRef,
} from '../shared/public/grant_table.ts';
import { PageFault } from '../shared/public/memory.ts';
import { DOMID_SELF, PAGE_SIZE } from '../shared/public/xen.ts';
import { World, type TestDomain } from './helpers/world.ts';

function mapOp(dom: number, ref: number, gfn: number, readonly = false): GnttabMapGrantRef {
  return { host_addr: gfn, flags: GNTMAP_host_map | (readonly ? GNTMAP_readonly : 0), ref, dom, status: 99, handle: -1 };
}

function setup() {
  const w = new World();
  const back = w.domain({ privileged: true });
  const front = w.domain();
  const other = w.domain();
  return { w, back, front, other };
}

function grantPage(d: TestDomain, to: number, readonly: boolean, fill = 0x5a) {
  const gfn = d.pages.alloc();
  d.mem.fill(gfn * PAGE_SIZE, PAGE_SIZE, fill);
  return { gfn, ref: d.gnttab.grant(to, gfn, readonly) };
}

test('a mapped grant shows the granter\'s page, sets GTF_reading/writing, and unmaps clean', (t) => {
  const { back, front } = setup();
  const { ref, gfn } = grantPage(front, back.domid, false, 0x11);
  const hole = back.pages.allocHole();
  const op = mapOp(front.domid, ref, hole);
  gnttab_map_grant_ref(back.c, op);
  t.is(op.status, GNTST_okay);
  t.is(front.gnttab.flags(ref) & (GTF_reading | GTF_writing), GTF_reading | GTF_writing);
  const seen = new Uint8Array(8);
  back.mem.read(hole * PAGE_SIZE, seen);
  t.deepEqual([...seen], new Array(8).fill(0x11));
  back.mem.write(hole * PAGE_SIZE, new Uint8Array([1, 2, 3]));
  const granted = new Uint8Array(3);
  front.mem.read(gfn * PAGE_SIZE, granted);
  t.deepEqual([...granted], [1, 2, 3], 'the backend wrote into the frontend\'s own page');

  const un = { host_addr: hole, handle: op.handle, status: 99 };
  gnttab_unmap_grant_ref(back.c, un);
  t.is(un.status, GNTST_okay);
  t.is(front.gnttab.flags(ref) & (GTF_reading | GTF_writing), 0);
  t.throws(() => back.mem.read(hole * PAGE_SIZE, seen), { instanceOf: PageFault });
  t.true(front.gnttab.endAccessRef(ref));
});

test('a grant names one domain: anyone else is refused with permission_denied', (t) => {
  const { back, front, other } = setup();
  const { ref } = grantPage(front, back.domid, false);
  const op = mapOp(front.domid, ref, other.pages.allocHole());
  gnttab_map_grant_ref(other.c, op);
  t.is(op.status, GNTST_permission_denied);
  t.is(front.gnttab.flags(ref) & (GTF_reading | GTF_writing), 0, 'a refused map leaves no in-use bit');
  t.false(other.mem.present(op.host_addr));
});

test('read-only grants: writable map refused, read-only map allowed, writes through it fault', (t) => {
  const { back, front } = setup();
  const { ref } = grantPage(front, back.domid, true, 0x77);
  const w = mapOp(front.domid, ref, back.pages.allocHole());
  gnttab_map_grant_ref(back.c, w);
  t.is(w.status, GNTST_permission_denied);

  const r = mapOp(front.domid, ref, back.pages.allocHole(), true);
  gnttab_map_grant_ref(back.c, r);
  t.is(r.status, GNTST_okay);
  t.is(front.gnttab.flags(ref) & (GTF_reading | GTF_writing), GTF_reading);
  const b = new Uint8Array(1);
  back.mem.read(r.host_addr * PAGE_SIZE, b);
  t.is(b[0], 0x77);
  const e = t.throws(() => back.mem.write(r.host_addr * PAGE_SIZE, b), { instanceOf: PageFault });
  t.regex(e!.message, /d0 write .*read-only/);
});

test('bad refs, bad domains, bad handles and occupied gfns get their status codes', (t) => {
  const { back, front } = setup();
  const { ref } = grantPage(front, back.domid, false);
  const bad = mapOp(front.domid, 1 << 20, back.pages.allocHole());
  gnttab_map_grant_ref(back.c, bad);
  t.is(bad.status, GNTST_bad_gntref);
  const noDom = mapOp(40, ref, back.pages.allocHole());
  gnttab_map_grant_ref(back.c, noDom);
  t.is(noDom.status, GNTST_bad_domain);
  const ontoRam = mapOp(front.domid, ref, 0);
  gnttab_map_grant_ref(back.c, ontoRam);
  t.is(ontoRam.status, GNTST_bad_virt_addr, 'mapping over RAM is refused');
  const noFlag = { ...mapOp(front.domid, ref, back.pages.allocHole()), flags: 0 };
  gnttab_map_grant_ref(back.c, noFlag);
  t.is(noFlag.status, GNTST_bad_gntref);
  const un = { host_addr: 5, handle: 1234, status: 0 };
  gnttab_unmap_grant_ref(back.c, un);
  t.is(un.status, GNTST_bad_handle);

  // A grant of a frame the granter does not own (a hole) is a bad page.
  const holeRef = front.gnttab.grant(back.domid, front.pages.allocHole(), false);
  const op = mapOp(front.domid, holeRef, back.pages.allocHole());
  gnttab_map_grant_ref(back.c, op);
  t.is(op.status, GNTST_bad_page);
  t.is(front.gnttab.flags(holeRef) & (GTF_reading | GTF_writing), 0);
});

test('ending access fails while mapped and succeeds after unmap; deferred ends retry', (t) => {
  const { back, front } = setup();
  const { ref } = grantPage(front, back.domid, false);
  const op = mapOp(front.domid, ref, back.pages.allocHole());
  gnttab_map_grant_ref(back.c, op);
  t.is(op.status, GNTST_okay);
  t.false(front.gnttab.endAccessRef(ref));
  t.false(front.gnttab.endAccess(ref));
  t.is(front.gnttab.deferredCount, 1);
  const un = { host_addr: op.host_addr, handle: op.handle, status: 0 };
  gnttab_unmap_grant_ref(back.c, un);
  t.is(un.status, GNTST_okay);
  gnttab_unmap_grant_ref(back.c, un);
  t.is(un.status, GNTST_bad_handle, 'a handle unmaps once');
  front.gnttab.retryDeferred();
  t.is(front.gnttab.deferredCount, 0);
});

test('a second domain cannot pin an entry another domain holds', (t) => {
  const { back, front, other } = setup();
  const { ref } = grantPage(front, back.domid, false);
  const op = mapOp(front.domid, ref, back.pages.allocHole());
  gnttab_map_grant_ref(back.c, op);
  // The granter re-points the entry at `other` while back still maps it.
  front.gnttab.grantRef(ref, other.domid, 0, false);
  const steal = mapOp(front.domid, ref, other.pages.allocHole());
  gnttab_map_grant_ref(other.c, steal);
  t.is(steal.status, GNTST_general_error);
});

test('grant copy: both directions, read-only honoured, no page crossing, bad args refused', (t) => {
  const { back, front } = setup();
  const src = grantPage(front, back.domid, true, 0x42);
  const dst = grantPage(front, back.domid, false, 0);
  const local = back.pages.alloc();
  back.mem.fill(local * PAGE_SIZE, PAGE_SIZE, 0x99);

  const op = newGnttabCopy();
  op.flags = GNTCOPY_source_gref;
  op.source = { ref: src.ref, gfn: 0, domid: front.domid, offset: 100 };
  op.dest = { ref: 0, gfn: local, domid: DOMID_SELF, offset: 0 };
  op.len = 200;
  gnttab_copy(back.c, [op], 1);
  t.is(op.status, GNTST_okay);
  const got = new Uint8Array(201);
  back.mem.read(local * PAGE_SIZE, got);
  t.true(got.subarray(0, 200).every((b) => b === 0x42));
  t.is(got[200], 0x99);

  const into = newGnttabCopy();
  into.flags = GNTCOPY_dest_gref;
  into.source = { ref: 0, gfn: local, domid: DOMID_SELF, offset: 0 };
  into.dest = { ref: dst.ref, gfn: 0, domid: front.domid, offset: 4000 };
  into.len = 96;
  gnttab_copy(back.c, [into], 1);
  t.is(into.status, GNTST_okay);
  const landed = new Uint8Array(96);
  front.mem.read(dst.gfn * PAGE_SIZE + 4000, landed);
  t.deepEqual(landed, got.subarray(0, 96));

  const toRo = newGnttabCopy();
  toRo.flags = GNTCOPY_dest_gref;
  toRo.source = { ref: 0, gfn: local, domid: DOMID_SELF, offset: 0 };
  toRo.dest = { ref: src.ref, gfn: 0, domid: front.domid, offset: 0 };
  toRo.len = 8;
  gnttab_copy(back.c, [toRo], 1);
  t.is(toRo.status, GNTST_permission_denied, 'a read-only grant cannot be copied into');

  const crossing = newGnttabCopy();
  crossing.flags = GNTCOPY_source_gref;
  crossing.source = { ref: src.ref, gfn: 0, domid: front.domid, offset: 4000 };
  crossing.dest = { ref: 0, gfn: local, domid: DOMID_SELF, offset: 0 };
  crossing.len = 200;
  gnttab_copy(back.c, [crossing], 1);
  t.is(crossing.status, GNTST_bad_copy_arg, 'a copy may not cross a page');

  const foreignGfn = newGnttabCopy();
  foreignGfn.source = { ref: 0, gfn: 3, domid: front.domid, offset: 0 };
  foreignGfn.dest = { ref: 0, gfn: local, domid: DOMID_SELF, offset: 0 };
  foreignGfn.len = 8;
  gnttab_copy(back.c, [foreignGfn], 1);
  t.is(foreignGfn.status, GNTST_permission_denied, 'another domain\'s gfn needs a grant');

  t.is(front.gnttab.flags(src.ref) & (GTF_reading | GTF_writing), 0, 'transient pins are gone');
  t.is(grantsActive(back.c.hv, front.domid), 0);
});

test('a domain destroyed while its grant is mapped lingers until the unmap, then frees everything', (t) => {
  const { w, back, front } = setup();
  const { ref } = grantPage(front, back.domid, false, 0x33);
  const before = usedFrames(w.hv);
  const op = mapOp(front.domid, ref, back.pages.allocHole());
  gnttab_map_grant_ref(back.c, op);
  // RAM is populated on demand (hypervisor/mm/pod.ts): the domain holds the frames it touched.
  const held = w.hv.domains[front.domid * D.WORDS + D.TOT_PAGES];
  w.kill(front);
  t.is(usedFrames(w.hv), before - held + 1, 'the mapped frame outlives its owner');
  const b = new Uint8Array(1);
  back.mem.read(op.host_addr * PAGE_SIZE, b);
  t.is(b[0], 0x33, 'the backend still sees the page it mapped');
  const again = mapOp(front.domid, ref, back.pages.allocHole());
  gnttab_map_grant_ref(back.c, again);
  t.is(again.status, GNTST_bad_domain, 'no new map of a dying domain');
  gnttab_unmap_grant_ref(back.c, { host_addr: op.host_addr, handle: op.handle, status: 0 });
  t.is(usedFrames(w.hv), before - held);
  t.is(grantsActive(w.hv, front.domid), 0);
});

test('a copy batch keeps a grant pinned across consecutive ops into it, and lets go at the end or when an op fails', (t) => {
  const { back, front } = setup();
  const dst = grantPage(front, back.domid, false, 0x00);
  const a = back.pages.alloc();
  const b = back.pages.alloc();
  back.mem.fill(a * PAGE_SIZE, PAGE_SIZE, 0xa1);
  back.mem.fill(b * PAGE_SIZE, PAGE_SIZE, 0xb2);
  // netback's rx: a frame's linear part, then its frag, into one posted buffer (two ops, one grant).
  const op = (gfn: number, destOff: number, len: number) => {
    const o = newGnttabCopy();
    o.flags = GNTCOPY_dest_gref;
    o.source = { ref: 0, gfn, domid: DOMID_SELF, offset: 0 };
    o.dest = { ref: dst.ref, gfn: 0, domid: front.domid, offset: destOff };
    o.len = len;
    return o;
  };
  const ops = [op(a, 0, 128), op(b, 128, 1386), op(a, 1514, 10)];
  gnttab_copy(back.c, ops, ops.length);
  t.deepEqual(ops.map((o) => o.status), [GNTST_okay, GNTST_okay, GNTST_okay]);
  const got = new Uint8Array(1530);
  front.mem.read(dst.gfn * PAGE_SIZE, got);
  t.true(got.subarray(0, 128).every((x) => x === 0xa1) && got.subarray(128, 1514).every((x) => x === 0xb2));
  t.true(got.subarray(1514, 1524).every((x) => x === 0xa1) && got[1524] === 0);
  t.is(front.gnttab.flags(dst.ref) & (GTF_reading | GTF_writing), 0, 'the pin kept across the batch is dropped at its end');
  t.is(grantsActive(back.c.hv, front.domid), 0);

  // An op that fails in the middle is that op's status only; the grant held before it is let go.
  const bad = op(b, 4000, 200); // crosses the page
  const after = op(a, 2000, 4);
  const ro = grantPage(front, back.domid, true, 0x77);
  const intoRo = op(a, 0, 4);
  intoRo.dest = { ref: ro.ref, gfn: 0, domid: front.domid, offset: 0 };
  const batch = [op(a, 0, 4), bad, after, intoRo, op(b, 8, 4)];
  gnttab_copy(back.c, batch, batch.length);
  t.deepEqual(batch.map((o) => o.status), [GNTST_okay, GNTST_bad_copy_arg, GNTST_okay, GNTST_permission_denied, GNTST_okay]);
  t.is(front.gnttab.flags(dst.ref) & (GTF_reading | GTF_writing), 0);
  t.is(front.gnttab.flags(ro.ref) & (GTF_reading | GTF_writing), 0);
  t.is(grantsActive(back.c.hv, front.domid), 0);
  t.true(front.gnttab.endAccess(dst.ref), 'the granter can end access once the batch is done');
});
