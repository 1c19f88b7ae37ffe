/*
 * A vCPU that needs a frame (PoD, page-in, COW break) and finds none waits for the pager instead
 * of crashing its domain, while a pager runs: Xen pauses a vCPU that touched a paged-out gfn until
 * xenpaging has brought it in (p2m_mem_paging_populate → vm_event); here the wait is also for
 * the pager to have freed frames. It wakes the pager (MH.PRESSURE) and sleeps on MH.FREED_SEQ.
 * The caller gives its pCPU slot up around the wait (sched.sleepBegin/End), so the vCPU counts
 * as blocked, and a pager quiescing its domain does not wait for it.
 *
 * How long: until the pager's next batch, however long that takes. Xen's paused vCPU has no
 * deadline either; what ends its wait is the pager's answer. Here the answer that means "no frame
 * is coming" is a batch that evicted nothing (MH.LAST_FREED = 0: every page the pager could take
 * is pinned, shared or mapped), or the pager stopping; the caller then crashes its domain, as
 * Xen's PoD does when it has no frame. An earlier version gave up after 2 s of waiting, which
 * made a loaded host crash guests the pager was about to serve (the overcommit scenario lost one
 * under CI's load): a deadline measured the machine's load, not the pager.
 *
 * The one bounded wait is `boundMs`, for Dom0's foreign mapping of a paged-out page
 * (p2m-foreign.ts): it waits on Dom0's thread, which serves every backend and xenstored, so it
 * gives up after FOREIGN_WAIT_MS and the mapping fails, as libxenforeignmemory's caller sees a
 * page it must ask for again.
 */
import type { HypervisorState } from '../state.ts';
import { MH } from './mm-state.ts';

export const FOREIGN_WAIT_MS = 2000;

/** A wait's slice: between slices, a waiter checks that the pager still runs. */
const SLICE_MS = 1000;

export function pagerRunning(hv: HypervisorState): boolean {
  return Atomics.load(hv.mm, MH.PAGER_ON) === 1;
}

/**
 * Wake the pager and wait for its next batch. True if that batch freed frames; false if no pager
 * runs, it stopped, its batch freed nothing, or (only with `boundMs`) no batch came in that long.
 */
export function waitForPager(hv: HypervisorState, boundMs = Infinity): boolean {
  const seq = Atomics.load(hv.mm, MH.FREED_SEQ);
  Atomics.add(hv.mm, MH.PRESSURE, 1);
  Atomics.notify(hv.mm, MH.PRESSURE);
  for (let waited = 0; pagerRunning(hv); waited += SLICE_MS) {
    if (waited >= boundMs) return false;
    const r = Atomics.wait(hv.mm, MH.FREED_SEQ, seq, Math.min(SLICE_MS, boundMs - waited));
    if (r !== 'timed-out') return pagerRunning(hv) && Atomics.load(hv.mm, MH.LAST_FREED) > 0;
  }
  return false;
}
