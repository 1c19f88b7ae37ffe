/*
 * A vCPU that needs a frame (PoD, page-in, COW break) and finds none waits for the pager instead
 * of crashing its domain, while a pager runs: Xen pauses a vCPU that touched a paged-out gfn until
 * xenpaging has brought it in (p2m_mem_paging_populate → vm_event); here the wait is also for
 * the pager to have freed frames. It wakes the pager (MH.PRESSURE) and sleeps on MH.FREED_SEQ.
 * The caller gives its pCPU slot up around the wait (sched.sleepBegin/End), so the vCPU counts
 * as blocked, and a pager quiescing its domain does not wait for it.
 */
import type { HypervisorState } from '../state.ts';
import { MH } from './mm-state.ts';

/** Longest single wait: a pager that frees nothing in this long is not coming, and the domain crashes. */
export const PAGER_WAIT_MS = 2000;

export function pagerRunning(hv: HypervisorState): boolean {
  return Atomics.load(hv.mm, MH.PAGER_ON) === 1;
}

/** Wake the pager and wait for its next batch. False if no pager runs or it freed nothing in time. */
export function waitForPager(hv: HypervisorState): boolean {
  if (!pagerRunning(hv)) return false;
  const seq = Atomics.load(hv.mm, MH.FREED_SEQ);
  Atomics.add(hv.mm, MH.PRESSURE, 1);
  Atomics.notify(hv.mm, MH.PRESSURE);
  return Atomics.wait(hv.mm, MH.FREED_SEQ, seq, PAGER_WAIT_MS) !== 'timed-out';
}
