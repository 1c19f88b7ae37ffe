/*
 * vCPU hot-plug in the hypervisor (hypervisor/vcpu-op.ts) and per-vCPU affinity, without Dom0:
 * a domain built with max_vcpus > vcpus has the rest down; VCPUOP_up starts one at its kernel's
 * secondary entry; VCPUOP_down on another vCPU stops it at its next preemption point, offline,
 * holding no pCPU and earning no running time; brought up again it carries on where it stopped;
 * the last vCPU up going down powers the domain off. The toolstack and guest-kernel halves
 * (cpu/N/availability, vcpu-set) are test/cli-vcpu-hotplug.test.ts.
 */
import test from 'ava';
import { Host, type ShutdownEvent } from '../hypervisor/host.ts';

const KERNEL = new URL('./kernels/vcpu-op-guest.ts', import.meta.url).href;
const BURN = new URL('./kernels/sched-guest.ts', import.meta.url).href;

async function until(cond: () => boolean, what: string): Promise<void> {
  for (let i = 0; !cond(); i++) {
    if (i > 12_000) throw new Error(`gave up waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

test.serial('VCPUOP_up / down / is_up: offline vCPUs hold no slot and earn no time; the last one down powers off', async (t) => {
  const host = new Host({ memoryMiB: 32, log: () => {}, pcpus: 2 });
  const said: string[] = [];
  host.on('console', (e: { text: string }) => said.push(e.text.trim()));
  const line = (prefix: string) => said.find((s) => s.startsWith(prefix));
  try {
    const shutdown = new Promise<ShutdownEvent>((resolve) => host.once('shutdown', resolve));
    const d = await host.createDomain({ name: 'hp', vcpus: 1, max_vcpus: 3, memoryKiB: 2048, kernel: KERNEL });
    t.like(host.info(d), { vcpus: 1, max_vcpus: 3 });
    await until(() => line('bad') !== undefined, 'the first calls');
    t.is(line('is_up'), 'is_up 1 0 0 -2', 'vCPU 0 up, 1 and 2 built down, 3 does not exist (ENOENT)');
    t.is(line('bad'), 'bad -2 -2 -2');
    t.is(host.sched.vcpus(d, 3)[2].state, 'offline');
    t.is(host.sched.vcpus(d, 3)[2].cpu, -1);

    await until(() => line('v1 working') !== undefined, 'vCPU 1 up and working');
    t.is(line('up'), 'up 0 0');

    await until(() => line('v1 down') !== undefined, 'vCPU 1 taken down');
    t.is(line('down 0'), 'down 0 is_up 0', 'is_up says down at once');
    const m = /units (\d+) then (\d+)/.exec(line('v1 down')!)!;
    t.is(m[1], m[2], 'no unit done while down');
    await until(() => host.sched.vcpus(d, 3)[1].state === 'offline', 'runstate offline');
    const v1 = host.sched.vcpus(d, 3)[1];
    t.false(v1.running);
    t.is(v1.cpu, -1);
    t.false(host.sched.pcpuLoad().some((p) => p.curr === `d${d}v1`), 'it holds no pCPU');
    t.is(host.info(d)!.vcpus, 1);
    const time = v1.time_ms;
    await new Promise((r) => setTimeout(r, 200));
    t.is(host.sched.vcpus(d, 3)[1].time_ms, time, 'no running time while offline');

    await until(() => line('v1 resumed') !== undefined, 'vCPU 1 back');
    t.is(line('up again'), 'up again 0');
    const ev = await shutdown;
    t.is(ev.reason, 'poweroff', 'VCPUOP_down on the last vCPU up powers the domain off');
    t.truthy(line('last'));
    t.falsy(line('not reached'));
  } finally {
    await host.close();
  }
});

test.serial('per-vCPU hard affinity (xl.cfg cpus = ["0", "1"]): each vCPU runs only on its own pCPU', async (t) => {
  const host = new Host({ memoryMiB: 32, log: () => {}, pcpus: 2 });
  const said: string[] = [];
  host.on('console', (e: { domid: number; text: string }) => said.push(`d${e.domid} ${e.text.trim()}`));
  try {
    const d = await host.createDomain({ name: 'pinned', vcpus: 2, memoryKiB: 2048, kernel: BURN, module: { mode: 'burn' },
      vcpu_hard_affinity: [[1], [0]], vcpu_soft_affinity: [[1]] });
    const other = await host.createDomain({ name: 'other', vcpus: 1, memoryKiB: 2048, kernel: BURN, module: { mode: 'burn' } });
    await until(() => said.includes(`d${d} v0 burning`) && said.includes(`d${d} v1 burning`) && said.includes(`d${other} v0 burning`), 'all burning');
    const rows = host.sched.vcpus(d, 2);
    t.deepEqual(rows.map((r) => r.hard), [[1], [0]]);
    t.deepEqual(rows.map((r) => r.soft), [[1], []], 'vCPUs past the list\'s end: no preference');
    // Let them compete for a while (other's vCPU runs anywhere, so both slots change hands).
    const before = host.sched.counters().switches;
    await until(() => host.sched.counters().switches > before + 20, 'some switches');
    t.deepEqual(host.sched.unitCounters(d, 0).ranOn, [1]);
    t.deepEqual(host.sched.unitCounters(d, 1).ranOn, [0]);
    await t.throwsAsync(host.createDomain({ name: 'bad', vcpus: 1, memoryKiB: 2048, kernel: BURN, module: { mode: 'burn' },
      vcpu_hard_affinity: [[5]] }), { message: /cpus names pCPU 5, but this host has pCPUs 0\.\.1/ });
  } finally {
    await host.close();
  }
});
