/*
 * The pager: when the host runs short of free frames, it evicts guest pages to their domains'
 * paging files (./paging.ts), the last resort after sharing and ballooning.
 *
 * Xen: tools/xenpaging (xenpaging.c: a Dom0 daemon with a target number of pages per domain;
 * victims chosen by a policy, policy_default.c, which walks the gfns with a clock hand and skips
 * recently paged-in ones). ringvisor's pager runs on the hypervisor's control thread, keeps the
 * host's free frames above a low-water mark (as Linux's kswapd keeps a zone's watermark) and is
 * woken at once by a vCPU that found no frame (./pager-wait.ts).
 *
 * Victims: the domain holding the most frames, and within it a clock hand over its gfns. There is
 * no accessed bit to consult (ringvisor's "MMU" is the gate, which keeps no A bits), so the clock
 * has no second chance: it is FIFO by gfn, as xenpaging's default policy is apart from its
 * "recently paged in" list. A page a vCPU touches again simply faults back in. Candidates are as
 * for sharing: private, unpinned frames of the domain's own RAM. The victim domain is paused and
 * quiescent while its pages go.
 */
import { freeFrames, frameOwner } from '../page-alloc.ts';
import {
  D, F, MAX_GUEST_PAGES, P2M_FOREIGN, P2M_MFN_MASK, P2M_PINNED, P2M_PRESENT, P2M_READONLY, P2M_RESERVED, P2M_SHARED,
  type HypervisorState,
} from '../state.ts';
import { MH } from './mm-state.ts';
import { p2m_mem_paging_evict } from './paging.ts';
import type { ScanTarget } from './share-scan.ts';

/** Pages evicted per batch (one victim pause each). */
export const PAGER_BATCH = 256;

export class Pager {
  private readonly hand = new Map<number, number>();

  constructor(private readonly hv: HypervisorState, private readonly target: ScanTarget, readonly lowWater: number) {}

  /** One round: if free frames are below the low-water mark (or a vCPU is waiting), evict a batch. Returns pages evicted. */
  async balance(force = false): Promise<number> {
    const hv = this.hv;
    const short = this.lowWater - freeFrames(hv);
    if (short <= 0 && !force) return 0;
    const doms = this.target.domains();
    if (doms.length === 0) return 0;
    const victim = doms.reduce((a, b) => (tot(hv, b.domid) > tot(hv, a.domid) ? b : a));
    const want = Math.min(PAGER_BATCH, Math.max(short, 1) + PAGER_BATCH / 4);
    const resume = await this.target.quiesce([victim.domid]);
    let evicted = 0;
    try {
      evicted = this.evict(victim.domid, victim.pages, want);
    } finally {
      resume();
      Atomics.store(hv.mm, MH.LAST_FREED, evicted);
      Atomics.add(hv.mm, MH.FREED_SEQ, 1);
      Atomics.notify(hv.mm, MH.FREED_SEQ);
    }
    return evicted;
  }

  /** Evict up to `want` of `d`'s pages, from its clock hand on. The domain is quiescent. */
  evict(d: number, pages: number, want: number): number {
    const hv = this.hv;
    let gfn = this.hand.get(d) ?? 0;
    let evicted = 0;
    for (let looked = 0; looked < pages && evicted < want; looked++, gfn++) {
      if (gfn >= pages) gfn = 0;
      const e = Atomics.load(hv.p2m, d * MAX_GUEST_PAGES + gfn);
      if ((e & P2M_PRESENT) === 0 || (e & (P2M_FOREIGN | P2M_PINNED | P2M_READONLY | P2M_SHARED | P2M_RESERVED)) !== 0) continue;
      const mfn = e & P2M_MFN_MASK;
      if (frameOwner(hv, mfn) !== d || Atomics.load(hv.frames, mfn * F.WORDS + F.REF) !== 0) continue;
      if (p2m_mem_paging_evict(hv, d, gfn, e, Atomics.load(hv.frames, mfn * F.WORDS + F.MAPS))) evicted++;
    }
    this.hand.set(d, gfn);
    return evicted;
  }

  forget(d: number): void {
    this.hand.delete(d);
  }
}

function tot(hv: HypervisorState, d: number): number {
  return Atomics.load(hv.domains, d * D.WORDS + D.TOT_PAGES);
}
