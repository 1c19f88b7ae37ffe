/*
 * Log-dirty mode: a bitmap of the guest frames a domain has had written since the last round, for
 * live migration's precopy (and for save, whose single round needs none of it).
 *
 * Xen: xen/arch/x86/mm/paging.c (paging_log_dirty_enable, paging_mark_dirty, paging_log_dirty_op
 * behind XEN_DOMCTL_shadow_op CLEAN / PEEK) and grant_table.c's gnttab_mark_dirty. Xen makes every
 * RAM entry of the P2M read-only (p2m_ram_logdirty), takes the first write to each page as a fault,
 * sets the page's bit and makes the entry writable again; each CLEAN re-protects the pages. Here the
 * write gate (hypervisor/guest-memory.ts) is the fault: every writable page view, when it is made
 * or refilled, passes it with write = true and is marked (log_dirty_write()); every write call is
 * checked there and marked once its bytes have landed (log_dirty_written(): a mark made before
 * the copy could be taken by a CLEAN before the bytes arrived, and the page lost). CLEAN bumps the P2M generation (p2m_take_back), so every GuestPage view goes
 * back through the gate at its next request and a writable one is marked again, as re-protecting
 * the P2M makes the next write fault again.
 *
 * Writes the gate cannot see, and how they are caught, as in Xen:
 *   - a backend's writes into this domain's frames through a grant: a grant copy marks its
 *     destination (gnttab_copy); a writable grant mapping marks its page when it is unmapped
 *     (unmap_common_complete), and, while it is still mapped, in the last round (FINAL below);
 *   - the older unchecked views, page() and pageWords(), which are made once and kept (ring pages,
 *     shared info), and writable GuestPage views of the domain's own RAM (whose writes after a CLEAN
 *     are seen only at their next request): the gate records each writable one in a second bitmap, and the last round
 *     (XEN_DOMCTL_SHADOW_LOGDIRTY_FINAL, taken with the guest suspended) adds them all, as Xen's
 *     FINAL adds the pages it has mapped writably itself. That bitmap is never cleared (views are
 *     not unmapped), so such pages cost the stop-and-copy a little and are never missed.
 *   - not covered yet: a device model's foreign mappings (QEMU tells Xen with
 *     XEN_DMOP_modified_memory); an HVM guest's emulated DMA is not logged.
 *
 * The state is one row per domain in the `logdirty` SharedArrayBuffer (hypervisor/state.ts): a
 * header, the dirty bitmap, the writable-view bitmap, one bit per gfn of the domain's window. The
 * check on the write path when log-dirty is off is one load of the row's ENABLED word.
 */
import {
  XEN_DOMCTL_SHADOW_LOGDIRTY_FINAL, XEN_DOMCTL_SHADOW_OP_CLEAN, XEN_DOMCTL_SHADOW_OP_ENABLE_LOGDIRTY,
  XEN_DOMCTL_SHADOW_OP_OFF, XEN_DOMCTL_SHADOW_OP_PEEK, type ShadowOpResult,
} from '../../shared/public/domctl.ts';
import { gntent_frame_word } from '../../shared/public/grant_table.ts';
import { XEN_EINVAL } from '../../shared/public/xen.ts';
import { p2m_take_back } from '../guest-memory.ts';
import {
  A, GNTPIN_hstw_mask, LOGDIRTY_HEADER, LOGDIRTY_STRIDE, MAX_GUEST_PAGES, NR_GRANT_ENTRIES, P2M_FOREIGN, P2M_PRESENT,
  type HypervisorState,
} from '../state.ts';

/*
 * One domain's row (LOGDIRTY_STRIDE words): LOGDIRTY_HEADER words, a cache line, so the ENABLED
 * word every write reads shares it with no bitmap word; then the dirty bitmap; then the
 * writable-view bitmap.
 */
export const LD = {
  ENABLED: 0,      // 1 while log-dirty is on
  FAULT_COUNT: 1,  // stats.fault_count since the last CLEAN
} as const;
const BITMAP_WORDS = MAX_GUEST_PAGES / 32;
const DIRTY = LOGDIRTY_HEADER;
const VIEWS = LOGDIRTY_HEADER + BITMAP_WORDS;

