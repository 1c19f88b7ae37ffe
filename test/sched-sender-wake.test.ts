/*
 * vcpu_wake on the event sender's side (hypervisor/sched/credit.ts wakeBlocked, called from
 * hypervisor/event-channel.ts evtchn_kick), driven directly with no vCPU threads: an event for a
 * vCPU that gave its slot up in SCHEDOP_block, sent while every slot is taken, queues it without
 * waking its thread; the slot's hand-over wakes that thread once, on its upcall word (where a
 * blocked thread sleeps), and the vCPU then holds the slot; with a slot idle, the event gives it
 * one and wakes it at once; the sender's own slot is never tickled by it; and with the
 * mechanism switched off (G.SENDER_WAKE 0, the host's default) the event wakes the thread as before.
 */
import test from 'ava';
import { CreditScheduler } from '../hypervisor/sched/credit.ts';
import { HostScheduler } from '../hypervisor/sched/host-sched.ts';
import { BLK_QUEUED, BLK_RUNNING, G, GF, PF, U, unitOf } from '../hypervisor/sched/tables.ts';
import { HypervisorState, MAX_VCPUS, VREQ_RESCHED, V, allocateBuffers } from '../hypervisor/state.ts';
import { evtchn_kick } from '../hypervisor/event-channel.ts';

function rig(pcpus: number) {
  const hv = new HypervisorState(allocateBuffers(1));
  const hs = new HostScheduler(hv, pcpus);
  hs.close();
  const cs = new CreditScheduler(hv, hs.t);
  hs.t.i32[G.SENDER_WAKE] = 1; // on (the host's default is off: RINGVISOR_SENDER_WAKE=1)
  return { hv, hs, cs, t0: hs.t.f64[GF.BOOT] };
}

/** Units of domains 1..n, vCPU 0 each, registered. */
function units(cs: CreditScheduler, n: number): number[] {
  return Array.from({ length: n }, (_, k) => {
    const u = unitOf(k + 1, 0);
    cs.initDomain(k + 1, 256, 0);
    cs.initUnit(u, 0, 0);
    return u;
  });
}

/** `unit`'s thread asleep in SCHEDOP_block, its slot given up (hypervisor/schedule.ts block, giveUp). */
function blockIn(hv: HypervisorState, hs: HostScheduler, cs: CreditScheduler, unit: number, now: number) {
  Atomics.add(hs.t.i32, hs.t.u(unit, U.ASLEEP), 1);
  cs.release(unit, now, false, true);
  // A bound, not a timing: a wake-up never made shows as 'timed-out' instead of a hang.
  return Atomics.waitAsync(hv.sharedInfo[Math.floor(unit / MAX_VCPUS)]!, 0, 0, 10_000);
}

/** The event's sender raises the flag, then kicks (event-channel.ts evtchn_send's order). */
function sendEvent(hv: HypervisorState, unit: number, sender = -1): void {
  Atomics.store(hv.sharedInfo[Math.floor(unit / MAX_VCPUS)]!, 0, 1);
  evtchn_kick(hv, Math.floor(unit / MAX_VCPUS), 0, sender);
}

const resched = (hv: HypervisorState, unit: number) =>
  (Atomics.load(hv.vcpus, hv.vcpu(Math.floor(unit / MAX_VCPUS), unit % MAX_VCPUS, V.REQUEST)) & VREQ_RESCHED) !== 0;

test('an event for a blocked vCPU with every slot taken queues it without waking its thread; the hand-over wakes it once, on its upcall word', async (t) => {
  const { hv, hs, cs, t0 } = rig(1);
  const [a, b] = units(cs, 2);
  t.true(cs.wake(a, t0)); // a holds the only slot
  const w = blockIn(hv, hs, cs, b, t0 + 0.1);
  t.true(w.async);
  sendEvent(hv, b, a);
  let c = hs.counters();
  t.is(c.evt_wakes, 0); // its thread was not woken ...
  t.is(c.wakes_queued, 1); // ... it was queued for a slot instead
  t.is(hs.t.i32[hs.t.u(b, U.BLOCKED)], BLK_QUEUED);
  t.not(hs.t.i32[hs.t.u(b, U.RUNQ)], 0);
  cs.release(a, t0 + 0.2); // a blocks: the slot goes to b, whose thread sleeps on its upcall word
  t.is(await w.value, 'ok'); // woken there (a wake on U.SLOT would leave this waiter to time out)
  t.is(Atomics.load(hs.t.i32, hs.t.u(b, U.SLOT)), 1);
  c = hs.counters();
  t.is(c.handovers, 1);
  t.is(c.slot_wakes, 1);
  t.is(hs.t.i32[hs.t.u(b, U.BLOCKED)], BLK_RUNNING);
  t.true(cs.wake(b, t0 + 0.3)); // its thread runs: the slot is its already
  t.is(Atomics.load(hs.t.i32, G.LOCK), 0);
});

test('an event for a blocked vCPU with a slot idle gives it the slot and wakes its thread at once', async (t) => {
  const { hv, hs, cs, t0 } = rig(1);
  const [b] = units(cs, 1);
  const w = blockIn(hv, hs, cs, b, t0);
  sendEvent(hv, b);
  t.is(await w.value, 'ok');
  t.is(Atomics.load(hs.t.i32, hs.t.u(b, U.SLOT)), 1);
  const c = hs.counters();
  t.is(c.wakes_queued, 0);
  t.is(c.handovers, 0); // taken as an idle slot, not handed over by a holder
  t.is(c.slot_wakes, 1);
});

test('the sender of the event keeps its slot: only a wake from elsewhere tickles it', (t) => {
  const { hv, hs, cs, t0 } = rig(1);
  const [a, b, c] = units(cs, 3);
  t.true(cs.wake(a, t0));
  cs.tick(t0 + 0.1); // a's BOOST ends at the tick that charges it: UNDER
  hs.t.f64[hs.t.pf(0, PF.SLICE)] = t0 - 5; // a has held the slot for 5 ms, past the 1 ms ratelimit
  void blockIn(hv, hs, cs, b, t0 + 0.2);
  sendEvent(hv, b, a); // a's own event (its next hypercall would otherwise give the slot away)
  t.is(hs.counters().tickles, 0);
  t.false(resched(hv, a));
  void blockIn(hv, hs, cs, c, t0 + 0.3);
  sendEvent(hv, c); // the control thread's (a timer's VIRQ): BOOST preempts the UNDER holder, as csched_unit_wake does
  t.is(hs.counters().tickles, 1);
  t.true(resched(hv, a));
  t.is(hs.counters().wakes_queued, 2);
});

test('switched off (G.SENDER_WAKE 0), the event wakes the blocked thread, which queues itself', async (t) => {
  const { hv, hs, cs, t0 } = rig(1);
  const [a, b] = units(cs, 2);
  hs.t.i32[G.SENDER_WAKE] = 0;
  t.true(cs.wake(a, t0));
  const w = blockIn(hv, hs, cs, b, t0 + 0.1);
  sendEvent(hv, b, a);
  t.is(await w.value, 'ok');
  const c = hs.counters();
  t.is(c.evt_wakes, 1);
  t.is(c.wakes_queued, 0);
  t.is(hs.t.i32[hs.t.u(b, U.RUNQ)], 0);
  t.false(cs.wake(b, t0 + 0.2)); // its own thread queues it
});
