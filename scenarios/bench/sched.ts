/*
 * Bench suite `sched`: the credit scheduler's accuracy and costs.
 *
 *   share    two CPU hogs at weights 256:512 on one pCPU: the ratio of their running times
 *            against 2 (error in %, goal ≤ 5)
 *   cap      a hog capped at 20% beside an uncapped one on one pCPU: its share (error in
 *            percentage points, goal ≤ 2)
 *   io-wake  a guest sleeping 5 ms on its timer beside two hogs on one pCPU, with BOOST and with
 *            it switched off (sched-credit -s --boost off): how late it runs (median µs, goal
 *            with BOOST ≤ 2000)
 *   sim      share and cap again, from the algorithm alone on a simulated clock (../sched/sim.ts):
 *            the part of the errors above that is not the host's timing
 *   decision the scheduler's own work, in-process on a table of 8 waiting vCPUs: one
 *            csched_schedule that keeps the pCPU, and one that switches (µs)
 *   burn     cpu-burn on every core, the scheduler on (pcpus = cores) against off (pcpus 0, the
 *            host OS decides): work units per second, and their ratio (goal ≥ 0.95)
 *
 * Shares are runstate times (the scheduler's decisions); latencies are the guest's own clock.
 */
import { availableParallelism } from 'node:os';
import { CreditScheduler } from '../../hypervisor/sched/credit.ts';
import { HostScheduler } from '../../hypervisor/sched/host-sched.ts';
import { unitOf } from '../../hypervisor/sched/tables.ts';
import { HypervisorState, allocateBuffers } from '../../hypervisor/state.ts';
import type { WakeResult } from '../../domu/workloads/cpu.ts';
import { CpuRig } from '../sched/rig.ts';
import { simulateShares } from '../sched/sim.ts';

const SIM = 'credit (simulated clock)';
import type { BenchRow, SuiteOptions } from './types.ts';

/* The CPU rig's guests run under the default waiting policy, irq: they block on their timers. */
function row(path: string, workload: string, counters: Record<string, number>, extra: Partial<BenchRow> = {}): BenchRow {
  return { suite: 'sched', path, wait: 'irq', workload, blockSize: 0, queueDepth: 0, reqPerSec: 0, MBps: 0, counters, ...extra };
}

async function share(ms: number): Promise<BenchRow> {
  const rig = new CpuRig(1);
  try {
    const a = await rig.create('w256', { mode: 'burn' }, { weight: 256 });
    const b = await rig.create('w512', { mode: 'burn' }, { weight: 512 });
    await rig.line(a, 'v0 burning');
    await rig.line(b, 'v0 burning');
    await rig.shares([a, b], 300);
    const [ra, rb] = await rig.shares([a, b], ms);
    const ratio = rb / ra;
    return row('credit', 'share 256:512', { ratio, errorPct: Math.abs(ratio / 2 - 1) * 100 });
  } finally {
    await rig.close();
  }
}

async function cap(ms: number): Promise<BenchRow> {
  const rig = new CpuRig(1);
  try {
    const c = await rig.create('capped', { mode: 'burn' }, { cap: 20 });
    const f = await rig.create('free', { mode: 'burn' });
    await rig.line(c, 'v0 burning');
    await rig.line(f, 'v0 burning');
    await rig.shares([c, f], 300);
    const [rc, rf] = await rig.shares([c, f], ms);
    const pct = (rc / (rc + rf)) * 100;
    return row('credit', 'cap 20%', { sharePct: pct, errorPP: Math.abs(pct - 20), parks: rig.host.sched.counters().parks });
  } finally {
    await rig.close();
  }
}

async function ioWake(boost: boolean, count: number): Promise<BenchRow> {
  const rig = new CpuRig(1);
  try {
    rig.host.sched.setPool(undefined, undefined, boost);
    const hogs = [await rig.create('hog1', { mode: 'burn' }), await rig.create('hog2', { mode: 'burn' })];
    for (const h of hogs) await rig.line(h, 'v0 burning');
    const w = await rig.create('waker', { mode: 'wake', count, periodMs: 5 });
    const r = JSON.parse(await rig.line(w, 'wake-result')) as WakeResult;
    const c = rig.host.sched.counters();
    return row(boost ? 'credit' : 'credit, no BOOST', 'io-wake beside 2 hogs', {
      p99Us: r.p99Us, maxUs: r.maxUs, boosts: rig.host.sched.unitCounters(w, 0).boosts,
      // Decision → effect: from a wake-up's tickle to the hog giving up the pCPU at its next preemption point.
      effectMeanUs: c.lateMeanMs * 1000, effectMaxUs: c.lateMaxMs * 1000,
    }, { medianUs: r.medianUs, repeats: r.wakes });
  } finally {
    await rig.close();
  }
}

/** The scheduler's decision alone, in-process: no threads, a table with 8 vCPUs queued. */
function decision(iterations: number): BenchRow[] {
  const hv = new HypervisorState(allocateBuffers(1));
  const hs = new HostScheduler(hv, 1);
  hs.close();
  const cs = new CreditScheduler(hv, hs.t);
  for (let d = 1; d <= 9; d++) { cs.initDomain(d, 256, 0); cs.initUnit(unitOf(d, 0), 0, 0); }
  let t = performance.timeOrigin + performance.now();
  const running = unitOf(1, 0);
  cs.wake(running, t);
  for (let d = 2; d <= 9; d++) cs.wake(unitOf(d, 0), t);
  // Keep: within the ratelimit nobody may take the pCPU.
  let t0 = performance.now();
  for (let i = 0; i < iterations; i++) cs.schedule(running, t);
  const keepUs = ((performance.now() - t0) * 1000) / iterations;
  // Switch: each call hands the pCPU to the next in line (all UNDER, slice over).
  let cur = running;
  t0 = performance.now();
  for (let i = 0; i < iterations; i++) {
    t += 31;
    cs.schedule(cur, t);
    cur = hs.t.i32[hs.t.p(0, 0)] - 1;
  }
  const switchUs = ((performance.now() - t0) * 1000) / iterations;
  return [row('credit', 'decision (keep)', {}, { medianUs: keepUs }), row('credit', 'decision (switch)', {}, { medianUs: switchUs })];
}