/** Set gfn's bit in one of d's bitmaps; true if it was clear. */
function setBit(hv: HypervisorState, d: number, which: number, gfn: number): boolean {
  const w = d * LOGDIRTY_STRIDE + which + (gfn >>> 5);
  const bit = 1 << (gfn & 31);
  // A page written again in the same round costs a load, not a locked RMW.
  if ((hv.logdirty[w] & bit) !== 0) return false;
  return (Atomics.or(hv.logdirty, w, bit) & bit) === 0;
}

/** paging_mark_dirty: gfn of domain d was written (by d, or by someone through a grant). */
export function paging_mark_dirty(hv: HypervisorState, d: number, gfn: number): void {
  if (hv.logdirty[d * LOGDIRTY_STRIDE + LD.ENABLED] === 0) return;
  if (gfn < 0 || gfn >= MAX_GUEST_PAGES) return;
  setBit(hv, d, DIRTY, gfn);
}

/**
 * The write gate's hook (guest-memory.ts, Gate.translate with write = true): domain d writes gfn,
 * whose P2M entry is e. A foreign entry is another domain's frame seen through a grant or a
 * foreign mapping: the grant paths mark that domain's page (see the header).
 */
export function log_dirty_write(hv: HypervisorState, d: number, gfn: number, e: number): void {
  if (hv.logdirty[d * LOGDIRTY_STRIDE + LD.ENABLED] === 0 || (e & P2M_FOREIGN) !== 0) return;
  if (setBit(hv, d, DIRTY, gfn)) Atomics.add(hv.logdirty, d * LOGDIRTY_STRIDE + LD.FAULT_COUNT, 1);
}

/**
 * The write gate's hook after a write call's bytes have landed (guest-memory.ts, Gate.written). Always
 * the locked RMW, never setBit's plain load: it orders the bytes before the bit's test, so a CLEAN
 * that takes the bit (and a sender that then reads the page) comes after them; a CLEAN that came
 * before finds the bit clear and this sets it for the next round. A thread stopped anywhere in a
 * write call therefore loses nothing: the race of a mark made before the copy (a page sent without
 * the bytes a preempted vCPU wrote just after the CLEAN, and never logged again) cannot happen.
 */
export function log_dirty_written(hv: HypervisorState, d: number, gfn: number, e: number): void {
  if (hv.logdirty[d * LOGDIRTY_STRIDE + LD.ENABLED] === 0 || (e & P2M_FOREIGN) !== 0) return;
  const bit = 1 << (gfn & 31);
  if ((Atomics.or(hv.logdirty, d * LOGDIRTY_STRIDE + DIRTY + (gfn >>> 5), bit) & bit) === 0) {
    Atomics.add(hv.logdirty, d * LOGDIRTY_STRIDE + LD.FAULT_COUNT, 1);
  }
}

/**
 * The gate's hook for a writable unchecked view (page(), pageWords()): writes through it will not
 * pass the gate again, so remember the page for the last round. Recorded whether or not log-dirty
 * is on: the view outlives the moment it is made.
 */
export function log_dirty_view(hv: HypervisorState, d: number, gfn: number): void {
  const e = hv.p2m[d * MAX_GUEST_PAGES + gfn];
  if ((e & P2M_PRESENT) !== 0 && (e & P2M_FOREIGN) === 0) setBit(hv, d, VIEWS, gfn);
}

/** paging_final_teardown: a domain's log-dirty state goes with it (domain_kill), so its id's next owner starts clean. */
export function log_dirty_teardown(hv: HypervisorState, d: number): void {
  const row = d * LOGDIRTY_STRIDE;
  Atomics.store(hv.logdirty, row + LD.ENABLED, 0);
  // Word by word, writing only what is set: a fill would commit every page of a row never used.
  for (let i = row; i < row + LOGDIRTY_STRIDE; i++) if (hv.logdirty[i] !== 0) hv.logdirty[i] = 0;
}

/** gnttab_mark_dirty: a backend wrote rd's page through grant `ref` (a copy, or a writable mapping ending). */
export function gnttab_mark_dirty(hv: HypervisorState, rd: number, ref: number): void {
  if (hv.logdirty[rd * LOGDIRTY_STRIDE + LD.ENABLED] === 0) return;
  paging_mark_dirty(hv, rd, hv.grantTable[rd][gntent_frame_word(ref)]);
}

/**
 * XEN_DOMCTL_shadow_op for log-dirty: OFF, ENABLE_LOGDIRTY, CLEAN, PEEK. `bitmap` receives one bit
 * per gfn for the first `pages` gfns (CLEAN / PEEK). The caller checked that it may (privileged).
 */
