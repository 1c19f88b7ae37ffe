/*
 * A vCPU becomes runnable: BOOST, an idle slot if there is one, else a runqueue place and a tickle.
 *
 * Xen: csched_unit_wake and __runq_tickle in xen/common/sched/credit.c. A vCPU woken UNDER (from
 * blocking on I/O, typically) becomes BOOST, so it preempts CPU-bound vCPUs and answers its I/O
 * at once; it drops back to UNDER at the next tick that charges it (./credit-tick.ts). Run by the
 * waking vCPU's own thread (hypervisor/schedule.ts acquire), with the scheduler's lock held.
 *
 * Work conservation (takeOver). Xen's pCPU never idles while a vCPU is runnable: switching to the
 * next one costs it about a microsecond. Here a slot handed to a vCPU whose thread sleeps (it
 * waits on U.SLOT) is held, idle, until the host OS runs that thread: a futex wake-up, 45-70 µs
 * quiet and far more under load ("slot dead" in the scale suite). Meanwhile a vCPU whose thread
 * is awake (an event just woke it) would queue and sleep in its turn. So an awake vCPU that finds
 * no idle slot takes such a pending hand-over, if it has at least the sleeper's priority: the
 * sleeper goes back to the runqueue with its ticket, first of its priority for the next slot, and
 * is not taken over again before it has run; its thread, woken, finds no slot and sleeps on.
 */
import { CSCHED_PRI_IDLE, CSCHED_PRI_TS_BOOST, CSCHED_PRI_TS_UNDER, G, P, PF, U, UF_PARKED, UFL } from './tables.ts';
import type { CreditCore } from './credit-core.ts';

/**
 * csched_unit_wake (lock held): `unit`, holding no slot and on no runqueue, became runnable. It
 * takes an idle slot it may use (true); otherwise it queues, tickling the slot running the lowest
 * priority below its own, past that slot's ratelimit (false: wait on U.SLOT for a hand-over).
 * `sender`: run for an event's sender (credit.ts wakeBlocked), the sending vCPU, never tickled.
 * `awake`: run by the vCPU's own thread, which runs now: it may take over a slot handed to a
 * thread that has not run yet (takeOver).
 */
export function unitWake(s: CreditCore, unit: number, now: number, sender = -1, awake = false): boolean {
  const t = s.t;
  const parked = (s.i(unit, U.FLAGS) & UF_PARKED) !== 0;
  if (!parked && s.pri(unit) === CSCHED_PRI_TS_UNDER && t.i32[G.BOOST] !== 0) s.set(unit, U.PRI, CSCHED_PRI_TS_BOOST);
  if (s.pri(unit) === CSCHED_PRI_TS_BOOST) {
    // (Still BOOST from the last wake if no tick has charged it since: it counts again.)
    t.i32[G.BOOSTS]++;
    s.set(unit, U.BOOSTS, s.i(unit, U.BOOSTS) + 1);
  }
  t.f64[t.uf(unit, UFL.LAST_BURN)] = now;
  const n = t.nrPcpus;
  const hard = s.hard(unit);
  const soft = s.i(unit, U.SOFT) & hard;
  const proc = s.i(unit, U.PROCESSOR);
  if (!parked) {
    const idle = pickIdle(s, hard, soft, proc, n);
    if (idle >= 0) {
      s.setCurr(idle, unit, now);
      return true;
    }
    if (awake && t.i32[G.TAKEOVER] !== 0 && takeOver(s, unit, hard, soft, now)) return true;
  }
  // __runq_tickle: the slot whose vCPU has the lowest priority below ours (soft affinity first).
  let target = (hard & (1 << proc)) !== 0 ? proc : 31 - Math.clz32(hard & -hard);
  let victim = -1;
  let victimPri = s.pri(unit);
  for (let p = 0; p < n && !parked; p++) {
    if ((hard & (1 << p)) === 0) continue;
    const c = s.curr(p);
    const cp = c < 0 ? CSCHED_PRI_IDLE : s.pri(c);
    const better = cp < victimPri || (cp === victimPri && victim >= 0 && (soft & (1 << p)) !== 0 && (soft & (1 << victim)) === 0);
    if (better) {
      victim = p;
      victimPri = cp;
    }
  }
  if (victim >= 0) {
    target = victim;
    // The ratelimit: a vCPU keeps its slot at least this long; the tick asks later if too soon.
    // Not the slot of the vCPU whose event this wake is (credit.ts wakeBlocked): it would give its
    // slot up at its very next hypercall, in the middle of the batch it is answering.
    if (s.curr(victim) !== sender && now - t.f64[t.pf(victim, PF.SLICE)] >= s.ratelimitMs) {
      t.i32[G.TICKLES]++;
      s.resched(victim);
    }
  }
  s.enqueue(unit, target);
  return false;
}

/** An idle slot in `hard`: the last one it ran on, then soft affinity, then any. -1: none. */
function pickIdle(s: CreditCore, hard: number, soft: number, proc: number, n: number): number {
  const idle = (p: number) => s.curr(p) < 0;
  if ((soft & (1 << proc)) !== 0 && idle(proc)) return proc;
  for (let p = 0; p < n; p++) if ((soft & (1 << p)) !== 0 && idle(p)) return p;
  if ((hard & (1 << proc)) !== 0 && proc < n && idle(proc)) return proc;
  for (let p = 0; p < n; p++) if ((hard & (1 << p)) !== 0 && idle(p)) return p;
  return -1;
}

/**
 * A slot it may use that was handed to a thread which has not run yet (P.PENDING), whose vCPU has
 * at most `unit`'s priority and was not taken over already (lock held): `unit` takes it, and the
 * sleeper is queued again, keeping its ticket (U.SEQ). True if one was taken. Soft affinity first.
 */
function takeOver(s: CreditCore, unit: number, hard: number, soft: number, now: number): boolean {
  const t = s.t;
  let best = -1;
  for (let p = 0; p < t.nrPcpus; p++) {
    if ((hard & (1 << p)) === 0 || t.i32[t.p(p, P.PENDING)] === 0) continue;
    const x = s.curr(p);
    if (x < 0 || s.i(x, U.DISPLACED) !== 0 || s.pri(x) > s.pri(unit)) continue;
    if (best < 0 || ((soft & (1 << p)) !== 0 && (soft & (1 << best)) === 0)) best = p;
  }
  if (best < 0) return false;
  const x = s.curr(best);
  Atomics.store(t.i32, t.u(x, U.SLOT), 0);
  s.set(x, U.DISPLACED, 1);
  s.set(x, U.RUNQ, best + 1); // its old U.SEQ: ahead of everyone of its priority queued since
  s.setCurr(best, unit, now);
  t.i32[G.SWITCHES]++;
  t.i32[G.TAKEOVERS]++;
  return true;
}
