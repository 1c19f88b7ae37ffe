/*
 * Pause against a slot hand-over (hypervisor/schedule.ts waitForSlot): a paused vCPU runs no guest
 * code until it is unpaused. Xen's domain_pause takes the vCPU off its runqueue (vcpu_sleep_sync);
 * here the scheduler skips a paused domain's queued vCPUs (sched/credit-runq.ts pickNext), and
 * the pause wakes a queued vCPU so it leaves its runqueue.
 *
 * The race this fixes (the flaky "a paused domain earns nothing", test/sched.test.ts, which failed
 * once under load): a slot handed to a vCPU just before the pause, while its thread still slept.
 * Its runstate was not yet running, so the host took it for stopped (Host.isQuiescent); then its
 * thread woke, counted itself running from the hand-over, and ran guest code to its next
 * preemption point: running time grew while paused. Now a vCPU whose slot comes with a pause
 * pending hands it back unused. The second test makes that race on purpose (it failed before).
 * No assertion on time: waits are "until N ms of running time were accounted" or a state.
 */
import test from 'ava';
import { Host } from '../hypervisor/host.ts';
import type { DomainConfig } from '../shared/public/hypercall.ts';
import type { SchedGuestModule } from './kernels/sched-guest.ts';
import { U, unitOf } from '../hypervisor/sched/tables.ts';

const KERNEL = new URL('./kernels/sched-guest.ts', import.meta.url).href;
const ROUNDS = 6;

function burner(name: string): DomainConfig {
  return { name, vcpus: 1, memoryKiB: 2048, kernel: KERNEL, module: { mode: 'burn' } satisfies SchedGuestModule };
}

async function until(cond: () => boolean, what: string): Promise<void> {
  for (let i = 0; !cond(); i++) {
    if (i > 12_000) throw new Error(`gave up waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 2));
  }
}

/** A host with one pCPU slot and two CPU-bound guests, a and b, both burning. */
async function twoBurners(host: Host) {
  const said: string[] = [];
  host.on('console', (e: { domid: number; text: string }) => said.push(`d${e.domid} ${e.text}`));
  const a = await host.createDomain(burner('a'));
  const b = await host.createDomain(burner('b'));
  await until(() => said.includes(`d${a} v0 burning`) && said.includes(`d${b} v0 burning`), 'both burning');
  return { a, b, cpu: (d: number) => host.info(d)!.cpu_time_ms, vb: () => host.sched.vcpus(b, 1)[0] };
}

test('a vCPU paused while queued for the one slot runs nothing until unpaused', async (t) => {
  const host = new Host({ memoryMiB: 32, log: () => {}, pcpus: 1 });
  try {
    const { a, b, cpu, vb } = await twoBurners(host);
    for (let r = 0; r < ROUNDS; r++) {
      // b waits in the runqueue (runnable, no slot) while a holds the slot.
      await until(() => vb().state === 'runnable' && host.sched.pcpuLoad()[0].curr === `d${a}v0`, 'b queued behind a');
      host.pause(b);
      await until(() => host.isQuiescent(b), 'b stopped');
      const frozen = cpu(b);
      // Several of a's timeslices: each would have handed b the slot.
      const a0 = cpu(a);
      await until(() => cpu(a) - a0 >= 100, '100 ms of a running');
      t.is(cpu(b), frozen, `round ${r}: b accounted no running time while paused`);
      t.is(vb().running, false, `round ${r}: b holds no slot while paused`);
      host.unpause(b);
      await until(() => cpu(b) > frozen, 'b runs again once unpaused');
    }
  } finally {
    await host.close();
  }
});

test('a vCPU handed the slot just as it is paused hands it back unused: no running time while paused', async (t) => {
  const host = new Host({ memoryMiB: 32, log: () => {}, pcpus: 1 });
  try {
    const { a, b, cpu, vb } = await twoBurners(host);
    // b's U.SLOT word: read directly, so the look takes nanoseconds.
    const t32 = host.sched.t.i32;
    const slotWord = host.sched.t.u(unitOf(b, 0), U.SLOT);
    let raced = 0;
    let rounds = 0;
    for (let r = 0; r < 40 && raced < 3; r++, rounds++) {
      await until(() => vb().state === 'runnable' && host.sched.pcpuLoad()[0].curr === `d${a}v0`, 'b queued behind a');
      // Pausing a hands its slot to b (a's thread does, at its next preemption point). The moment
      // b holds it, before its thread can have woken, b is paused. Looked for synchronously: a
      // setTimeout would let b's thread run first. Bounded, in case a never gives the slot up.
      host.pause(a);
      const until2 = performance.now() + 5000;
      while (Atomics.load(t32, slotWord) === 0 && performance.now() < until2) { /* a hand-over takes microseconds to see */ }
      t.true(vb().running, 'b was handed the slot');
      host.pause(b);
      // b's thread had not run yet: the host takes b for stopped (its runstate is not running).
      if (host.isQuiescent(b)) raced++;
      await until(() => host.isQuiescent(b) && host.isQuiescent(a), 'both stopped');
      const frozen = cpu(b);
      // b's thread wakes to the slot, sees the pause, and gives the slot up.
      await until(() => !vb().running, 'b gives the slot up');
      t.is(cpu(b), frozen, `round ${r}: b accounted no running time while paused`);
      host.unpause(a);
      host.unpause(b);
      await until(() => cpu(b) > frozen, 'b runs again once unpaused');
    }
    t.log(`${raced} of ${rounds} pauses landed between the hand-over and b's thread running`);
    t.true(raced > 0, 'the race was made at least once');
  } finally {
    await host.close();
  }
});
