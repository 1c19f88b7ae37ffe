// Log-dirty mode (hypervisor/mm/log-dirty.ts, XEN_DOMCTL_shadow_op): the write gate marks the pages
// a domain writes through write calls and through cached page views (which pass the gate again
// after each CLEAN), and backends' writes into granted pages (grant copy, writable grant maps) are
// marked too. The last round (LOGDIRTY_FINAL) adds the pages held writably where each write is not seen.
import test from 'ava';
import { gnttab_copy, gnttab_map_grant_ref, gnttab_unmap_grant_ref } from '../hypervisor/grant-table.ts';
import { shadow_op, test_bit } from '../hypervisor/mm/log-dirty.ts';
import {
  XEN_DOMCTL_SHADOW_LOGDIRTY_FINAL, XEN_DOMCTL_SHADOW_OP_CLEAN, XEN_DOMCTL_SHADOW_OP_ENABLE_LOGDIRTY,
  XEN_DOMCTL_SHADOW_OP_OFF, XEN_DOMCTL_SHADOW_OP_PEEK, type ShadowOpResult,
} from '../shared/public/domctl.ts';
import {
  GNTCOPY_dest_gref, GNTMAP_host_map, GNTMAP_readonly, GNTST_okay, newGnttabCopy,
} from '../shared/public/grant_table.ts';
import { PAGE_SIZE, XEN_EINVAL } from '../shared/public/xen.ts';
import { World, type TestDomain } from './helpers/world.ts';
import { LOGDIRTY_STRIDE } from '../hypervisor/state.ts';

const PAGES = 256; // the test domains' RAM (1 MiB)

function setup() {
  const w = new World();
  const back = w.domain({ privileged: true });
  const guest = w.domain();
  return { w, back, guest };
}

/** CLEAN or PEEK; the gfns whose bits are set. */
function collect(w: World, d: TestDomain, op: number, mode = 0): { gfns: number[]; r: ShadowOpResult } {
  const bitmap = new Int32Array(PAGES / 32);
  const r = shadow_op(w.hv, d.domid, op, mode, bitmap, PAGES);
  if (typeof r === 'number') throw new Error(`shadow_op ${op}: ${r}`);
  const gfns: number[] = [];
  for (let g = 0; g < r.pages; g++) if (test_bit(bitmap, g)) gfns.push(g);
  return { gfns, r };
}
const clean = (w: World, d: TestDomain, mode = 0) => collect(w, d, XEN_DOMCTL_SHADOW_OP_CLEAN, mode);
/** ENABLE_LOGDIRTY: 0, or -errno. */
function enable(w: World, d: TestDomain): number {
  const r = shadow_op(w.hv, d.domid, XEN_DOMCTL_SHADOW_OP_ENABLE_LOGDIRTY, 0, null, 0);
  return typeof r === 'number' ? r : 0;
}

test('write calls mark exactly the pages written; CLEAN hands them back and starts a new round, PEEK keeps them', (t) => {
  const { w, guest } = setup();
  const a = guest.pages.alloc();
  const b = guest.pages.alloc();
  const c = guest.pages.alloc();
  guest.mem.fill(a * PAGE_SIZE, PAGE_SIZE, 1); // before log-dirty: not recorded
  t.is(enable(w, guest), 0);
  guest.mem.write(b * PAGE_SIZE + 100, new Uint8Array([1, 2, 3]));
  guest.mem.writeU32(c * PAGE_SIZE + 8, 0xdeadbeef);
  guest.mem.writeU32(c * PAGE_SIZE + 12, 0xfeedface); // the same page again: one fault
  const seen = new Uint8Array(4);
  guest.mem.read(a * PAGE_SIZE, seen); // reads mark nothing

  const peek = collect(w, guest, XEN_DOMCTL_SHADOW_OP_PEEK);
  t.deepEqual(peek.gfns, [b, c]);
  t.deepEqual(peek.r.stats, { fault_count: 2, dirty_count: 2 });
  const first = clean(w, guest);
  t.deepEqual(first.gfns, [b, c], 'PEEK left the bitmap as it was');
  t.is(first.r.pages, PAGES);
  t.deepEqual(clean(w, guest).gfns, [], 'CLEAN cleared it');

  // A write spanning two pages marks both.
  guest.mem.write(a * PAGE_SIZE + PAGE_SIZE - 2, new Uint8Array([9, 9, 9, 9]));
  t.deepEqual(clean(w, guest).gfns, [a, a + 1]);
});

