/*
 * No work lost to vCPU hot-plug: cpu-burn runs on every online vCPU of the standard DomU kernel
 * while `vcpu-set` brings a vCPU up and takes two down, mid-run. The proof is read from the
 * guest's own SMP page (shared/kernel/smp.ts) with the domain paused: every unit handed out was
 * finished, exactly once (the job's digest is that of units 0..N-1), the vCPUs that went
 * offline did work before and none after, and vCPU 0 carried on. In-process (the xl daemon's
 * calls without the CLI's process start-up), so nothing here depends on how long the job runs;
 * the CLI's verbs and messages are test/cli-vcpu-hotplug.test.ts.
 */
import test from 'ava';
import { readFileSync, existsSync } from 'node:fs';
import type { CreateResult } from '../dom0/toolstack/protocol.ts';
import { jobDigest } from '../domu/workloads/cpu-smp.ts';
import { DomainMemory } from '../hypervisor/guest-memory.ts';
import { SMP, smpAreaGfn } from '../shared/kernel/smp.ts';
import { oneHost } from './helpers/one-host.ts';

const rig = oneHost(test, 'rv-hpwork-', 96, { pcpus: 2 });

async function until(cond: () => boolean, what: string, context: () => string = () => ''): Promise<void> {
  for (let i = 0; !cond(); i++) {
    if (i > 12_000) throw new Error(`gave up waiting for ${what}\n${context()}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

test('cpu-burn on every online vCPU: vCPUs come and go mid-run and every unit is done exactly once', async (t) => {
  const { rh, xl } = rig;
  const vm = await xl.call<CreateResult>({ verb: 'create', path: rig.vm('burner', ['memory = 32', 'vcpus = 2', 'maxvcpus = 3', 'workload = "cpu-burn"']) });
  const text = () => (existsSync(vm.consoleLog) ? readFileSync(vm.consoleLog, 'utf8') : '');
  const built = rh.host.built(vm.domid)!;
  const si = { start_info_gfn: built.start_info_gfn, store_gfn: built.store_gfn, console_gfn: built.console_gfn };
  const smp = new DomainMemory(rh.host.hv, vm.domid).pageWords(smpAreaGfn(si), false);
  const w = (i: number) => Atomics.load(smp, i);
  const by = (v: number) => w(SMP.JOB_BY_CPU + v);
  const set = (n: number) => xl.call({ verb: 'sched', op: { op: 'vcpu-set', domain: 'burner', count: String(n), ignoreHost: true } });

  await until(() => by(0) > 0 && by(1) > 0, 'vCPUs 0 and 1 at work', text);
  t.is(by(2), 0, 'vCPU 2 is down at boot');
  await set(3);
  await until(() => by(2) > 0, 'vCPU 2 up and at work', text);
  await set(1);
  await until(() => text().includes('CPU 1 is now offline') && text().includes('CPU 2 is now offline'), 'vCPUs 1 and 2 offline', text);
  const gone = [by(1), by(2)];
  const v0 = by(0);
  await until(() => by(0) > v0 + 200, 'vCPU 0 carries on', text);
  t.deepEqual([by(1), by(2)], gone, 'offline vCPUs do no work');

  // Paused, every vCPU stops at a preemption point, which in the job's loop comes only after
  // a unit's result is published: so every unit handed out must be done.
  await xl.call({ verb: 'pause', domain: 'burner' });
  await until(() => rh.host.isQuiescent(vm.domid), 'the domain stopped');
  const done = w(SMP.JOB_DONE);
  t.is(w(SMP.JOB_NEXT), done, 'every unit claimed was finished');
  t.is(by(0) + by(1) + by(2), done, 'each by exactly one vCPU');
  t.is(w(SMP.JOB_DIGEST) >>> 0, jobDigest(done), 'and the digest is that of units 0..N-1');
  t.log(`${done} units: vCPU 0 ${by(0)}, vCPU 1 ${by(1)}, vCPU 2 ${by(2)}`);
  await xl.call({ verb: 'unpause', domain: 'burner' });
  await xl.call({ verb: 'destroy', domain: 'burner' });
});
