/*
 * The credit scheduler's two fairness rules ringvisor adds to credit.c's (hypervisor/sched/
 * credit-runq.ts, credit.ts claim), driven directly with no vCPU threads: one runqueue order
 * for all slots, and charging a vCPU given a slot while its thread slept from when its thread runs.
 * Nothing here asserts on time: the clock is passed in.
 */
import test from 'ava';
import { CreditScheduler } from '../hypervisor/sched/credit.ts';
import { HostScheduler } from '../hypervisor/sched/host-sched.ts';
import { GF, U, UFL, unitOf } from '../hypervisor/sched/tables.ts';
import { HypervisorState, allocateBuffers } from '../hypervisor/state.ts';

function rig(pcpus: number, doms: number[]) {
  const hv = new HypervisorState(allocateBuffers(1));
  const hs = new HostScheduler(hv, pcpus);
  hs.close();
  const cs = new CreditScheduler(hv, hs.t);
  for (const d of doms) {
    cs.initDomain(d, 256, 0);
    cs.initUnit(unitOf(d, 0), 0, 0);
  }
  return { hv, hs, cs, t0: hs.t.f64[GF.BOOT] };
}

test('a freed slot takes the longest-waiting vCPU of the best priority, whichever slot it was queued for', (t) => {
  const { hs, cs, t0 } = rig(2, [1, 2, 3, 4]);
  hs.setPool(undefined, undefined, false); // no BOOST: every vCPU UNDER, so order alone decides
  const [a, b, c] = [unitOf(1, 0), unitOf(2, 0), unitOf(3, 0)];
  // vCPU 1 of domain 4 is placed on slot 1 (initial placement spreads a domain's vCPUs).
  const f = unitOf(4, 1);
  cs.initUnit(f, 0, 0);
  t.true(cs.wake(a, t0)); // slot 0
  t.true(cs.wake(b, t0 + 0.1)); // slot 1
  t.false(cs.wake(c, t0 + 0.2)); // queued for slot 0 (where it last ran)
  t.false(cs.wake(f, t0 + 0.3)); // queued for slot 1, later
  t.is(hs.t.i32[hs.t.u(c, U.RUNQ)], 1);
  t.is(hs.t.i32[hs.t.u(f, U.RUNQ)], 2);
  cs.release(b, t0 + 0.4); // slot 1 frees: c has waited longer than slot 1's own f
  t.is(Atomics.load(hs.t.i32, hs.t.u(c, U.SLOT)), 2);
  t.is(hs.counters().steals, 1);
  cs.release(a, t0 + 0.5);
  t.is(Atomics.load(hs.t.i32, hs.t.u(f, U.SLOT)), 1);
});

test('a better priority queued for another slot goes first; equals go in the order they queued', (t) => {
  const { hs, cs, t0 } = rig(2, [1, 2, 3, 4, 5]);
  const [a, b, c, d, e] = [1, 2, 3, 4, 5].map((x) => unitOf(x, 0));
  t.true(cs.wake(a, t0));
  t.true(cs.wake(b, t0 + 0.1));
  t.false(cs.wake(c, t0 + 0.2)); // BOOST, queued first
  t.false(cs.wake(d, t0 + 0.3)); // BOOST, second
  // e has run past its credit: OVER, and its wake does not BOOST it.
  hs.t.i32[hs.t.u(e, U.PRI)] = -2;
  t.false(cs.wake(e, t0 + 0.4));
  cs.release(a, t0 + 0.5);
  cs.release(b, t0 + 0.6);
  t.is(Atomics.load(hs.t.i32, hs.t.u(c, U.SLOT)), 1);
  t.is(Atomics.load(hs.t.i32, hs.t.u(d, U.SLOT)), 2);
  t.is(Atomics.load(hs.t.i32, hs.t.u(e, U.SLOT)), 0);
  cs.release(d, t0 + 0.7);
  t.is(Atomics.load(hs.t.i32, hs.t.u(e, U.SLOT)), 2);
});

test('a vCPU given a slot while its thread slept is charged from when its thread runs, not from the hand-over', (t) => {
  const { hs, cs, t0 } = rig(1, [1, 2]);
  const a = unitOf(1, 0);
  const b = unitOf(2, 0);
  t.true(cs.wake(a, t0));
  t.false(cs.wake(b, t0 + 0.1)); // queued; its thread would sleep on its slot word
  cs.release(a, t0 + 0.2); // the slot is b's from here...
  t.true(cs.claim(b, t0 + 5.2)); // ...but the host runs its thread 5 ms later
  cs.release(b, t0 + 6.2); // it ran 1 ms: 10 credits (CSCHED_CREDITS_PER_MSEC), not 60
  const credit = hs.t.f64[hs.t.uf(b, UFL.CREDIT)];
  t.true(Math.abs(credit + 10) < 1e-6, `credit ${credit}`);
});