async function burn(pcpus: number, ms: number, hogs: number): Promise<number> {
  const rig = new CpuRig(pcpus);
  try {
    const doms: number[] = [];
    for (let i = 0; i < hogs; i++) doms.push(await rig.create(`burn${i}`, { mode: 'burn' }));
    for (const d of doms) await rig.line(d, 'v0 burning');
    await new Promise((r) => setTimeout(r, 300));
    const start = doms.map((d) => rig.lastBurn(d));
    await new Promise((r) => setTimeout(r, ms));
    let rate = 0;
    doms.forEach((d, i) => {
      const a = start[i];
      const b = rig.lastBurn(d);
      if (a && b && b.t > a.t) rate += (b.units - a.units) / (b.t - a.t);
    });
    return rate;
  } finally {
    await rig.close();
  }
}

export async function benchSched(o: SuiteOptions): Promise<BenchRow[]> {
  const ms = o.quick ? 1500 : 3000;
  const rows: BenchRow[] = [];
  o.progress?.('share: 256:512 on one pCPU');
  rows.push(await share(ms));
  o.progress?.('cap: 20% beside an uncapped hog');
  rows.push(await cap(ms));
  o.progress?.('io-wake beside two hogs, with and without BOOST');
  rows.push(await ioWake(true, o.quick ? 100 : 400), await ioWake(false, o.quick ? 100 : 400));
  // The same two figures from the algorithm alone, on a simulated clock (../sched/sim.ts): what
  // the threaded rows miss beyond these is the host's timing (ticks, accounting, preemption points late).
  const [a, b] = simulateShares([{ weight: 256 }, { weight: 512 }], ms);
  const [capped] = simulateShares([{ weight: 256, cap: 20 }, { weight: 256 }], ms);
  rows.push(row(SIM, 'share 256:512', { ratio: b! / a!, errorPct: Math.abs(b! / a! / 2 - 1) * 100 }),
    row(SIM, 'cap 20%', { sharePct: capped!, errorPP: Math.abs(capped! - 20) }));
  o.progress?.('decision cost');
  rows.push(...decision(o.quick ? 20_000 : 200_000));
  const cores = Math.min(31, availableParallelism());
  o.progress?.(`cpu-burn: ${cores} hogs, scheduler on (${cores} pCPUs) vs off`);
  const on = await burn(cores, ms, cores);
  const off = await burn(0, ms, cores);
  rows.push(row('credit', `cpu-burn x${cores}`, { unitsPerSec: on }), row('host OS', `cpu-burn x${cores}`, { unitsPerSec: off }),
    row('credit / host OS', `cpu-burn x${cores}`, { ratio: on / off }));
  return rows;
}

/** The headline: each figure against its goal. */
export function schedSummary(rows: readonly BenchRow[]): string | null {
  const r = rows.filter((x) => x.suite === 'sched');
  if (r.length === 0) return null;
  const get = (path: string, wl: string) => r.find((x) => x.path === path && x.workload.startsWith(wl));
  const lines: string[] = [];
  const s = get('credit', 'share');
  if (s) lines.push(`share 256:512: ratio ${s.counters.ratio.toFixed(2)}, error ${s.counters.errorPct.toFixed(1)}% (goal ≤ 5%)`);
  const c = get('credit', 'cap');
  if (c) lines.push(`cap 20%: share ${c.counters.sharePct.toFixed(1)}%, error ${c.counters.errorPP.toFixed(1)} pp (goal ≤ 2)`);
  const ss = get(SIM, 'share');
  const sc = get(SIM, 'cap');
  if (ss && sc) {
    lines.push(`the algorithm alone (simulated clock): share error ${ss.counters.errorPct.toFixed(1)}%, cap error ${sc.counters.errorPP.toFixed(1)} pp ` +
      '(the threaded figures above, less these, are the host\'s timing)');
  }
  const w = get('credit', 'io-wake');
  const wn = get('credit, no BOOST', 'io-wake');
  if (w && wn) lines.push(`io-wake median lateness: ${w.medianUs!.toFixed(0)} µs with BOOST (goal ≤ 2000), ${wn.medianUs!.toFixed(0)} µs without`);
  if (w) lines.push(`decision → effect (tickle to preemption point): mean ${w.counters.effectMeanUs.toFixed(0)} µs, max ${w.counters.effectMaxUs.toFixed(0)} µs`);
  const k = get('credit', 'decision (keep)');
  const sw = get('credit', 'decision (switch)');
  if (k && sw) lines.push(`decision: ${k.medianUs!.toFixed(2)} µs (keep), ${sw.medianUs!.toFixed(2)} µs (switch, without the thread wake-up)`);
  const b = r.find((x) => x.path === 'credit / host OS');
  if (b) lines.push(`cpu-burn, scheduler on / off: ${b.counters.ratio.toFixed(3)} (goal ≥ 0.95)`);
  return lines.join('\n');
}
