/*
 * Grant tables, hypervisor side: map, unmap and copy through another domain's grant entries.
 *
 * Xen: xen/common/grant_table.c (map_grant_ref, unmap_common, gnttab_copy,
 * acquire_grant_for_copy, _set_status, the active_grant_entry and maptrack tables).
 *
 * The granter writes grant_entry_v1 rows into its table (Xen-heap frames it maps into its
 * physmap). The hypervisor never trusts them: at the first use of an entry it checks, in one
 * compare-and-swap on the {flags, domid} word, that the entry permits access, names the caller,
 * and (for a writable use) is not read-only, and sets GTF_reading / GTF_writing in the same
 * step. The granter ends access with the inverse compare-and-swap, which fails while either bit
 * is set: that is why "end access while mapped" fails.
 *
 * While an entry is in use the hypervisor's active entry holds the pin counts and the machine
 * frame resolved at first use, under a per-entry lock (Xen's active_entry_acquire). A host
 * mapping puts the frame into the mapper's P2M at the gfn it names, read-only if asked, and a
 * maptrack handle remembers it for unmap. A copy pins the entries for just the duration of the
 * copy (Xen's transient pin).
 */
import { p2m_pin_private } from './mm/fault.ts';
import {
  GNTCOPY_dest_gref, GNTCOPY_source_gref, GNTMAP_host_map, GNTMAP_readonly, GNTST_bad_copy_arg,
  GNTST_bad_domain, GNTST_bad_gntref, GNTST_bad_handle, GNTST_bad_page, GNTST_bad_virt_addr,
  GNTST_general_error, GNTST_okay, GNTST_permission_denied, GTF_permit_access, GTF_readonly,
  GTF_reading, GTF_type_mask, GTF_writing, gntent_flags_word, gntent_frame_word, type GnttabCopy, type GnttabCopyPtr, type GnttabMapGrantRef,
  type GnttabUnmapGrantRef,
} from '../shared/public/grant_table.ts';
import { DOMID_SELF, PAGE_SIZE } from '../shared/public/xen.ts';
import { spin_lock, spin_unlock } from './spinlock.ts';
import type { Caller } from './caller.ts';
import { gnttab_mark_dirty, paging_mark_dirty } from './mm/log-dirty.ts';
import { p2m_take_back } from './guest-memory.ts';
import { frameOwner, get_page, put_page } from './page-alloc.ts';
import {
  A, D, DOMSTATE_DYING, DOMSTATE_FREE, GNTPIN_hstr_inc, GNTPIN_hstw_inc,
  GNTPIN_hstw_mask, GRANT_FRAMES, M, MAPTRACK_ENTRIES, MAX_DOMAINS, MAX_GUEST_PAGES, MT_INUSE,
  NR_GRANT_ENTRIES, P2M_FOREIGN, P2M_MFN_MASK, P2M_PRESENT, P2M_READONLY, P2M_RESERVED,
  type HypervisorState,
} from './state.ts';

const GNTST_no_device_space = -7;

const act = (d: number, ref: number) => (d * NR_GRANT_ENTRIES + ref) * A.WORDS;
const mt = (d: number, handle: number) => (d * MAPTRACK_ENTRIES + handle) * M.WORDS;

/**
 * Pin entry `ref` of domain `rd` for `ld`: check the shared entry the first time (or the first
 * time for writing), resolve its frame, count the pin. Returns the machine frame, or a GNTST_*
 * code (< 0). The liveness check sits under the entry lock: destroy takes and drops every entry
 * lock after marking the domain dying, so once it has, no pin can succeed on that domain.
 */
