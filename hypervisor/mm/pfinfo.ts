/*
 * XEN_DOMCTL_getpageframeinfo3: what each of a domain's gfns is, for the saver, so that it sends
 * the contents of RAM the guest has touched and only a type for the rest.
 *
 * Xen: xen/arch/x86/domctl.c (XEN_DOMCTL_getpageframeinfo3), used by tools/libs/guest/xg_sr_save.c
 * before each batch: a page is NOTAB (ordinary RAM: its contents follow), XTAB (no RAM behind the
 * gfn: a ballooned-out hole; nothing is sent and the restorer leaves it a hole), or XALLOC
 * ("allocate only": the restorer gives the gfn RAM but no contents are sent). Xen's lookup
 * populates a PoD entry on the way (get_page_from_gfn with P2M_ALLOC), so saving a PoD guest backs
 * all of it. ringvisor answers XALLOC for a PoD entry instead, without touching it: a page the
 * guest never touched reads as zeros, and the restored domain's entry, PoD again, does too. Saving
 * a guest then costs the host no frame for memory it never used, and nothing is read that is not
 * there. Shared and paged-out entries are RAM (NOTAB): their contents are the guest's.
 *
 * Runs in the caller's thread: it reads the P2M, which every thread shares, and changes nothing.
 */
import { XEN_DOMCTL_PFINFO_NOTAB, XEN_DOMCTL_PFINFO_XALLOC, XEN_DOMCTL_PFINFO_XTAB } from '../../shared/public/migration-stream.ts';
import { MAX_GUEST_PAGES, P2M_FOREIGN, P2M_PAGED, P2M_POD, P2M_PRESENT, P2M_RESERVED, type HypervisorState } from '../state.ts';

/** The type of `d`'s `gfn` as the saver needs it. */
export function p2m_pfinfo(hv: HypervisorState, d: number, gfn: number): number {
  if (!(Number.isInteger(gfn) && gfn >= 0 && gfn < MAX_GUEST_PAGES)) return XEN_DOMCTL_PFINFO_XTAB;
  const e = Atomics.load(hv.p2m, d * MAX_GUEST_PAGES + gfn);
  if ((e & P2M_POD) !== 0) return XEN_DOMCTL_PFINFO_XALLOC;
  if ((e & P2M_PAGED) !== 0) return XEN_DOMCTL_PFINFO_NOTAB;
  // A grant or foreign mapping is not the domain's RAM, and a hole has none.
  if ((e & P2M_PRESENT) === 0 || (e & (P2M_FOREIGN | P2M_RESERVED)) !== 0) return XEN_DOMCTL_PFINFO_XTAB;
  return XEN_DOMCTL_PFINFO_NOTAB;
}

/** getpageframeinfo3 over gfns[0..n): types[i] for gfns[i]. Returns n. */
export function getpageframeinfo3(hv: HypervisorState, d: number, gfns: ArrayLike<number>, types: Int32Array, n: number): number {
  for (let i = 0; i < n; i++) types[i] = p2m_pfinfo(hv, d, gfns[i]);
  return n;
}
