/*
 * The page-sharing scanner: it finds identical pages and shares them (./sharing.ts does the
 * sharing). It runs on the hypervisor's control thread, as KSM's ksmd runs in the host kernel.
 *
 * Xen leaves finding candidates to a Dom0 tool that calls XENMEM_sharing_op (nominate_gfn, then
 * share with the source's handle); KSM and ESX scan in the hypervisor. This scanner follows
 * ESX's and KSM's recipe (XEN-FACTS Part 2 §3.2-3.3): a bounded number of pages per pass
 * (KSM's pages_to_scan, 100 by default), a hash of each page's contents, and a full compare before
 * anything is shared (a hash match is only a hint). Two tables, as ESX's: shared frames by hash,
 * and "hint" pages seen once (domain, gfn, the entry it had). A page whose hash matches a shared
 * frame joins it; one that matches a hint makes the hint's page a shared frame (nominate) and
 * joins it; otherwise it becomes a hint itself. Zero pages are the commonest match; anything else
 * identical is shared too (in ringvisor, the common boot image's pages, mem-touch's cold pages).
 *
 * A candidate is a private frame of the domain's own RAM that nobody references: not pinned by an
 * unchecked view, a grant or a foreign map (P2M_PINNED), not read-only, not already shared.
 * While a pass looks at pages and changes entries, every domain it scans is paused and quiescent
 * (no vCPU between translating a gfn and using the frame), which is what Xen's p2m lock and TLB
 * flush give mem_sharing.
 */
import { PAGE_WORDS } from '../../shared/public/xen.ts';
import { frameOwner } from '../page-alloc.ts';
import {
  F, MAX_GUEST_PAGES, P2M_FOREIGN, P2M_MFN_MASK, P2M_PINNED, P2M_PRESENT, P2M_READONLY, P2M_RESERVED, P2M_SHARED,
  type HypervisorState,
} from '../state.ts';
import { MH } from './mm-state.ts';
import { COW_OWNER, mem_sharing_nominate_page, mem_sharing_share_pages } from './sharing.ts';

/** KSM's defaults: pages_to_scan 100 per pass, sleep_millisecs 20 between passes. */
export const PAGES_TO_SCAN = 100;
export const SLEEP_MILLISECS = 20;

interface Hint { d: number; gfn: number; e: number; maps: number }

/** What a pass needs from the control thread: the domains to scan, quiesced. */
export interface ScanTarget {
  /** Domain ids and their RAM sizes in pages (gfns 0..pages). */
  domains(): { domid: number; pages: number }[];
  /** Pause these domains and resolve once none of their vCPUs runs; the result unpauses them. */
  quiesce(domids: number[]): Promise<() => void>;
}

export class ShareScanner {
  private readonly shared = new Map<number, number>(); // hash → shared frame
  private readonly hints = new Map<number, Hint>();
  private readonly cursor = new Map<number, number>();
  private readonly words: Int32Array;
  /* The domains this pass has paused: only their pages may change type. */
  private paused = new Set<number>();

  constructor(private readonly hv: HypervisorState, private readonly target: ScanTarget) {
    this.words = hv.mem32;
  }

  /** One pass: up to `pagesToScan` pages, round-robin over the domains. Returns pages scanned and shared. */
  async pass(pagesToScan = PAGES_TO_SCAN): Promise<{ scanned: number; shared: number }> {
    const doms = this.target.domains();
    if (doms.length === 0) return { scanned: 0, shared: 0 };
    const resume = await this.target.quiesce(doms.map((x) => x.domid));
    this.paused = new Set(doms.map((x) => x.domid));
    let scanned = 0;
    let shared = 0;
    try {
      const per = Math.max(1, Math.ceil(pagesToScan / doms.length));
      for (const { domid, pages } of doms) {
        let gfn = this.cursor.get(domid) ?? 0;
        for (let n = 0; n < per && pages > 0; n++) {
          if (gfn >= pages) {
            gfn = 0;
            if (domid === doms[0].domid) Atomics.add(this.hv.mm, MH.FULL_SCANS, 1);
          }
          const r = this.scanPage(domid, gfn++);
          if (r >= 0) scanned++;
          if (r === 1) shared++;
        }
        this.cursor.set(domid, gfn);
      }
    } finally {
      this.paused = new Set();
      resume();
    }
    Atomics.add(this.hv.mm, MH.SCANNED, scanned);
    return { scanned, shared };
  }

