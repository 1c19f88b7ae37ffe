/*
 * Scenario `cpu-share`: the credit scheduler at work, narrated.
 *
 * Xen: what `xl sched-credit`, `xl vcpu-pin` and `xl vcpu-list` show on a host whose guests
 * compete for CPUs (xen/common/sched/credit.c does the deciding). Three CPU-bound guests share
 * one pCPU with weights 256/256/512; then the heavy one gets a 20% cap; then an I/O-bound guest
 * sleeping on its timer runs beside the hogs, with BOOST and without; last, on a two-pCPU host,
 * one guest is pinned to a pCPU of its own. Every second: each guest's share of a pCPU (its running time),
 * its credit and priority, and what the scheduler did (switches, accounting periods, BOOSTs,
 * parks, steals). Then vCPU hot-plug on a full host (./sched/vcpu-hotplug.ts): a vCPU brought
 * online and taken offline under a running workload. About 30 seconds.
 */
import type { WakeResult } from '../domu/workloads/cpu.ts';
import { CpuRig } from './sched/rig.ts';
import { vcpuHotplug } from './sched/vcpu-hotplug.ts';
import type { ScenarioOptions } from './registry.ts';
import { DEFAULT_WAIT_POLICY } from '../shared/wait.ts';

const SECONDS_PER_PHASE = 3;

export async function cpuShare(say: (line: string) => void, opts: ScenarioOptions = { wait: DEFAULT_WAIT_POLICY }): Promise<void> {
  say('A host with one pCPU (ringvisor host --pcpus 1) and the credit scheduler: 30 ms timeslice,');
  say('10 ms ticks, accounting every timeslice, 1 ms ratelimit.');
  let rig = new CpuRig(1);
  try {
    const ids: number[] = [];
    for (const [name, weight] of [['alpha', 256], ['beta', 256], ['gamma', 512]] as const) {
      ids.push(await rig.create(name, { mode: 'burn' }, { weight }));
    }
    for (const d of ids) await rig.line(d, 'v0 burning');
    say('Three CPU hogs (cpu-burn), weights 256 / 256 / 512: accounting shares out 300 credits per');
    say('timeslice by weight, so expect 25% / 25% / 50% of the pCPU.');
    await watch(rig, ids, SECONDS_PER_PHASE, say);

    rig.host.sched.setDomain(ids[2], undefined, 20);
    say('xl sched-credit -d gamma -c 20: gamma may use at most 20% of the pCPU. Once its credit falls');
    say('below minus its cap\'s share it is parked (P) until accounting makes it positive again;');
    say('expect about 40% / 40% / 20%.');
    await watch(rig, ids, SECONDS_PER_PHASE, say);
    rig.host.sched.setDomain(ids[2], undefined, 0);

    say('An I/O-bound guest (io-wake: sleep 5 ms on its timer, wake, a little work) beside the hogs.');
    say('It wakes with credit, so credit.c makes it BOOST, above the hogs: it preempts one at once.');
    for (const boost of [true, false]) {
      rig.host.sched.setPool(undefined, undefined, boost);
      const w = await rig.create(`io-wake-${boost ? 'boost' : 'noboost'}`, { mode: 'wake', count: 150, periodMs: 5 });
      const r = JSON.parse(await rig.line(w, 'wake-result')) as WakeResult;
      say(`  ${boost ? 'with BOOST   ' : 'without BOOST'}: ${r.wakes} wake-ups, late by median ${fmtUs(r.medianUs)}, 99th percentile ${fmtUs(r.p99Us)}; ` +
        `${rig.host.sched.unitCounters(w, 0).boosts} wake-ups at BOOST, ${r.early} early`);
      await rig.host.destroy(w);
    }
    say('Without BOOST the waker is UNDER like the hogs whenever they are, and may wait for a');
    say('timeslice to end (up to 30 ms); with it, it runs after the ratelimit and the hog\'s next');
    say('preemption point.');
    await rig.close();

    rig = new CpuRig(2);
    ids.length = 0;
    for (const [name, cpus] of [['alpha', [0]], ['beta', [0]], ['gamma', [0, 1]]] as const) {
      ids.push(await rig.create(name, { mode: 'burn' }, { cpus: [...cpus] }));
    }
    for (const d of ids) await rig.line(d, 'v0 burning');
    rig.host.sched.pin(ids[2], 0, [1], null);
    say('A host with two pCPUs: alpha and beta pinned to pCPU 0 (cpus = [0]), and xl vcpu-pin gamma 0 1:');
    say('gamma has pCPU 1 to itself. Expect 50% / 50% / 100% (of one pCPU each). credit1 shares');
    say('credit as if every vCPU could use every pCPU, so with pins like these everyone stays UNDER');
    say('and the pins, not the weights, decide: a known limit of credit1 (credit2 has per-pCPU runqueues).');
    await watch(rig, ids, SECONDS_PER_PHASE, say);
    say('(Figures from this run only, on whatever else this machine is doing; npm run bench -- --suite sched measures.)');
  } finally {
    await rig.close();
  }
  say('');
  say('Last, vCPUs themselves come and go (also on its own: npm start -- vcpu-hotplug).');
  await vcpuHotplug(say, opts);
}

async function watch(rig: CpuRig, ids: number[], seconds: number, say: (line: string) => void): Promise<void> {
  const host = rig.host;
  say(`  ${'t'.padStart(3)}  ${'guest'.padEnd(6)} ${'weight'.padStart(6)} ${'cap'.padStart(4)} ${'cpus'.padStart(4)}  ${'share'.padStart(6)}  ${'credit'.padStart(7)}  pri    scheduler`);
  for (let s = 1; s <= seconds; s++) {
    const cpu0 = ids.map((d) => rig.cpuMs(d));
    const c0 = host.sched.counters();
    const t0 = performance.now();
    await new Promise((r) => setTimeout(r, 1000));
    const dt = performance.now() - t0;
    const c1 = host.sched.counters();
    ids.forEach((d, i) => {
      const p = host.sched.getDomain(d);
      const v = host.sched.vcpus(d, 1)[0];
      const share = ((rig.cpuMs(d) - cpu0[i]) / dt) * 100;
      const what = i === 0
        ? `${c1.switches - c0.switches} switches, ${c1.accts - c0.accts} accountings, ${c1.boosts - c0.boosts} BOOSTs, ${c1.parks - c0.parks} parks, ${c1.steals - c0.steals} steals`
        : '';
      say(`  ${String(s).padStart(2)}s  ${host.info(d)!.name.padEnd(6)} ${String(p.weight).padStart(6)} ${String(p.cap).padStart(4)} ${v.hard.join(',').padStart(4)}  ` +
        `${share.toFixed(0).padStart(5)}%  ${v.credit.toFixed(0).padStart(7)}  ${v.pri.padEnd(5)}${v.parked ? 'P' : ' '} ${what}`);
    });
  }
}

const fmtUs = (us: number) => (us >= 1000 ? `${(us / 1000).toFixed(1)} ms` : `${us.toFixed(0)} µs`);