function pin(hv: HypervisorState, ld: number, rd: number, ref: number, readonly: boolean): number {
  const a = act(rd, ref);
  spin_lock(hv.active, a + A.LOCK);
  try {
    if (!hv.isAlive(rd)) return GNTST_bad_domain;
    const pinned = hv.active[a + A.PIN];
    if (pinned !== 0 && hv.active[a + A.DOMID] !== ld) return GNTST_general_error;
    if (pinned === 0 || (!readonly && (pinned & GNTPIN_hstw_mask) === 0)) {
      const rc = set_status(hv.grantTable[rd], ref, ld, readonly);
      if (rc !== GNTST_okay) return rc;
    }
    if (pinned === 0) {
      const mfn = resolveFrame(hv, rd, hv.grantTable[rd][gntent_frame_word(ref)]);
      if (mfn < 0) {
        clear_status(hv.grantTable[rd], ref, 0);
        return GNTST_bad_page;
      }
      hv.active[a + A.DOMID] = ld;
      hv.active[a + A.MFN] = mfn;
      Atomics.add(hv.domains, rd * D.WORDS + D.PINNED, 1);
    }
    hv.active[a + A.PIN] = pinned + (readonly ? GNTPIN_hstr_inc : GNTPIN_hstw_inc);
    return hv.active[a + A.MFN];
  } finally {
    spin_unlock(hv.active, a + A.LOCK);
  }
}

/** Drop one pin taken by pin(); clear the in-use bits the shared entry no longer needs. */
function unpin(hv: HypervisorState, rd: number, ref: number, readonly: boolean): void {
  const a = act(rd, ref);
  spin_lock(hv.active, a + A.LOCK);
  const left = hv.active[a + A.PIN] - (readonly ? GNTPIN_hstr_inc : GNTPIN_hstw_inc);
  hv.active[a + A.PIN] = left;
  clear_status(hv.grantTable[rd], ref, left);
  spin_unlock(hv.active, a + A.LOCK);
  if (left === 0) lastPinGone(hv, rd);
}

/**
 * _set_status for v1: atomically check {type, domid, readonly} and set the in-use bits.
 * The granter may rewrite the entry at any moment, so the check and the update are one CAS.
 */
function set_status(gt: Uint32Array, ref: number, ld: number, readonly: boolean): number {
  for (;;) {
    const w = gntent_flags_word(ref);
    const scombo = Atomics.load(gt, w);
    const flags = scombo & 0xffff;
    const domid = scombo >>> 16;
    if ((flags & GTF_type_mask) !== GTF_permit_access || domid !== ld) return GNTST_permission_denied;
    if (!readonly && (flags & GTF_readonly) !== 0) return GNTST_permission_denied;
    const want = flags | GTF_reading | (readonly ? 0 : GTF_writing);
    if (Atomics.compareExchange(gt, w, scombo, ((domid << 16) | want) >>> 0) === scombo) return GNTST_okay;
  }
}

/** Clear GTF_writing once no writable pin is left, GTF_reading once no pin at all is left. */
function clear_status(gt: Uint32Array, ref: number, pinLeft: number): void {
  let clear = 0;
  if ((pinLeft & GNTPIN_hstw_mask) === 0) clear |= GTF_writing;
  if (pinLeft === 0) clear |= GTF_reading;
  if (clear !== 0) Atomics.and(gt, gntent_flags_word(ref), ~clear);
}

/** The granter's gfn → a machine frame it owns, or -1 (not RAM of its own: refused). */
function resolveFrame(hv: HypervisorState, rd: number, gfn: number): number {
  if (gfn >= MAX_GUEST_PAGES) return -1;
  // Resident, private and pinned first: a granted page is not shared or paged (mm/fault.ts).
  const e = p2m_pin_private(hv, rd, gfn);
  if ((e & P2M_PRESENT) === 0 || (e & P2M_FOREIGN) !== 0) return -1;
  const mfn = e & P2M_MFN_MASK;
  return frameOwner(hv, mfn) === rd ? mfn : -1;
}

/** The last pin on one of rd's entries went away: if rd is a zombie, this may free its slot. */
function lastPinGone(hv: HypervisorState, rd: number): void {
  const base = rd * D.WORDS;
  if (Atomics.sub(hv.domains, base + D.PINNED, 1) === 1 && Atomics.load(hv.domains, base + D.TEARDOWN_DONE) === 1) {
    Atomics.compareExchange(hv.domains, base + D.STATE, DOMSTATE_DYING, DOMSTATE_FREE);
  }
}

function validRef(ref: number): boolean {
  return Number.isInteger(ref) && ref >= 0 && ref < NR_GRANT_ENTRIES;
}

function validDom(d: number): boolean {
  return Number.isInteger(d) && d >= 0 && d < MAX_DOMAINS;
}

