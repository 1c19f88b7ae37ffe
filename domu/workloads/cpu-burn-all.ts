/*
 * cpu-burn as the standard DomU kernel runs it: vCPU 0 opens a job that every online vCPU serves
 * (./cpu-smp.ts), reports units per second and each vCPU's share every second, and ends with the
 * job's digest, which says that every unit was done exactly once, however many vCPUs came and
 * went meanwhile (xl vcpu-set).
 *
 * Not a Xen component. `units=N`: a job of N units (its digest is jobDigest(N)); `seconds=N`:
 * as many units as fit in N seconds of guest time; neither: until the guest is shut down.
 */
import type { Kernel } from '../../shared/kernel/kernel.ts';
import { JOB_UNBOUNDED, SMP, SmpArea } from '../../shared/kernel/smp.ts';
import { closeJob, jobProgress, openJob, serveJob } from './cpu-smp.ts';
import { RESULT_PREFIX, type AfterWorkload } from './run.ts';

export async function runSmpBurn(k: Kernel, args: ReadonlyMap<string, string>, num: (key: string, dflt: number) => number,
  say: (line: string) => void, then: AfterWorkload): Promise<AfterWorkload> {
  const smp = new SmpArea(k);
  const units = args.has('units') ? num('units', 1000) : JOB_UNBOUNDED;
  const seconds = args.has('seconds') ? num('seconds', 10) : Infinity;
  const what = units !== JOB_UNBOUNDED ? `${units} units` : seconds === Infinity ? 'until shut down' : `${seconds} s`;
  say(`cpu-burn: ${what}, shared by every online vCPU (${smp.online(k.nr_vcpus).join(', ')} now), a work unit at a time, a preemption point after each`);
  const t0 = k.clock.systemTimeNs();
  const end = t0 + seconds * 1e9;
  let lastReport = t0;
  let lastDone = 0;
  openJob(smp, units);
  const each = () => {
    const now = k.clock.systemTimeNs();
    if (now >= end) closeJob(smp);
    if (now - lastReport < 1e9) return;
    lastReport = now;
    const p = jobProgress(smp, k.nr_vcpus);
    say(`cpu-burn: ${((now - t0) / 1e9).toFixed(0)} s, ${p.done - lastDone} units in the last second; by vCPU ${p.byCpu.join(' / ')}; ` +
      `online: ${smp.online(k.nr_vcpus).join(', ')}`);
    lastDone = p.done;
  };
  await serveJob(k, smp, () => false, each);
  closeJob(smp);
  // vCPU 0 has no units left to claim; the others finish the ones they hold.
  const owed = () => (units !== JOB_UNBOUNDED ? units : Atomics.load(smp.words, SMP.JOB_NEXT));
  while (jobProgress(smp, k.nr_vcpus).done < owed()) await k.timers.sleep(1);
  const p = jobProgress(smp, k.nr_vcpus);
  const secs = (k.clock.systemTimeNs() - t0) / 1e9;
  say(`cpu-burn: ${p.done} units in ${secs.toFixed(2)} s (${Math.round(p.done / secs)} units/s), digest ${p.digest.toString(16).padStart(8, '0')}; ` +
    `by vCPU ${p.byCpu.join(' / ')}`);
  say(`${RESULT_PREFIX}${JSON.stringify({ workload: 'cpu-burn', units: p.done, seconds: secs, unitsPerSec: p.done / secs, digest: p.digest, byVcpu: p.byCpu })}`);
  return then;
}
