/*
 * The gate's fault path: what the hypervisor does when a domain touches a gfn whose P2M entry it
 * cannot use as it is, before deciding that the guest made a mistake.
 *
 * Xen: the nested-page-fault handler (hvm_hap_nested_page_fault, xen/arch/x86/hvm/hvm.c), which
 * looks at the entry's p2m type: populate-on-demand → p2m_pod_demand_populate; paged out →
 * p2m_mem_paging_populate and wait for the pager; shared and written → mem_sharing_unshare_page.
 * Only when none applies is it the guest's fault. The translate gate (guest-memory.ts) calls
 * p2m_fault on its slow path only, so the hot path pays nothing for these features.
 *
 * Others reach a domain's frames too: a grant map or copy, a foreign map by a device model. They
 * need the frame itself, for longer than one access, so p2m_pin_private makes the page private
 * and resident and sets P2M_PINNED, which keeps sharing and paging away from it from then on (as
 * Xen's nominate refuses a page with extra references). The guest's own unchecked page views
 * (page(), pageWords()) are pinned the same way.
 */
import { F, MAX_GUEST_PAGES, P2M_FOREIGN, P2M_MFN_MASK, P2M_PAGED, P2M_PINNED, P2M_POD, P2M_PRESENT, P2M_READONLY, P2M_SHARED,
  type HypervisorState } from '../state.ts';
import { MH } from './mm-state.ts';
import { POD_DYING, POD_ENOMEM, POD_RETRY, p2m_pod_demand_populate } from './pod.ts';
import { mem_sharing_unshare_page } from './sharing.ts';
import { p2m_mem_paging_populate } from './paging.ts';

/** p2m_fault's results besides a frame number. */
export const FAULT_GUEST = -1;    // a real fault: no translation, or a write to a read-only page
export const FAULT_NOMEM = -2;    // the hypervisor had to find a frame and the host had none

const RETRY = POD_RETRY;

/**
 * `d` touched `gfn` (for writing if `write`) and the gate could not use the entry. Returns the
 * frame the access may use now, FAULT_GUEST, or FAULT_NOMEM (the caller crashes the domain).
 */
export function p2m_fault(hv: HypervisorState, d: number, gfn: number, write: boolean): number {
  if (!(gfn >= 0 && gfn < MAX_GUEST_PAGES)) return FAULT_GUEST;
  const idx = d * MAX_GUEST_PAGES + gfn;
  for (;;) {
    const e = Atomics.load(hv.p2m, idx);
    let r: number;
    if ((e & P2M_POD) !== 0) r = p2m_pod_demand_populate(hv, d, gfn, e);
    else if ((e & P2M_PAGED) !== 0) r = p2m_mem_paging_populate(hv, d, gfn, e);
    else if ((e & P2M_SHARED) !== 0 && write) r = mem_sharing_unshare_page(hv, d, gfn, e);
    else if ((e & P2M_PRESENT) !== 0 && !(write && (e & P2M_READONLY) !== 0)) return e & P2M_MFN_MASK; // changed meanwhile
    else return FAULT_GUEST;
    if (r === RETRY) continue;
    return r === POD_ENOMEM ? FAULT_NOMEM : r === POD_DYING ? FAULT_GUEST : r;
  }
}

/** Who set an owner's P2M_PINNED (the frame's F.PIN word). */
export const PIN_BY_FOREIGN = 1; // a foreign mapping: its last unmap takes the pin off again
export const PIN_HELD = 2;       // a view or a grant needs it: kept for the frame's life in this entry

/**
 * Make `d`'s RAM page `gfn` resident and private and mark it pinned, for a view or mapping that
 * outlives one access. Returns the entry as it is now (the caller checks it as before); an entry
 * that is not the domain's own RAM (a hole, a grant or foreign mapping) is returned untouched.
 *
 * `foreign`: the caller is a foreign mapping (p2m-foreign.ts), which also takes a reference on the
 * frame; its pin lasts only as long as such mappings do (p2m_unpin_foreign), as Xen's extra page
 * references do. A guest's own unchecked view and a grant keep the pin (PIN_HELD): a view has no
 * end the hypervisor sees. The frame's F.PIN word says which set it: PIN_HELD is written before
 * the entry is looked at, so an unpin that races with it sees it (p2m_unpin_foreign looks after).
 */