test('a cached view passes the write gate again after every CLEAN, so each round sees its writes', (t) => {
  const { w, guest } = setup();
  const g = guest.pages.alloc();
  const r = guest.pages.alloc();
  const view = guest.mem.map(g, true);
  const reader = guest.mem.map(r, false);
  view.bytes()[0] = 1; // before log-dirty
  t.is(enable(w, guest), 0);
  t.is(enable(w, guest), -XEN_EINVAL, 'a second ENABLE is refused');

  // The view was made before ENABLE: its next request goes through the gate and is seen.
  view.bytes()[1] = 2;
  t.is(reader.bytes()[0], 0);
  t.deepEqual(clean(w, guest).gfns, [g]);
  // After the CLEAN the same view object is seen again at its next request...
  view.words()[5] = 7;
  t.deepEqual(clean(w, guest).gfns, [g], 'the same view is marked again in the next round');
  // ...and a round in which the view is not used has nothing dirty: no false positives.
  t.deepEqual(clean(w, guest).gfns, []);
  t.is(reader.bytes()[0], 0);
  t.deepEqual(clean(w, guest).gfns, [], 'a read-only view never marks');
});

test('a write call is logged after its bytes land: a CLEAN between the gate and the copy (its vCPU preempted there) leaves the page for the next round', (t) => {
  const { w, guest } = setup();
  const g = guest.pages.alloc();
  t.is(enable(w, guest), 0);
  guest.mem.fill(g * PAGE_SIZE, PAGE_SIZE, 1); // written earlier in this round: its bit is set

  // The source's sender runs CLEAN and reads the page while the guest's next write is between the
  // write gate and its copy: here, at the copy's first byte (a Proxy stands in for the preemption).
  let round: number[] = [];
  const sent = new Uint8Array(1);
  const bytes = new Uint8Array(PAGE_SIZE).fill(2);
  const src = new Proxy(bytes, {
    get(target, prop) {
      if (prop === '0' && round.length === 0) {
        round = clean(w, guest).gfns;
        guest.mem.read(g * PAGE_SIZE, sent);
      }
      return Reflect.get(target, prop);
    },
  }) as Uint8Array;
  guest.mem.write(g * PAGE_SIZE, src);

  t.deepEqual(round, [g], 'the round the CLEAN began had the page');
  t.is(sent[0], 1, 'and sent it as it was before the write');
  const landed = new Uint8Array(1);
  guest.mem.read(g * PAGE_SIZE, landed);
  t.is(landed[0], 2, 'the write landed after the CLEAN');
  t.deepEqual(clean(w, guest).gfns, [g], 'so the next round has the page again; marked before its copy, it would be lost');
});

test('a writable GuestPage written after a CLEAN and not asked again is in the last round (LOGDIRTY_FINAL)', (t) => {
  const { w, guest } = setup();
  const g = guest.pages.alloc();
  t.is(enable(w, guest), 0);
  const view = guest.mem.map(g, true);
  const words = view.words(); // a request begins: the gate marks the page
  t.deepEqual(clean(w, guest).gfns, [g]);
  words[0] = 7; // the request's write, after the CLEAN: no gate sees it
  t.deepEqual(clean(w, guest).gfns, [], 'an ordinary round cannot see it');
  t.deepEqual(clean(w, guest, XEN_DOMCTL_SHADOW_LOGDIRTY_FINAL).gfns, [g], 'the last round takes it');
});

test('a long-lived writable view (page(), pageWords()) is reported in the last round, LOGDIRTY_FINAL', (t) => {
  const { w, guest } = setup();
  const ring = guest.pages.alloc();
  const words = guest.mem.pageWords(ring, true); // made before log-dirty is even on
  t.is(enable(w, guest), 0);
  t.deepEqual(clean(w, guest).gfns, []);
  Atomics.store(words, 3, 42); // the gate cannot see this write
  t.deepEqual(clean(w, guest).gfns, [], 'an ordinary round cannot see writes through an unchecked view');
  const last = clean(w, guest, XEN_DOMCTL_SHADOW_LOGDIRTY_FINAL);
  t.deepEqual(last.gfns, [ring], 'the last round sends it anyway');
});

