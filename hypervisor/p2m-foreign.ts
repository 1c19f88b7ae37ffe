/*
 * Foreign mappings: the control domain putting another domain's frames into its own physmap.
 *
 * Xen: XENMEM_add_to_physmap_batch with XENMAPSPACE_gmfn_foreign (xen/arch/x86/mm/p2m.c
 * p2m_add_foreign: get_page on the foreign frame, a p2m_map_foreign entry), which Linux's privcmd
 * uses for IOCTL_PRIVCMD_MMAPBATCH and QEMU's mapcache for guest RAM; XENMEM_remove_from_physmap
 * to undo it; XENMEM_acquire_resource maps hypervisor-allocated pages (an ioreq server's) the
 * same way. This is how a device model reads and writes a guest's memory "through the
 * hypervisor": it names the guest's gfn, never a machine frame.
 *
 * How it fits: the mapping is a P2M entry of the mapper marked P2M_FOREIGN, as a grant mapping is,
 * so the mapper's DomainMemory reaches the frame like any other page; a bit in the mapper's row
 * of `hv.foreignmap` says "this one came from here", which is what lets remove_from_physmap refuse
 * to touch RAM or grant mappings. Each mapping holds a page reference (page-alloc.ts get_page),
 * so a frame whose owner dies stays allocated (orphaned) until the last mapping goes, exactly as
 * a grant-mapped frame does.
 *
 * Unlike a grant, nothing asks the owner: only the control domain may do this (Xen: XSM's
 * dm/privcmd checks). And unlike Xen, the owner does not linger as a zombie while Dom0 maps its
 * frames: its slot frees, and only the frames wait for the unmap.
 *
 * Race with the owner's teardown: the frame is looked up and referenced under the owner's ioreq
 * lock after checking it is alive; domain_kill marks the domain dying and then takes and drops
 * that lock (ioreq.ts hvm_domain_kill) before it frees frames, so every lookup that saw the owner
 * alive has taken its reference by then, and no later one can.
 */
import { p2m_pin_private, p2m_unpin_foreign } from './mm/fault.ts';
import { DOMID_SELF, XEN_EEXIST, XEN_EINVAL, XEN_EPERM, XEN_ESRCH } from '../shared/public/xen.ts';
import { spin_lock, spin_unlock } from './spinlock.ts';
import type { Caller } from './caller.ts';
import { p2m_take_back } from './guest-memory.ts';
import { frameOwner, get_page, put_page } from './page-alloc.ts';
import { p2m_fault } from './mm/fault.ts';
import { FOREIGN_WAIT_MS, waitForPager } from './mm/pager-wait.ts';
import {
  F, FOREIGNMAP_WORDS, IO, MAX_DOMAINS, MAX_GUEST_PAGES, P2M_FOREIGN, P2M_MFN_MASK, P2M_PAGED, P2M_PINNED, P2M_POD, P2M_PRESENT, P2M_RESERVED,
  type HypervisorState,
} from './state.ts';

const validGfn = (gfn: number) => Number.isInteger(gfn) && gfn >= 0 && gfn < MAX_GUEST_PAGES;

/**
 * Map at our hole `gpfn` the frame `pick` chooses in domain `fd`. `pick` runs under fd's ioreq
 * lock with fd known alive; it returns a machine frame it has taken a reference on, or -errno.
 */
export function map_foreign_frame(c: Caller, gpfn: number, fd: number, pick: (hv: HypervisorState) => number): number {
  const hv = c.hv;
  if (!validGfn(gpfn)) return -XEN_EINVAL;
  if (!(Number.isInteger(fd) && fd >= 0 && fd < MAX_DOMAINS) || fd === c.domid) return -XEN_EINVAL;
  // Claim the hole first, so two vCPUs cannot map onto the same gfn (as gnttab_map does).
  const slot = c.domid * MAX_GUEST_PAGES + gpfn;
  if (Atomics.compareExchange(hv.p2m, slot, 0, P2M_RESERVED) !== 0) return -XEN_EEXIST;
  const lock = fd * IO.WORDS + IO.LOCK;
  spin_lock(hv.ioreq, lock);
  const mfn = hv.isAlive(fd) ? pick(hv) : -XEN_ESRCH;
  spin_unlock(hv.ioreq, lock);
  if (mfn < 0) {
    Atomics.store(hv.p2m, slot, 0);
    return mfn;
  }
  // The entry first, then the bit: remove_from_physmap trusts the bit, so it must never see one
  // whose entry is still the reservation.
  Atomics.store(hv.p2m, slot, (mfn | P2M_PRESENT | P2M_FOREIGN) >>> 0);
  Atomics.or(hv.foreignmap, c.domid * FOREIGNMAP_WORDS + (gpfn >>> 5), 1 << (gpfn & 31));
  c.count('foreign_maps');
  return 0;
}