export function p2m_pin_private(hv: HypervisorState, d: number, gfn: number, foreign = false): number {
  if (!(gfn >= 0 && gfn < MAX_GUEST_PAGES)) return 0;
  const idx = d * MAX_GUEST_PAGES + gfn;
  for (;;) {
    const e = Atomics.load(hv.p2m, idx);
    if ((e & (P2M_POD | P2M_PAGED | P2M_SHARED)) !== 0) {
      if (p2m_fault(hv, d, gfn, true) < 0) return e; // out of memory: the caller sees a page it cannot use
      continue;
    }
    if ((e & P2M_PRESENT) === 0 || (e & P2M_FOREIGN) !== 0) return e;
    const pin = (e & P2M_MFN_MASK) * F.WORDS + F.PIN;
    if (!foreign) Atomics.store(hv.frames, pin, PIN_HELD);
    if ((e & P2M_PINNED) !== 0) {
      if (Atomics.load(hv.p2m, idx) !== e) continue; // unpinned meanwhile: pin it again
      return e;
    }
    if (Atomics.compareExchange(hv.p2m, idx, e, (e | P2M_PINNED) >>> 0) === e) {
      if (foreign) Atomics.compareExchange(hv.frames, pin, 0, PIN_BY_FOREIGN);
      return (e | P2M_PINNED) >>> 0;
    }
  }
}

/**
 * The last foreign mapping of `mfn` is going (its reference not yet dropped): if a foreign
 * mapping set its owner's pin and nothing else asked for it since, take the pin off, so the page
 * can be paged, shared or ballooned again. Until the reference goes, the pager, the sharer and
 * the balloon still leave the frame alone (they look at F.REF too).
 */
export function p2m_unpin_foreign(hv: HypervisorState, mfn: number): void {
  const f = mfn * F.WORDS;
  if (Atomics.load(hv.frames, f + F.REF) !== 1) return; // another mapping still holds it
  const d = Atomics.load(hv.frames, f + F.OWNER) - 1;
  const gfn = Atomics.load(hv.frames, f + F.GFN) - 1;
  if (d < 0 || gfn < 0 || gfn >= MAX_GUEST_PAGES) return;
  if (Atomics.compareExchange(hv.frames, f + F.PIN, PIN_BY_FOREIGN, 0) !== PIN_BY_FOREIGN) return;
  const idx = d * MAX_GUEST_PAGES + gfn;
  const e = Atomics.load(hv.p2m, idx);
  if ((e & P2M_MFN_MASK) !== mfn || (e & (P2M_PRESENT | P2M_PINNED)) !== (P2M_PRESENT | P2M_PINNED)) return;
  if (Atomics.compareExchange(hv.p2m, idx, e, (e & ~P2M_PINNED) >>> 0) !== e) return;
  // A view or grant that pinned it meanwhile saw the entry still pinned and left it, or another
  // foreign mapping took the frame meanwhile: pin it back (the mapping re-checks too: p2m-foreign.ts).
  if (Atomics.load(hv.frames, f + F.PIN) === PIN_HELD) Atomics.or(hv.p2m, idx, P2M_PINNED);
  else if (Atomics.load(hv.frames, f + F.REF) > 1 && Atomics.compareExchange(hv.frames, f + F.PIN, 0, PIN_BY_FOREIGN) === 0) Atomics.or(hv.p2m, idx, P2M_PINNED);
}

/** A domain is about to crash for want of a frame (p2m_pod_demand_populate's domain_crash). */
export function p2m_pod_oom_counted(hv: HypervisorState): void {
  Atomics.add(hv.mm, MH.POD_OOM, 1);
}
