/*
 * The idle loop's poll limit adapts as cpuidle-haltpoll's does (shared/kernel/events.ts,
 * adjustPollLimit): when the vCPU keeps sleeping longer than the policy's budget after a spin, the
 * spin shrinks to nothing (the vCPU then sleeps at once, as under `irq`); when it is woken within
 * the budget again, the spin grows back. Run on a bare EventChannels with a fake hypervisor whose
 * SCHEDOP_block returns after a delay the test chooses, and a driver that always waits for an
 * answer that never comes.
 */
import test from 'ava';
import { EventChannels, HALTPOLL_GROW_START_US } from '../shared/kernel/events.ts';
import type { Hypercalls } from '../shared/public/hypercall.ts';
import { POLL_BUDGET_US } from '../shared/wait.ts';

test('the poll limit halves to 0 while sleeps outlast the budget, and grows again when wakes come within it', async (t) => {
  let blocks = 0;
  let sleepMs = 2; // far longer than the 200 µs budget
  const limits: number[] = [];
  const hv = {
    sched_block: async () => {
      blocks++;
      if (sleepMs > 0) await new Promise((r) => setTimeout(r, sleepMs));
      limits.push(ev.pollLimitUs); // as adjusted after the previous sleep
      if (blocks === 12) sleepMs = 0; // from now on, woken at once
      if (blocks === 40) ev.stop();
    },
    xentrace: () => undefined,
  } as unknown as Hypercalls;
  const ev = new EventChannels(hv, new Int32Array(1024), 0);
  ev.policy = 'poll';
  ev.addPoller({ poll: () => false, prepareToSleep: () => false, busy: () => true });
  await ev.run();
  t.is(limits[0], POLL_BUDGET_US, 'it starts at the budget');
  t.is(limits[1], POLL_BUDGET_US / 2, 'the first long sleep halves it');
  t.is(limits[11], 0, `eleven long sleeps bring it to 0: ${limits.slice(0, 12).join(', ')}`);
  t.true(ev.idle.shrinks >= 8);
  t.true(ev.idle.grows > 0, `woken at once, the limit grows again: ${limits.slice(11).join(', ')}`);
  t.true(limits.slice(11).some((l) => l >= HALTPOLL_GROW_START_US), 'from 0 it grows to guest_halt_poll_grow_start');
});