/** XENMAPSPACE_gmfn_foreign for one frame: `fd`'s gfn at our `gpfn`. */
function gmfn_foreign(c: Caller, fd: number, gfn: number, gpfn: number): number {
  if (!validGfn(gfn)) return -XEN_EINVAL;
  pageInForeign(c.hv, fd, gfn);
  return map_foreign_frame(c, gpfn, fd, (hv) => {
    for (;;) {
      // Resident, private, and kept so while mapped (mm/fault.ts); the last unmap unpins it.
      const e = p2m_pin_private(hv, fd, gfn, true);
      // Only the owner's own RAM: not a hole, not something it has itself mapped from elsewhere.
      if ((e & P2M_PRESENT) === 0 || (e & P2M_FOREIGN) !== 0) return -XEN_EINVAL;
      const mfn = e & P2M_MFN_MASK;
      if (frameOwner(hv, mfn) !== fd) return -XEN_EINVAL;
      get_page(hv, mfn);
      Atomics.store(hv.frames, mfn * F.WORDS + F.GFN, gfn + 1); // the M2P entry its unmap reads
      Atomics.add(hv.frames, mfn * F.WORDS + F.MAPS, 1);
      // The pin found on may have been the last other mapping's, taken off just now: while this
      // mapping holds the frame its entry stays pinned, and still maps this frame.
      const now = p2m_pin_private(hv, fd, gfn, true);
      if ((now & P2M_MFN_MASK) === mfn && (now & (P2M_PRESENT | P2M_PINNED)) === (P2M_PRESENT | P2M_PINNED)) return mfn;
      put_page(hv, mfn); // paged out and in meanwhile: map the frame it has now
    }
  });
}

/*
 * A gfn that is paged out (or not yet populated) needs a frame before it can be mapped. On a host
 * short of frames, while a pager runs, wait for the pager's next batch and try again, outside any
 * lock, as a guest's own fault does (mm/pager-wait.ts). Xen answers such a mapping -ENOENT after
 * asking xenpaging for the page, and libxenforeignmemory retries the paged-out frames until they
 * are in; the save of a guest on a host that is paging (a pool moving it away) meets exactly this.
 */
function pageInForeign(hv: HypervisorState, fd: number, gfn: number): void {
  if (!(Number.isInteger(fd) && fd >= 0 && fd < MAX_DOMAINS) || !hv.isAlive(fd)) return;
  const idx = fd * MAX_GUEST_PAGES + gfn;
  while ((Atomics.load(hv.p2m, idx) & (P2M_PAGED | P2M_POD)) !== 0 && p2m_fault(hv, fd, gfn, true) < 0) {
    if (!waitForPager(hv, FOREIGN_WAIT_MS)) return; // no pager, or it freed nothing (in time): the mapping fails
  }
}

/** XENMEM_add_to_physmap_batch, XENMAPSPACE_gmfn_foreign only. */
export function add_to_physmap_batch_foreign(
  c: Caller, foreign_domid: number, idxs: ArrayLike<number>, gpfns: ArrayLike<number>, errs: Int32Array, size: number,
): number {
  if (!c.privileged) return -XEN_EPERM;
  const fd = foreign_domid === DOMID_SELF ? c.domid : foreign_domid;
  if (!(Number.isInteger(size) && size >= 0 && size <= idxs.length && size <= gpfns.length && size <= errs.length)) return -XEN_EINVAL;
  if (!c.hv.isAlive(fd)) return -XEN_ESRCH;
  for (let i = 0; i < size; i++) errs[i] = gmfn_foreign(c, fd, idxs[i], gpfns[i]);
  return 0;
}

/**
 * XENMEM_remove_from_physmap, for foreign mappings only: RAM goes back through the balloon
 * (not here), grant mappings through GNTTABOP_unmap_grant_ref.
 */
export function remove_from_physmap(c: Caller, gpfn: number): number {
  const hv = c.hv;
  if (!validGfn(gpfn)) return -XEN_EINVAL;
  const bit = 1 << (gpfn & 31);
  // Clearing the bit is the claim: of two racing removals, one sees it set.
  if ((Atomics.and(hv.foreignmap, c.domid * FOREIGNMAP_WORDS + (gpfn >>> 5), ~bit) & bit) === 0) return -XEN_EINVAL;
  const e = Atomics.exchange(hv.p2m, c.domid * MAX_GUEST_PAGES + gpfn, 0);
  p2m_take_back(hv, c.domid); // before the page reference goes, which may free the frame
  unmapForeignFrame(hv, e & P2M_MFN_MASK);
  c.count('foreign_unmaps');
  return 0;
}

/** Teardown, mapper side: a dying domain lets go of every foreign frame it maps. */
export function foreign_release_mappings(hv: HypervisorState, d: number): void {
  const base = d * FOREIGNMAP_WORDS;
  for (let w = 0; w < FOREIGNMAP_WORDS; w++) {
    let bits = Atomics.exchange(hv.foreignmap, base + w, 0);
    while (bits !== 0) {
      const b = 31 - Math.clz32(bits & -bits);
      bits &= bits - 1;
      const e = Atomics.exchange(hv.p2m, d * MAX_GUEST_PAGES + w * 32 + b, 0);
      p2m_take_back(hv, d);
      unmapForeignFrame(hv, e & P2M_MFN_MASK);
    }
  }
}

/*
 * One foreign mapping of `mfn` is gone: the last one takes off the pin a foreign mapping put on
 * its owner's entry (mm/fault.ts p2m_unpin_foreign), then drops the reference (Xen: put_page; the
 * page can be paged and shared again once nobody maps it). An acquired resource's frame is the
 * Xen heap's, with no owner's entry to unpin.
 */
function unmapForeignFrame(hv: HypervisorState, mfn: number): void {
  p2m_unpin_foreign(hv, mfn);
  put_page(hv, mfn);
}

/** Foreign mappings `d` holds, for leak checks. */
export function foreignMappingsHeld(hv: HypervisorState, d: number): number {
  let n = 0;
  const base = d * FOREIGNMAP_WORDS;
  for (let w = 0; w < FOREIGNMAP_WORDS; w++) {
    let bits = hv.foreignmap[base + w];
    while (bits !== 0) {
      bits &= bits - 1;
      n++;
    }
  }
  return n;
}
