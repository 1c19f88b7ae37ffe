/*
 * The scheduler's host-cost counters (hypervisor/sched/tables.ts G.HANDOVERS, SLOT_WAKES, TICKLES,
 * EVT_WAKES), driven directly with no threads: a slot taken while idle is no hand-over; a slot
 * given by a releasing vCPU to a queued one is; a BOOSTed wake beside an UNDER holder past the
 * ratelimit tickles it; an event wakes (and counts) only a thread that really sleeps on its flag;
 * a slot given to a thread asleep on its slot word wakes it once the scheduler's lock is dropped;
 * an event that wakes a thread stamps when (G.EVT_LAT_*'s start).
 */
import test from 'ava';
import { CreditScheduler } from '../hypervisor/sched/credit.ts';
import { HostScheduler } from '../hypervisor/sched/host-sched.ts';
import { G, GF, PF, U, UFL, unitOf } from '../hypervisor/sched/tables.ts';
import { HypervisorState, allocateBuffers } from '../hypervisor/state.ts';
import { evtchn_kick } from '../hypervisor/event-channel.ts';

function rig(pcpus: number) {
  const hv = new HypervisorState(allocateBuffers(1));
  const hs = new HostScheduler(hv, pcpus);
  hs.close();
  const cs = new CreditScheduler(hv, hs.t);
  return { hv, hs, cs, t0: hs.t.f64[GF.BOOT] };
}

test('hand-overs: an idle slot taken is none; a release to a queued vCPU is one; no thread slept, so no wake', (t) => {
  const { hs, cs, t0 } = rig(1);
  const a = unitOf(1, 0);
  const b = unitOf(2, 0);
  for (const [d, u] of [[1, a], [2, b]] as const) {
    cs.initDomain(d, 256, 0);
    cs.initUnit(u, 0, 0);
  }
  t.true(cs.wake(a, t0));
  t.is(hs.counters().handovers, 0);
  t.false(cs.wake(b, t0 + 0.1)); // queued behind a
  cs.release(a, t0 + 0.2);
  const c = hs.counters();
  t.is(c.handovers, 1);
  t.is(c.slot_wakes, 0); // b's "thread" was not waiting in Atomics.wait
  cs.release(b, t0 + 0.3);
  t.is(hs.counters().handovers, 1); // to nobody: the slot idles
});

test('tickles: a BOOSTed wake asks an UNDER holder to reschedule only past the ratelimit', (t) => {
  const { hs, cs, t0 } = rig(1);
  const a = unitOf(1, 0);
  const b = unitOf(2, 0);
  for (const [d, u] of [[1, a], [2, b]] as const) {
    cs.initDomain(d, 256, 0);
    cs.initUnit(u, 0, 0);
  }
  t.true(cs.wake(a, t0));
  // a has run for its BOOST's tick: UNDER again (csched_tick).
  cs.tick(t0 + 0.1);
  t.false(cs.wake(b, t0 + 0.2)); // within the 1 ms ratelimit: queued, no tickle
  t.is(hs.counters().tickles, 0);
  t.true(cs.dequeue(b)); // b leaves the runqueue (it never held a slot)
  hs.t.f64[hs.t.pf(0, PF.SLICE)] = t0 - 5; // a has held the slot for 5 ms
  t.false(cs.wake(b, t0 + 0.4));
  t.is(hs.counters().tickles, 1);
});

test('event wake-ups are counted only when a thread sleeps on the upcall flag', async (t) => {
  const { hv, hs } = rig(1);
  evtchn_kick(hv, 1, 0); // nobody waits
  t.is(hs.counters().evt_wakes, 0);
  const si = hv.sharedInfo[1]!;
  // A thread waiting on its upcall flag without saying so (U.ASLEEP) is not notified: only SCHEDOP_block waits there.
  const asleep = hs.t.u(unitOf(1, 0), U.ASLEEP);
  Atomics.store(hs.t.i32, asleep, 1); // as hypervisor/schedule.ts block() does before it waits
  const w = Atomics.waitAsync(si, 0, 0);
  t.true(w.async);
  evtchn_kick(hv, 1, 0);
  t.is(await w.value, 'ok');
  t.is(hs.counters().evt_wakes, 1);
  Atomics.store(hs.t.i32, asleep, 0); // awake again: a kick now notifies nobody
  evtchn_kick(hv, 1, 0);
  t.is(hs.counters().evt_wakes, 1);
});

test('a slot handed to a vCPU whose thread sleeps on its slot word wakes that thread (after the lock is dropped), counted once', async (t) => {
  const { hs, cs, t0 } = rig(1);
  const a = unitOf(1, 0);
  const b = unitOf(2, 0);
  for (const [d, u] of [[1, a], [2, b]] as const) {
    cs.initDomain(d, 256, 0);
    cs.initUnit(u, 0, 0);
  }
  t.true(cs.wake(a, t0));
  t.false(cs.wake(b, t0 + 0.1)); // queued behind a
  // b's thread asleep on its slot word, as in hypervisor/schedule.ts waitForSlot.
  // A bound, not a timing: a wake-up never made shows as 'timed-out' instead of a hang.
  const w = Atomics.waitAsync(hs.t.i32, hs.t.u(b, U.SLOT), 0, 10_000);
  t.true(w.async);
  cs.release(a, t0 + 0.2);
  t.is(await w.value, 'ok');
  t.is(Atomics.load(hs.t.i32, hs.t.u(b, U.SLOT)), 1); // slot 0, + 1
  const c = hs.counters();
  t.is(c.handovers, 1);
  t.is(c.slot_wakes, 1);
  t.is(Atomics.load(hs.t.i32, G.LOCK), 0); // the scheduler's lock is free again
});

test('an event stamps the time it woke a sleeping thread (for the event → running latency), and only then', async (t) => {
  const { hv, hs } = rig(1);
  const kicked = hs.t.uf(unitOf(1, 0), UFL.KICKED);
  evtchn_kick(hv, 1, 0); // nobody waits
  t.is(hs.t.f64[kicked], 0);
  Atomics.store(hs.t.i32, hs.t.u(unitOf(1, 0), U.ASLEEP), 1); // as hypervisor/schedule.ts block() does
  const w = Atomics.waitAsync(hv.sharedInfo[1]!, 0, 0, 10_000);
  evtchn_kick(hv, 1, 0);
  t.is(await w.value, 'ok');
  t.true(hs.t.f64[kicked] >= hs.t.f64[GF.BOOT]);
});