/** GNTTABOP_map_grant_ref. */
export function gnttab_map_grant_ref(c: Caller, op: GnttabMapGrantRef): void {
  const hv = c.hv;
  const ld = c.domid;
  op.handle = -1;
  c.count('grant_maps');
  if ((op.flags & GNTMAP_host_map) === 0) { op.status = GNTST_bad_gntref; return; }
  if (!validDom(op.dom)) { op.status = GNTST_bad_domain; return; }
  if (!validRef(op.ref)) { op.status = GNTST_bad_gntref; return; }
  const gfn = op.host_addr;
  if (!Number.isInteger(gfn) || gfn < 0 || gfn >= MAX_GUEST_PAGES) { op.status = GNTST_bad_virt_addr; return; }
  // Claim the hole in our physmap first, so two vCPUs cannot map onto the same gfn.
  const p2mIndex = ld * MAX_GUEST_PAGES + gfn;
  if (Atomics.compareExchange(hv.p2m, p2mIndex, 0, P2M_RESERVED) !== 0) { op.status = GNTST_bad_virt_addr; return; }
  const handle = maptrack_alloc(hv, ld);
  if (handle < 0) {
    Atomics.store(hv.p2m, p2mIndex, 0);
    op.status = GNTST_no_device_space;
    return;
  }
  const readonly = (op.flags & GNTMAP_readonly) !== 0;
  const mfn = pin(hv, ld, op.dom, op.ref, readonly);
  if (mfn < 0) {
    maptrack_free(hv, ld, handle);
    Atomics.store(hv.p2m, p2mIndex, 0);
    op.status = mfn;
    return;
  }
  get_page(hv, mfn);
  const m = mt(ld, handle);
  hv.maptrack[m + M.DOM] = op.dom;
  hv.maptrack[m + M.REF] = op.ref;
  hv.maptrack[m + M.GFN] = gfn;
  Atomics.store(hv.maptrack, m + M.FLAGS, MT_INUSE | (readonly ? GNTMAP_readonly : 0));
  Atomics.store(hv.p2m, p2mIndex, (mfn | P2M_PRESENT | P2M_FOREIGN | (readonly ? P2M_READONLY : 0)) >>> 0);
  op.handle = handle;
  op.status = GNTST_okay;
}

/** GNTTABOP_unmap_grant_ref. */
export function gnttab_unmap_grant_ref(c: Caller, op: GnttabUnmapGrantRef): void {
  c.count('grant_unmaps');
  op.status = unmap_handle(c.hv, c.domid, op.handle, op.host_addr);
}

function unmap_handle(hv: HypervisorState, ld: number, handle: number, gfn: number): number {
  if (!Number.isInteger(handle) || handle < 0 || handle >= MAPTRACK_ENTRIES) return GNTST_bad_handle;
  const m = mt(ld, handle);
  const flags = Atomics.load(hv.maptrack, m + M.FLAGS);
  if ((flags & MT_INUSE) === 0) return GNTST_bad_handle;
  if (hv.maptrack[m + M.GFN] !== gfn) return GNTST_bad_virt_addr;
  // Claim the handle so a racing unmap of the same handle fails instead of unpinning twice.
  if (Atomics.compareExchange(hv.maptrack, m + M.FLAGS, flags, 0) !== flags) return GNTST_bad_handle;
  const rd = hv.maptrack[m + M.DOM];
  const ref = hv.maptrack[m + M.REF];
  const p2mIndex = ld * MAX_GUEST_PAGES + gfn;
  const mfn = hv.p2m[p2mIndex] & P2M_MFN_MASK;
  Atomics.store(hv.p2m, p2mIndex, 0);
  // The mapper's views of this gfn fault from their next use on (guest-memory.ts, "Taking a
  // frame back"), before the granter can get the frame back by ending its grant.
  p2m_take_back(hv, ld);
  if ((flags & GNTMAP_readonly) === 0) gnttab_mark_dirty(hv, rd, ref); // the mapper may have written it
  unpin(hv, rd, ref, (flags & GNTMAP_readonly) !== 0);
  put_page(hv, mfn);
  maptrack_free(hv, ld, handle);
  return GNTST_okay;
}

