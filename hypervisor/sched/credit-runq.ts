/*
 * Which queued vCPU a pCPU slot runs next: the credit scheduler's runqueue order.
 *
 * Xen: csched_schedule's choice in xen/common/sched/credit.c: the head of the pCPU's own runqueue
 * (csched_runq, sorted by priority, FIFO within one: __runq_insert), or, when that head is OVER
 * or there is none, a better vCPU stolen from a peer's runqueue (csched_load_balance,
 * csched_runq_steal). Run with the scheduler's lock held (./credit-core.ts).
 *
 * Where ringvisor differs, and why. Here every slot's queue is looked at, every time: a freed slot
 * takes the best priority queued for any slot it may serve, and among equals the vCPU that has
 * waited longest (its ticket, U.SEQ): one order for all slots, as credit2 with one shared runqueue
 * (credit2_runqueue=all). Xen places a waking vCPU where csched_res_pick finds the least loaded
 * pCPU, and its periodic balancing evens the queues out. Ringvisor's wake-ups are placed by the
 * thread that makes them, which queues them on the slot it tickles, and nothing rebalances: with
 * per-slot queues and strict-priority stealing (a slot steals only when its own best is OVER), a
 * vCPU queued for the slot Dom0 holds waits for that slot while an equal one queued for the other
 * slot is served at once: the scale suite's lowest Jain was at 2 guests (0.886 and 0.868 in two
 * of four quiet runs of main), and on branch `sched` 16 guests once got 0.62 with per-slot queues.
 * A vCPU's U.RUNQ still names the slot it was queued for; taken by another slot, it counts as a
 * steal.
 */
import { D, MAX_VCPUS } from '../state.ts';
import { CSCHED_PRI_IDLE, G, U, UF_PARKED } from './tables.ts';
import type { CreditCore } from './credit-core.ts';

/**
 * The vCPU to run next on `slot`, or -1. Parked vCPUs are skipped (they may not run until
 * accounting unparks them), and so are those of paused domains (Xen takes them off the runqueue).
 * The scan covers the registered vCPUs (tables.ts G.HIGH), a dozen or two.
 */
export function pickNext(s: CreditCore, slot: number): number {
  const t = s.t;
  const high = t.i32[G.HIGH];
  let best = -1;
  let bestPri = CSCHED_PRI_IDLE;
  let bestSeq = 0;
  for (let u = 0; u < high; u++) {
    if (t.i32[t.u(u, U.RUNQ)] === 0) continue;
    if ((t.i32[t.u(u, U.FLAGS)] & UF_PARKED) !== 0) continue;
    if ((s.hard(u) & (1 << slot)) === 0) continue;
    if (Atomics.load(s.hv.domains, Math.floor(u / MAX_VCPUS) * D.WORDS + D.PAUSE_COUNT) !== 0) continue;
    const pri = t.i32[t.u(u, U.PRI)];
    const seq = t.i32[t.u(u, U.SEQ)];
    // Tickets compared by difference, so the order survives the counter's wrap.
    if (best < 0 || pri > bestPri || (pri === bestPri && seq - bestSeq < 0)) {
      best = u;
      bestPri = pri;
      bestSeq = seq;
    }
  }
  if (best >= 0 && t.i32[t.u(best, U.RUNQ)] !== slot + 1) t.i32[G.STEALS]++;
  return best;
}

/** pickNext without counting a steal: a look, not a decision (the tick's). */
export function peekNext(s: CreditCore, slot: number): number {
  const steals = s.t.i32[G.STEALS];
  const u = pickNext(s, slot);
  s.t.i32[G.STEALS] = steals;
  return u;
}
