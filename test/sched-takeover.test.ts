/*
 * Work conservation in the credit scheduler (hypervisor/sched/credit-wake.ts takeOver), driven
 * directly with no vCPU threads: a slot handed to a vCPU whose thread has not run yet (it is
 * being woken on its U.SLOT word) is taken by a vCPU whose thread is awake, of at least its
 * priority and allowed on that slot; the sleeper is queued again with its ticket, first for the
 * next slot, and is not taken over twice before it runs; an event's sender (whose wakee's thread
 * sleeps) never takes one over. Counts and order only: the clock is passed in.
 */
import test from 'ava';
import { CreditScheduler } from '../hypervisor/sched/credit.ts';
import { HostScheduler } from '../hypervisor/sched/host-sched.ts';
import { CSCHED_PRI_TS_OVER, G, GF, P, U, unitOf } from '../hypervisor/sched/tables.ts';
import { HypervisorState, MAX_VCPUS, allocateBuffers } from '../hypervisor/state.ts';
import { evtchn_kick } from '../hypervisor/event-channel.ts';

function rig(pcpus: number, doms: number[]) {
  const hv = new HypervisorState(allocateBuffers(1));
  const hs = new HostScheduler(hv, pcpus);
  hs.close();
  hs.t.i32[G.TAKEOVER] = 1; // off by default (RINGVISOR_TAKEOVER=1 turns it on): these tests are about what it does when on
  const cs = new CreditScheduler(hv, hs.t);
  for (const d of doms) {
    cs.initDomain(d, 256, 0);
    cs.initUnit(unitOf(d, 0), 0, 0);
  }
  const slotOf = (u: number) => Atomics.load(hs.t.i32, hs.t.u(u, U.SLOT));
  const pending = (slot: number) => hs.t.i32[hs.t.p(slot, P.PENDING)];
  return { hv, hs, cs, t0: hs.t.f64[GF.BOOT], slotOf, pending };
}

test('an awake vCPU takes a slot handed to a thread not yet running; the sleeper keeps its place and gets the next slot', (t) => {
  const { hs, cs, t0, slotOf, pending } = rig(1, [1, 2, 3, 4, 5]);
  const [a, b, c, d, e] = [1, 2, 3, 4, 5].map((k) => unitOf(k, 0));
  t.true(cs.wake(a, t0)); // a runs on the only slot
  t.false(cs.wake(b, t0 + 0.1)); // b queued first ...
  t.false(cs.wake(d, t0 + 0.2)); // ... d behind it
  cs.release(a, t0 + 0.3); // a blocks: the slot is handed to b, whose thread sleeps on U.SLOT
  t.is(slotOf(b), 1);
  t.is(pending(0), 1);
  t.is(hs.counters().handovers, 1);
  t.true(cs.wake(c, t0 + 0.31)); // c's thread is awake (an event woke it): it takes the slot now
  t.is(slotOf(c), 1);
  t.is(slotOf(b), 0);
  t.is(pending(0), 0);
  t.is(hs.counters().takeovers, 1);
  t.false(cs.claim(b, t0 + 0.35)); // b's thread runs, finds the slot gone, and waits on
  t.is(hs.t.i32[hs.t.u(b, U.RUNQ)], 1); // queued again ...
  cs.release(c, t0 + 0.4);
  t.is(slotOf(b), 1); // ... ahead of d, who was queued after it
  t.is(slotOf(d), 0);
  t.is(pending(0), 1);
  t.false(cs.wake(e, t0 + 0.41)); // not taken over twice before it runs: e queues
  t.is(hs.counters().takeovers, 1);
  t.true(cs.claim(b, t0 + 0.45)); // b runs at last
  t.is(pending(0), 0);
  t.is(Atomics.load(hs.t.i32, G.LOCK), 0);
});

test('a pending hand-over is not taken by a lower priority, nor from a slot outside the taker\'s hard affinity', (t) => {
  const { hs, cs, t0, slotOf, pending } = rig(2, [1, 2, 3, 4, 5]);
  const [a, z, b, c, f] = [1, 2, 3, 4, 5].map((k) => unitOf(k, 0));
  t.true(cs.wake(a, t0)); // slot 0
  t.true(cs.wake(z, t0 + 0.1)); // slot 1
  t.false(cs.wake(b, t0 + 0.2)); // queued (BOOST on wake)
  cs.release(a, t0 + 0.3); // handed to b on slot 0, pending
  t.is(pending(0), 1);
  // c is OVER (it has run past its credit): lower than b's BOOST, and an OVER vCPU is not boosted on wake.
  hs.t.i32[hs.t.u(c, U.PRI)] = CSCHED_PRI_TS_OVER;
  t.false(cs.wake(c, t0 + 0.31));
  // f may run on slot 1 only (vcpu-pin): slot 0's pending hand-over is not for it.
  cs.setAffinity(f, 0b10, 0);
  t.false(cs.wake(f, t0 + 0.32));
  t.is(slotOf(b), 1);
  t.is(hs.counters().takeovers, 0);
  t.true(cs.claim(b, t0 + 0.4));
});

test('an event\'s sender that queues a sleeping vCPU never takes a pending hand-over: its thread is not awake', async (t) => {
  const { hv, hs, cs, t0, slotOf, pending } = rig(1, [1, 2, 3]);
  hs.t.i32[G.SENDER_WAKE] = 1;
  const [a, b, c] = [1, 2, 3].map((k) => unitOf(k, 0));
  t.true(cs.wake(a, t0));
  t.false(cs.wake(b, t0 + 0.1));
  // c blocks in SCHEDOP_block (hypervisor/schedule.ts block, giveUp): its thread sleeps on its upcall word.
  Atomics.add(hs.t.i32, hs.t.u(c, U.ASLEEP), 1);
  cs.release(c, t0 + 0.15, false, true);
  const w = Atomics.waitAsync(hv.sharedInfo[3]!, 0, 0, 10_000); // a bound, not a timing: a lost wake-up shows as 'timed-out'
  cs.release(a, t0 + 0.2); // handed to b, pending
  t.is(pending(0), 1);
  Atomics.store(hv.sharedInfo[3]!, 0, 1);
  evtchn_kick(hv, 3, 0, a); // the event makes c runnable without waking its thread: it queues
  t.is(hs.counters().wakes_queued, 1);
  t.is(hs.counters().takeovers, 0);
  t.is(slotOf(b), 1);
  t.true(cs.claim(b, t0 + 0.3));
  cs.release(b, t0 + 0.4); // the slot goes to c, woken on its upcall word
  t.is(await w.value, 'ok');
  t.is(slotOf(c), 1);
  t.is(Math.floor(c / MAX_VCPUS), 3);
});