/**
 * GNTTABOP_copy: a batch of copies, each within one page on each side.
 *
 * As Xen's gnttab_copy since 4.6 (gnttab_copy_one with gnttab_copy_buf_valid / _claim_buf /
 * _release_buf): each side's frame is kept from one op to the next while the next op names the
 * same thing (the same grant of the same domain, or the same local gfn), and let go when an op
 * names another or the batch ends. So the ops a backend makes into one buffer (netback's rx
 * copies of a frame's linear part and of its frags into one posted page) pin that grant once.
 * Every op is still checked on its own (lengths, offsets, a failure is that op's status).
 */
export function gnttab_copy(c: Caller, ops: readonly GnttabCopy[], count: number): void {
  const hv = c.hv;
  c.count('grant_copies', count);
  const src = copyBufs[0];
  const dst = copyBufs[1];
  src.held = dst.held = false;
  try {
    for (let i = 0; i < count; i++) {
      const op = ops[i];
      const len = op.len;
      if (!Number.isInteger(len) || len < 0
        || !(op.source.offset >= 0 && op.source.offset + len <= PAGE_SIZE)
        || !(op.dest.offset >= 0 && op.dest.offset + len <= PAGE_SIZE)) {
        op.status = GNTST_bad_copy_arg;
        continue;
      }
      const srcGref = (op.flags & GNTCOPY_source_gref) !== 0;
      const dstGref = (op.flags & GNTCOPY_dest_gref) !== 0;
      const s = claim(c, src, op.source, srcGref, true);
      if (s < 0) { op.status = s; continue; }
      const d = claim(c, dst, op.dest, dstGref, false);
      if (d < 0) { op.status = d; continue; }
      hv.mem8.copyWithin(d * PAGE_SIZE + op.dest.offset, s * PAGE_SIZE + op.source.offset, s * PAGE_SIZE + op.source.offset + len);
      if (dstGref) gnttab_mark_dirty(hv, op.dest.domid, op.dest.ref); else paging_mark_dirty(hv, c.domid, op.dest.gfn);
      c.count('grant_copy_bytes', len);
      op.status = GNTST_okay;
    }
  } finally {
    release(hv, src);
    release(hv, dst);
  }
}

/** One side's frame kept between ops (Xen's struct gnttab_copy_buf): what it names, and its frame. */
interface CopyBuf { held: boolean; gref: boolean; domid: number; key: number; readonly: boolean; mfn: number }
const copyBufs: CopyBuf[] = [
  { held: false, gref: false, domid: 0, key: 0, readonly: true, mfn: 0 },
  { held: false, gref: false, domid: 0, key: 0, readonly: false, mfn: 0 },
];

/** gnttab_copy_buf_valid, else _release_buf + _claim_buf: the frame for `p`, or a GNTST_* code. */
function claim(c: Caller, b: CopyBuf, p: GnttabCopyPtr, isGref: boolean, readonly: boolean): number {
  const key = isGref ? p.ref : p.gfn;
  if (b.held && b.gref === isGref && b.domid === p.domid && b.key === key) return b.mfn;
  release(c.hv, b);
  const mfn = acquire(c, p, isGref, readonly);
  if (mfn < 0) return mfn;
  b.held = true;
  b.gref = isGref;
  b.domid = p.domid;
  b.key = key;
  b.readonly = readonly;
  b.mfn = mfn;
  return mfn;
}

/** gnttab_copy_release_buf: drop a grant's transient pin (a local frame needs nothing). */
function release(hv: HypervisorState, b: CopyBuf): void {
  if (!b.held) return;
  b.held = false;
  if (b.gref) unpin(hv, b.domid, b.key, b.readonly);
}

/** One side of a copy → machine frame (pinned if it is a grant), or a GNTST_* code. */
function acquire(c: Caller, p: GnttabCopyPtr, isGref: boolean, readonly: boolean): number {
  if (isGref) {
    if (!validDom(p.domid)) return GNTST_bad_domain;
    if (!validRef(p.ref)) return GNTST_bad_gntref;
    return pin(c.hv, c.domid, p.domid, p.ref, readonly);
  }
  // A plain gfn must be the caller's own RAM (Xen also lets a privileged caller name others').
  if (p.domid !== DOMID_SELF && p.domid !== c.domid) return GNTST_permission_denied;
  if (!Number.isInteger(p.gfn) || p.gfn < 0 || p.gfn >= MAX_GUEST_PAGES) return GNTST_bad_page;
  const e = p2m_pin_private(c.hv, c.domid, p.gfn);
  if ((e & P2M_PRESENT) === 0 || (!readonly && (e & P2M_READONLY) !== 0)) return GNTST_bad_page;
  return e & P2M_MFN_MASK;
}

