/*
 * Pinning: a vCPU's hard affinity applied to its host thread (hypervisor/sched/thread-affinity.ts),
 * and Xen's boot option dom0_vcpus_pin.
 *
 * The checks read the kernel's own answer (/proc/self/task/TID/status, Cpus_allowed_list) for the
 * thread that said it was the vCPU, so they fail if the tid was wrong, taskset was not run, or it
 * changed another thread. Where pinning cannot work (not Linux, no taskset, a process allowed one
 * core only) the pinning tests are skipped, saying why; the scheduler's side is checked anyway.
 */
import test from 'ava';
import { Host } from '../hypervisor/host.ts';
import { parseCpuList, threadCpus } from '../hypervisor/sched/thread-affinity.ts';
import type { DomainConfig } from '../shared/public/hypercall.ts';
import type { SchedGuestModule } from './kernels/sched-guest.ts';

const KERNEL = new URL('./kernels/sched-guest.ts', import.meta.url).href;

function guest(name: string, extra: Partial<DomainConfig> = {}): DomainConfig {
  return { name, vcpus: 1, memoryKiB: 2048, kernel: KERNEL, module: { mode: 'wake' } satisfies SchedGuestModule, ...extra };
}

async function until(cond: () => boolean, what: string): Promise<void> {
  for (let i = 0; !cond(); i++) {
    if (i > 12_000) throw new Error(`gave up waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

test('parseCpuList reads the kernel\'s list form', (t) => {
  t.deepEqual(parseCpuList('0-2,5,7-8\n'), [0, 1, 2, 5, 7, 8]);
  t.deepEqual(parseCpuList('3'), [3]);
});

const probe = new Host({ memoryMiB: 16, log: () => {}, pcpus: 2 });
const why = probe.sched.affinity.unavailable ?? ((probe.sched.affinity.hostCpus?.length ?? 0) < 2 ? 'this process may use one core only' : null);
await probe.close();
const pinTest = why === null ? test.serial : test.serial.skip;
if (why !== null) console.log(`sched-pin: pinning tests skipped: ${why}`);

pinTest('dom0_vcpus_pin pins Dom0\'s thread to the core of slot 0; cpus= pins a guest\'s; vcpu-pin moves it', async (t) => {
  const logs: string[] = [];
  const host = new Host({ memoryMiB: 32, log: (l) => logs.push(l), pcpus: 2, dom0_vcpus_pin: true });
  const aff = host.sched.affinity;
  const cores = aff.hostCpus!;
  try {
    const d0 = await host.createDomain(guest('dom0'), { privileged: true });
    const g = await host.createDomain(guest('pinned', { cpus: [1] }));
    const free = await host.createDomain(guest('free'));
    await until(() => aff.list().length >= 2, 'two threads pinned');
    await aff.settled();
    const pinOf = (d: number) => aff.list().find((p) => p.domid === d);
    const p0 = pinOf(d0)!;
    const pg = pinOf(g)!;
    t.deepEqual(host.sched.vcpus(d0, 1)[0].hard, [0], 'the scheduler honours it too: Dom0 on slot 0 only');
    t.deepEqual(p0.readBack, [cores[0]], `Dom0's thread: ${JSON.stringify(p0)}; ${logs.join(' | ')}`);
    t.deepEqual(pg.readBack, [cores[1]], `the guest's thread: ${JSON.stringify(pg)}`);
    t.is(p0.error, null);
    t.not(p0.tid, pg.tid, 'each vCPU named its own thread');
    t.is(pinOf(free), undefined, 'a guest that may run anywhere is left to the host OS');
    // The main thread (this one) was not touched.
    t.deepEqual(threadCpus(process.pid), cores);
    // xl vcpu-pin: to slot 0, then to every slot (the thread gets every core back).
    t.is(host.sched.pin(g, 0, [0], null), null);
    await aff.settled();
    t.deepEqual(threadCpus(pg.tid), [cores[0]]);
    t.is(host.sched.pin(g, 0, [0, 1], null), null);
    await aff.settled();
    t.deepEqual(threadCpus(pg.tid), cores);
    t.is(aff.counts.failed, 0);
    t.true(aff.counts.pinned >= 4);
  } finally {
    await host.close();
  }
});

test.serial('without dom0_vcpus_pin Dom0 may run on every slot, and no thread is pinned', async (t) => {
  const host = new Host({ memoryMiB: 32, log: () => {}, pcpus: 2 });
  try {
    const d0 = await host.createDomain(guest('dom0'), { privileged: true });
    await host.createDomain(guest('free'));
    t.deepEqual(host.sched.vcpus(d0, 1)[0].hard, [0, 1]);
    await host.sched.affinity.settled();
    t.deepEqual(host.sched.affinity.list(), []);
  } finally {
    await host.close();
  }
});
