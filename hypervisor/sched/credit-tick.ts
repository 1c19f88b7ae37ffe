/*
 * The credit scheduler's timer interrupt: charge who runs, end BOOST, preempt where due, account.
 *
 * Xen: csched_tick (every tick, 10 ms: timeslice / CSCHED_TICKS_PER_TSLICE) and the accounting
 * timer that runs csched_acct once per timeslice, in xen/common/sched/credit.c. Run with the
 * scheduler's lock held, by the control thread's timer for every slot at once (./host-sched.ts),
 * and by a running vCPU for its own slot at its preemption points (./credit.ts schedule with
 * `tick`), as each Xen pCPU runs its own: on a loaded host the control thread's timer can be
 * hundreds of milliseconds late, and accounting and caps must not wait for it.
 */
import { CSCHED_PRI_TS_BOOST, CSCHED_PRI_TS_UNDER, G, GF, PF, U, UF_PARKED } from './tables.ts';
import { csched_acct } from './credit-acct.ts';
import { peekNext, pickNext } from './credit-runq.ts';
import type { CreditCore } from './credit-core.ts';
import { TRC_BEGIN, TRC_CSCHED_ACCT, TRC_END, TRC_SCHED } from '../../shared/public/trace.ts';

/**
 * csched_tick for every slot (lock held): charge the running vCPU, drop its BOOST (credit.c: "at
 * the next tick that charges it"), ask it to reschedule if its slice is over and someone of its
 * priority waits, or if someone better waits past the ratelimit, or if it was parked; give idle
 * slots to whoever waits for them; run accounting if a timeslice has passed since the last.
 */
export function tickAll(s: CreditCore, now: number): void {
  const t = s.t;
  acctIfDue(s, now);
  const n = t.nrPcpus;
  for (let p = 0; p < n; p++) {
    const cur = s.curr(p);
    if (cur < 0) {
      const next = pickNext(s, p);
      if (next >= 0) s.setCurr(p, next, now, true);
      continue;
    }
    chargeTick(s, cur, now);
    const ran = now - t.f64[t.pf(p, PF.SLICE)];
    if ((s.i(cur, U.FLAGS) & UF_PARKED) !== 0) {
      s.resched(p);
      continue;
    }
    const next = peekNext(s, p);
    if (next < 0 || ran < s.ratelimitMs) continue;
    const np = s.pri(next);
    if (np > s.pri(cur) || (np === s.pri(cur) && ran >= s.tsliceMs)) s.resched(p);
  }
}

/** The tick's part for one running vCPU (lock held): charge it, and end its BOOST. */
export function chargeTick(s: CreditCore, unit: number, now: number): void {
  s.burn(unit, now);
  if (s.pri(unit) === CSCHED_PRI_TS_BOOST) s.set(unit, U.PRI, CSCHED_PRI_TS_UNDER);
}

/** csched_acct if a timeslice has passed since the last (lock held): charge the running vCPUs, then share out credit. */
export function acctIfDue(s: CreditCore, now: number): void {
  const t = s.t;
  if (now - t.f64[GF.LAST_ACCT] < s.tsliceMs) return;
  const tr = s.trace;
  if (tr.on(TRC_SCHED)) tr.write(TRC_CSCHED_ACCT | TRC_BEGIN, t.nrPcpus, 0, 0, 0);
  for (let p = 0; p < t.nrPcpus; p++) {
    const cur = s.curr(p);
    if (cur >= 0) s.burn(cur, now);
  }
  csched_acct(t, now);
  if (tr.on(TRC_SCHED)) tr.write(TRC_CSCHED_ACCT | TRC_END, t.i32[G.ACCTS], t.i32[G.PARKS], 0, 0);
}
