// XEN_DOMCTL_unpausedomain is answered in the calling vCPU's thread (hypervisor/domctl-unpause.ts):
// it drops one pause reference of the domain and wakes its vCPUs without asking the control thread,
// which may be busy with a destroy or the hosts' network cards when a migration's target unpauses
// its guest. The privilege check and the errors stay as do_domctl's.
import test from 'ava';
import { HypercallTable, type ControlChannel } from '../hypervisor/hypercall.ts';
import type { VcpuScheduler } from '../hypervisor/schedule.ts';
import { D } from '../hypervisor/state.ts';
import { XEN_EPERM, XEN_ESRCH } from '../shared/public/xen.ts';
import { World } from './helpers/world.ts';

function table(w: World, privileged: boolean) {
  const d = w.domain({ privileged });
  const asked: string[] = [];
  const sched = { preemptionPoint() {}, yield() {}, block: () => Promise.resolve(), setTimer() {} } as unknown as VcpuScheduler;
  const control: ControlChannel = {
    domctl: (op) => { asked.push(op); return Promise.resolve(0); }, console() {}, xenLog() {}, shutdown: () => { throw new Error('shutdown'); },
  };
  return { d, hc: new HypercallTable(d.c, sched, control), asked };
}

test('unpause drops one pause reference in the caller\'s thread, the control thread never asked', async (t) => {
  const w = new World();
  const { hc, asked } = table(w, true);
  const guest = w.domain();
  const pause = guest.domid * D.WORDS + D.PAUSE_COUNT;
  Atomics.store(w.hv.domains, pause, 2); // built paused, and paused once more by xl pause
  t.is(await hc.domctl_unpausedomain(guest.domid), 0);
  t.is(Atomics.load(w.hv.domains, pause), 1, 'one reference dropped');
  t.is(await hc.domctl_unpausedomain(guest.domid), 0);
  t.is(Atomics.load(w.hv.domains, pause), 0);
  t.is(await hc.domctl_unpausedomain(guest.domid), 0, 'a running domain: nothing to drop, as before');
  t.is(Atomics.load(w.hv.domains, pause), 0, 'never below zero');
  t.deepEqual(asked, [], 'no domctl travelled to the control thread');
});

test('a paused vCPU waiting on the pause word is woken by the unpause', async (t) => {
  const w = new World();
  const { hc } = table(w, true);
  const guest = w.domain();
  const pause = guest.domid * D.WORDS + D.PAUSE_COUNT;
  Atomics.store(w.hv.domains, pause, 1);
  const waiting = Atomics.waitAsync(w.hv.domains, pause, 1);
  t.true(waiting.async);
  t.is(await hc.domctl_unpausedomain(guest.domid), 0);
  t.is(await waiting.value, 'ok');
});

test('unpause: no such domain is ESRCH, an unprivileged caller EPERM, and nothing changes', async (t) => {
  const w = new World();
  const dom0 = table(w, true);
  const guest = w.domain();
  const pause = guest.domid * D.WORDS + D.PAUSE_COUNT;
  Atomics.store(w.hv.domains, pause, 1);
  t.is(await dom0.hc.domctl_unpausedomain(200), -XEN_ESRCH);
  const other = table(w, false);
  t.is(await other.hc.domctl_unpausedomain(guest.domid), -XEN_EPERM);
  t.is(Atomics.load(w.hv.domains, pause), 1);
  w.kill(guest);
  t.is(await dom0.hc.domctl_unpausedomain(guest.domid), -XEN_ESRCH, 'a dying domain is not unpaused');
  t.deepEqual([...dom0.asked, ...other.asked], []);
});
