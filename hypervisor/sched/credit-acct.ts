/*
 * The credit scheduler's accounting: sharing out credit by weight, once per timeslice.
 *
 * Xen: csched_acct in xen/common/sched/credit.c. Run under the scheduler's lock by whoever first
 * sees a timeslice has passed (a running vCPU's tick, or the control thread's), see ./credit.ts.
 */
import { MAX_DOMAINS, MAX_VCPUS } from '../state.ts';
import {
  CSCHED_CREDITS_PER_MSEC, CSCHED_PRI_TS_OVER, CSCHED_PRI_TS_UNDER, DM, G, GF, U, UF_ACTIVE, UF_PARKED, UFL, type SchedTables,
} from './tables.ts';

/**
 * csched_acct (the scheduler's lock held, the running vCPUs just charged): share `credits per
 * timeslice × slots` among the active domains by weight × active vCPUs, each clipped to its peak (its active vCPUs × one timeslice, or its
 * cap), the clipped excess shared again by weight among the rest; then per vCPU: OVER below
 * zero (floored at minus one timeslice; a capped vCPU below minus its cap's share is parked),
 * UNDER at or above zero (unparked); above one timeslice it stops earning (leaves the active
 * list) and its credit is halved.
 */
export function csched_acct(t: SchedTables, now: number): void {
  const n = t.nrPcpus;
  const perTslice = (t.i32[G.TSLICE_US] / 1000) * CSCHED_CREDITS_PER_MSEC;
  // Credit for the time that really passed: Xen's accounting runs every timeslice on the dot;
  // here it runs at the first tick after one, which on a loaded host can be much later, and
  // handing out one timeslice's worth for a longer period would leave every vCPU OVER, which
  // flattens the shares to round-robin. The bounds (the floor, and the credit above which a
  // vCPU stops earning) are one period's worth for the same reason: one timeslice, normally.
  const last = t.f64[GF.LAST_ACCT];
  t.f64[GF.LAST_ACCT] = now;
  const period = last === 0 ? perTslice : Math.min(1000 * CSCHED_CREDITS_PER_MSEC, (now - last) * CSCHED_CREDITS_PER_MSEC);
  const bound = Math.max(perTslice, period);
  const high = t.i32[G.HIGH];
  t.i32[G.ACCTS]++;
  const active = new Array<number>(MAX_DOMAINS).fill(0);
  for (let u = 0; u < high; u++) {
    if (t.i32[t.u(u, U.EXISTS)] === 1 && (t.i32[t.u(u, U.FLAGS)] & UF_ACTIVE) !== 0) active[Math.floor(u / MAX_VCPUS)]++;
  }
  let weightTotal = 0;
  for (let d = 0; d < MAX_DOMAINS; d++) weightTotal += active[d] * t.i32[t.dm(d, DM.WEIGHT)];
  if (weightTotal === 0) return;
  const creditTotal = period * n;
  const fair = new Array<number>(MAX_DOMAINS).fill(0);
  const peak = new Array<number>(MAX_DOMAINS).fill(0);
  let excess = 0;
  let openWeight = 0;
  for (let d = 0; d < MAX_DOMAINS; d++) {
    if (active[d] === 0) continue;
    const w = t.i32[t.dm(d, DM.WEIGHT)] * active[d];
    const cap = t.i32[t.dm(d, DM.CAP)];
    peak[d] = Math.min(active[d], n) * period;
    if (cap !== 0) peak[d] = Math.min(peak[d], Math.ceil((cap * period) / 100));
    fair[d] = Math.ceil((creditTotal * w) / weightTotal);
    if (fair[d] >= peak[d]) {
      excess += fair[d] - peak[d];
      fair[d] = peak[d];
    } else {
      openWeight += w;
    }
  }
  for (let d = 0; d < MAX_DOMAINS && excess > 0 && openWeight > 0; d++) {
    if (active[d] === 0 || fair[d] >= peak[d]) continue;
    const extra = Math.ceil((excess * t.i32[t.dm(d, DM.WEIGHT)] * active[d]) / openWeight);
    fair[d] = Math.min(peak[d], fair[d] + extra);
  }
  for (let u = 0; u < high; u++) {
    if (t.i32[t.u(u, U.EXISTS)] !== 1 || (t.i32[t.u(u, U.FLAGS)] & UF_ACTIVE) === 0) continue;
    const d = Math.floor(u / MAX_VCPUS);
    const ci = t.uf(u, UFL.CREDIT);
    let credit = t.f64[ci] + Math.ceil(fair[d] / active[d]);
    const cap = t.i32[t.dm(d, DM.CAP)];
    let flags = t.i32[t.u(u, U.FLAGS)];
    if (credit < 0) {
      t.i32[t.u(u, U.PRI)] = CSCHED_PRI_TS_OVER;
      const capShare = Math.ceil(Math.ceil((cap * period) / 100) / active[d]);
      if (cap !== 0 && credit < -capShare && (flags & UF_PARKED) === 0) {
        flags |= UF_PARKED;
        t.i32[G.PARKS]++;
      }
      if (credit < -bound) credit = -bound;
    } else {
      t.i32[t.u(u, U.PRI)] = CSCHED_PRI_TS_UNDER;
      flags &= ~UF_PARKED;
      if (credit > bound) {
        flags &= ~UF_ACTIVE;
        credit /= 2;
      }
    }
    t.i32[t.u(u, U.FLAGS)] = flags;
    t.f64[ci] = credit;
  }
}