test('backend writes into granted pages are marked: grant copy, writable maps at unmap and in FINAL; read-only maps are not', (t) => {
  const { w, back, guest } = setup();
  const copied = guest.pages.alloc();
  const mapped = guest.pages.alloc();
  const held = guest.pages.alloc();
  const ro = guest.pages.alloc();
  const own = back.pages.alloc();
  const refCopied = guest.gnttab.grant(back.domid, copied, false);
  const refMapped = guest.gnttab.grant(back.domid, mapped, false);
  const refHeld = guest.gnttab.grant(back.domid, held, false);
  const refRo = guest.gnttab.grant(back.domid, ro, true);
  t.is(enable(w, guest), 0);
  t.is(enable(w, back), 0);

  // netback's rx path: a grant copy from the backend's page into the guest's granted page.
  back.mem.fill(own * PAGE_SIZE, PAGE_SIZE, 0x5a);
  const op = newGnttabCopy();
  op.source = { ref: 0, gfn: own, domid: back.domid, offset: 0 };
  op.dest = { ref: refCopied, gfn: 0, domid: guest.domid, offset: 64 };
  op.len = 128;
  op.flags = GNTCOPY_dest_gref;
  gnttab_copy(back.c, [op], 1);
  t.is(op.status, GNTST_okay);

  // blkback's read path: map writably, write, unmap.
  const map = (ref: number, readonly: boolean) => {
    const m = { host_addr: back.pages.allocHole(), flags: GNTMAP_host_map | (readonly ? GNTMAP_readonly : 0), ref, dom: guest.domid, status: 99, handle: -1 };
    gnttab_map_grant_ref(back.c, m);
    t.is(m.status, GNTST_okay);
    return m;
  };
  const m1 = map(refMapped, false);
  back.mem.map(m1.host_addr, true).bytes()[0] = 0x77;
  const m2 = map(refHeld, false); // a persistent grant: still mapped at the last round
  back.mem.map(m2.host_addr, true).bytes()[0] = 0x78;
  const m3 = map(refRo, true);
  t.is(back.mem.map(m3.host_addr, false).bytes()[0], 0);

  t.deepEqual(clean(w, guest).gfns, [copied], 'the copy is seen at once; the mappings not yet');
  gnttab_unmap_grant_ref(back.c, { host_addr: m1.host_addr, handle: m1.handle, status: 99 });
  gnttab_unmap_grant_ref(back.c, { host_addr: m3.host_addr, handle: m3.handle, status: 99 });
  t.deepEqual(clean(w, guest).gfns, [mapped], 'a writable mapping marks its page when it ends; a read-only one does not');
  t.deepEqual(clean(w, guest, XEN_DOMCTL_SHADOW_LOGDIRTY_FINAL).gfns, [held], 'one still mapped writably is in the last round');

  // Each domain's log holds its own pages: the backend's has only the page it filled itself (its
  // writes through the grant mappings went to the guest's log, not its own).
  t.deepEqual(clean(w, back).gfns, [own]);
  const bytes = new Uint8Array(1);
  guest.mem.read(copied * PAGE_SIZE + 64, bytes);
  t.is(bytes[0], 0x5a);
});

test('CLEAN without ENABLE is refused; OFF stops the log', (t) => {
  const { w, guest } = setup();
  const bitmap = new Int32Array(PAGES / 32);
  t.is(shadow_op(w.hv, guest.domid, XEN_DOMCTL_SHADOW_OP_CLEAN, 0, bitmap, PAGES), -XEN_EINVAL);
  t.is(enable(w, guest), 0);
  guest.mem.fill(guest.pages.alloc() * PAGE_SIZE, 16, 1);
  t.deepEqual(shadow_op(w.hv, guest.domid, XEN_DOMCTL_SHADOW_OP_OFF, 0, null, 0), { pages: 0, stats: { fault_count: 0, dirty_count: 0 } });
  t.is(shadow_op(w.hv, guest.domid, XEN_DOMCTL_SHADOW_OP_PEEK, 0, bitmap, PAGES), -XEN_EINVAL);
  t.is(shadow_op(w.hv, 63, XEN_DOMCTL_SHADOW_OP_ENABLE_LOGDIRTY, 0, null, 0), -XEN_EINVAL, 'no such domain');
});

test('a destroyed domain takes its log with it: the next owner of its id starts with log-dirty off and no marks', (t) => {
  const { w, guest } = setup();
  guest.mem.pageWords(guest.pages.alloc(), true);
  t.is(enable(w, guest), 0);
  guest.mem.fill(guest.pages.alloc() * PAGE_SIZE, 8, 1);
  w.kill(guest);
  const row = w.hv.logdirty.subarray(guest.domid * LOGDIRTY_STRIDE, (guest.domid + 1) * LOGDIRTY_STRIDE);
  t.true(row.every((v) => v === 0));
});