export function shadow_op(hv: HypervisorState, d: number, op: number, mode: number, bitmap: Int32Array | null, pages: number): ShadowOpResult | number {
  if (!hv.isAlive(d)) return -XEN_EINVAL;
  const row = d * LOGDIRTY_STRIDE;
  const on = Atomics.load(hv.logdirty, row + LD.ENABLED) !== 0;
  const none: ShadowOpResult = { pages: 0, stats: { fault_count: 0, dirty_count: 0 } };
  switch (op) {
    case XEN_DOMCTL_SHADOW_OP_OFF:
      Atomics.store(hv.logdirty, row + LD.ENABLED, 0);
      hv.logdirty.fill(0, row + DIRTY, row + VIEWS);
      return none;
    case XEN_DOMCTL_SHADOW_OP_ENABLE_LOGDIRTY:
      if (on) return -XEN_EINVAL; // paging_log_dirty_enable refuses a second enable
      hv.logdirty.fill(0, row + DIRTY, row + VIEWS);
      Atomics.store(hv.logdirty, row + LD.FAULT_COUNT, 0);
      Atomics.store(hv.logdirty, row + LD.ENABLED, 1);
      // Views made before now go back through the gate at their next request and are seen writing.
      p2m_take_back(hv, d);
      return none;
    case XEN_DOMCTL_SHADOW_OP_CLEAN:
    case XEN_DOMCTL_SHADOW_OP_PEEK: {
      if (!on) return -XEN_EINVAL;
      if (bitmap === null || !Number.isInteger(pages) || pages < 0) return -XEN_EINVAL;
      const n = Math.min(pages, MAX_GUEST_PAGES, bitmap.length * 32);
      const clean = op === XEN_DOMCTL_SHADOW_OP_CLEAN;
      if ((mode & XEN_DOMCTL_SHADOW_LOGDIRTY_FINAL) !== 0) markWritablyMapped(hv, d);
      let dirty = 0;
      const words = Math.ceil(n / 32);
      for (let i = 0; i < words; i++) {
        // Exchange, not read-then-clear: a mark landing between the two would be lost.
        let v = clean ? Atomics.exchange(hv.logdirty, row + DIRTY + i, 0) : Atomics.load(hv.logdirty, row + DIRTY + i);
        if (i === words - 1 && (n & 31) !== 0) v &= (1 << (n & 31)) - 1;
        bitmap[i] = v;
        dirty += popcount(v);
      }
      const fault_count = clean ? Atomics.exchange(hv.logdirty, row + LD.FAULT_COUNT, 0) : Atomics.load(hv.logdirty, row + LD.FAULT_COUNT);
      // Re-protect: every writable view passes the gate, and is marked, at its next request.
      if (clean) p2m_take_back(hv, d);
      return { pages: n, stats: { fault_count, dirty_count: dirty } };
    }
    default:
      return -XEN_EINVAL;
  }
}

/** LOGDIRTY_FINAL: the pages written where the log cannot see each write (see the header). */
function markWritablyMapped(hv: HypervisorState, d: number): void {
  const row = d * LOGDIRTY_STRIDE;
  for (let i = 0; i < BITMAP_WORDS; i++) {
    const v = hv.logdirty[row + VIEWS + i];
    if (v !== 0) Atomics.or(hv.logdirty, row + DIRTY + i, v);
  }
  const gt = hv.grantTable[d];
  for (let ref = 0; ref < NR_GRANT_ENTRIES; ref++) {
    const pin = Atomics.load(hv.active, (d * NR_GRANT_ENTRIES + ref) * A.WORDS + A.PIN);
    if ((pin & GNTPIN_hstw_mask) !== 0) paging_mark_dirty(hv, d, gt[gntent_frame_word(ref)]);
  }
}

function popcount(v: number): number {
  v -= (v >>> 1) & 0x55555555;
  v = (v & 0x33333333) + ((v >>> 2) & 0x33333333);
  return (((v + (v >>> 4)) & 0x0f0f0f0f) * 0x01010101) >>> 24;
}

/** Is gfn's bit set in a bitmap CLEAN or PEEK returned? */
export function test_bit(bitmap: Int32Array, gfn: number): boolean {
  return (bitmap[gfn >>> 5] & (1 << (gfn & 31))) !== 0;
}