  /** -1: not a candidate; 0: looked at; 1: shared. */
  private scanPage(d: number, gfn: number): number {
    const hv = this.hv;
    const e = Atomics.load(hv.p2m, d * MAX_GUEST_PAGES + gfn);
    if (!candidate(hv, d, e)) return -1;
    const mfn = e & P2M_MFN_MASK;
    const maps = mapsOf(hv, mfn);
    const h = this.hash(mfn);
    const smfn = this.shared.get(h);
    if (smfn !== undefined) {
      if (frameOwner(hv, smfn) === COW_OWNER - 1 && this.same(smfn, mfn) && mapsOf(hv, mfn) === maps) {
        return mem_sharing_share_pages(hv, smfn, d, gfn, e) ? 1 : 0;
      }
      this.shared.delete(h); // stale (freed, or another page with this hash): forget it
    }
    const hint = this.hints.get(h);
    if (hint !== undefined && !(hint.d === d && hint.gfn === gfn) && this.paused.has(hint.d)) {
      const he = Atomics.load(hv.p2m, hint.d * MAX_GUEST_PAGES + hint.gfn);
      const hmfn = hint.e & P2M_MFN_MASK;
      // Neither page mapped by another domain since it was looked at (a foreign mapping that came
      // and went leaves the entry as it was, but may have written the page): F.MAPS has not moved.
      if (he === hint.e && candidate(hv, hint.d, he) && this.same(hmfn, mfn) && mapsOf(hv, hmfn) === hint.maps && mapsOf(hv, mfn) === maps &&
        mem_sharing_nominate_page(hv, hint.d, hint.gfn, he)) {
        this.hints.delete(h);
        this.shared.set(h, hmfn);
        return mem_sharing_share_pages(hv, hmfn, d, gfn, e) ? 1 : 0;
      }
    }
    this.hints.set(h, { d, gfn, e, maps });
    return 0;
  }

  /** FNV-1a over the page's words: a hint only, never trusted without same(). */
  private hash(mfn: number): number {
    const w = this.words;
    let h = 0x811c9dc5 | 0;
    for (let i = mfn * PAGE_WORDS, end = i + PAGE_WORDS; i < end; i++) h = Math.imul(h ^ w[i], 0x01000193);
    return h;
  }

  private same(a: number, b: number): boolean {
    const w = this.words;
    for (let i = 0, pa = a * PAGE_WORDS, pb = b * PAGE_WORDS; i < PAGE_WORDS; i++) if (w[pa + i] !== w[pb + i]) return false;
    return true;
  }

  /** A domain is gone: forget its hints and cursor (its shared frames are reference-counted). */
  forget(d: number): void {
    this.cursor.delete(d);
    for (const [h, hint] of this.hints) if (hint.d === d) this.hints.delete(h);
  }
}

/** Foreign mappings ever made of `mfn` (state.ts F.MAPS). */
function mapsOf(hv: HypervisorState, mfn: number): number {
  return Atomics.load(hv.frames, mfn * F.WORDS + F.MAPS);
}

/** A private frame of `d`'s own RAM that nothing else references. */
function candidate(hv: HypervisorState, d: number, e: number): boolean {
  if ((e & P2M_PRESENT) === 0 || (e & (P2M_FOREIGN | P2M_PINNED | P2M_READONLY | P2M_SHARED | P2M_RESERVED)) !== 0) return false;
  const mfn = e & P2M_MFN_MASK;
  return frameOwner(hv, mfn) === d && Atomics.load(hv.frames, mfn * F.WORDS + F.REF) === 0;
}