/* The maptrack free list: a singly linked list threaded through the free entries' GFN word. */
function maptrack_alloc(hv: HypervisorState, d: number): number {
  const lock = d * D.WORDS + D.MAPTRACK_LOCK;
  spin_lock(hv.domains, lock);
  let handle = -1;
  const used = hv.domains[d * D.WORDS + D.MAPTRACK_USED];
  const head = hv.domains[d * D.WORDS + D.MAPTRACK_FREE];
  if (head !== 0) {
    handle = head - 1;
    hv.domains[d * D.WORDS + D.MAPTRACK_FREE] = hv.maptrack[mt(d, handle) + M.GFN];
  } else if (used < MAPTRACK_ENTRIES) {
    handle = used; // never used before: the list is empty but the table is not full
  }
  if (handle >= 0) hv.domains[d * D.WORDS + D.MAPTRACK_USED] = Math.max(used, handle + 1);
  spin_unlock(hv.domains, lock);
  return handle;
}

function maptrack_free(hv: HypervisorState, d: number, handle: number): void {
  const lock = d * D.WORDS + D.MAPTRACK_LOCK;
  spin_lock(hv.domains, lock);
  hv.maptrack[mt(d, handle) + M.GFN] = hv.domains[d * D.WORDS + D.MAPTRACK_FREE];
  hv.domains[d * D.WORDS + D.MAPTRACK_FREE] = handle + 1;
  spin_unlock(hv.domains, lock);
}

/** Teardown, mapper side: a dying domain lets go of every grant it has mapped. */
export function gnttab_release_mappings(hv: HypervisorState, d: number): void {
  const used = hv.domains[d * D.WORDS + D.MAPTRACK_USED];
  for (let h = 0; h < used; h++) {
    const m = mt(d, h);
    if ((hv.maptrack[m + M.FLAGS] & MT_INUSE) !== 0) unmap_handle(hv, d, h, hv.maptrack[m + M.GFN]);
  }
  hv.maptrack.fill(0, mt(d, 0), mt(d, MAPTRACK_ENTRIES));
  hv.domains[d * D.WORDS + D.MAPTRACK_FREE] = 0;
  hv.domains[d * D.WORDS + D.MAPTRACK_USED] = 0;
}

/**
 * Teardown, granter side: after the domain is marked dying, take and drop every entry lock.
 * Any pin that saw the domain alive did so under one of these locks and has finished by the
 * time we pass it, so afterwards no new pin can start on this domain.
 */
export function gnttab_fence(hv: HypervisorState, d: number): void {
  for (let ref = 0; ref < NR_GRANT_ENTRIES; ref++) {
    const a = act(d, ref);
    spin_lock(hv.active, a + A.LOCK);
    spin_unlock(hv.active, a + A.LOCK);
  }
}

/** Grant entries of `d` currently pinned by someone, for the leak report. */
export function grantsActive(hv: HypervisorState, d: number): number {
  return Atomics.load(hv.domains, d * D.WORDS + D.PINNED);
}

/**
 * Grant entries `d` has made valid (GTF_permit_access set) in its table now: what a guest is
 * granting, mapped or not, read from the frames the hypervisor owns (a test's bound on a
 * frontend's grants; Xen shows the same through the 'g' debug key, gnttab_usage_print).
 */
export function grantsIssued(hv: HypervisorState, d: number): number {
  const t = hv.grantTable[d];
  let n = 0;
  for (let ref = 0; ref < NR_GRANT_ENTRIES; ref++) if ((Atomics.load(t, gntent_flags_word(ref)) & GTF_permit_access) !== 0) n++;
  return n;
}

/** Grant mappings `d` holds of others' pages. */
export function mappingsHeld(hv: HypervisorState, d: number): number {
  let n = 0;
  const used = hv.domains[d * D.WORDS + D.MAPTRACK_USED];
  for (let h = 0; h < used; h++) if ((hv.maptrack[mt(d, h) + M.FLAGS] & MT_INUSE) !== 0) n++;
  return n;
}

export const GRANT_TABLE_FRAMES = GRANT_FRAMES;
