/*
 * The scale suite: 1, 2, 4, 8 and 16 PV guests doing 4 KiB random reads at the same time
 * through one Dom0's blkback. It answers issue 17's questions: does aggregate throughput hold as
 * guests are added (goal: at 16 guests ≥ 0.9 of the peak), is service fair between them (Jain's
 * index ≥ 0.95 at every N), how long does the toolstack take from create to a running guest with
 * its disk (goal: median ≤ 50 ms), and what does a guest cost the host in memory.
 *
 * Xen: what a consolidated host promises, and what blkback's per-ring batching (xen_blkif_schedule
 * serving each ring in turn) is for. Jain's fairness index, J = (Σx)² / (N·Σx²) over the guests'
 * IOPS, is 1 when all get the same and 1/N when one gets everything (R. Jain, D. Chiu, W. Hawe,
 * "A Quantitative Measure of Fairness and Discrimination", DEC TR-301, 1984).
 *
 * The files: this one runs the suite (hosts, passes, repeats); ./scale-figures.ts holds its
 * parameters and the figures of a row; ./scale-row.ts runs one row; ./scale-summary.ts reports.
 *
 * How a run goes, per N and waiting policy: the guests are created one after another (each
 * create timed on its own) and connect their disks; when all N are ready they warm up together,
 * and when all N have warmed up they are released together for the same time (fio's time_based):
 * each guest's IOPS is what it completed in that window, the aggregate their sum. Since every
 * guest is timed over the same window, a guest served less shows up as fewer IOPS, which is what
 * the fairness index and the per-guest min/max are about.
 *
 * All guests read one image, shared read-only (as `disk = [ '...,r' ]` may be across guests), so
 * the page cache holds it once. Memory per guest is the host process's RSS growth with all N
 * guests connected and warmed up, divided by N: their threads, JavaScript heaps and blkback's
 * state; guest RAM is frames of machine memory allocated at host start and is shown apart.
 *
 * Where a request's CPU goes as N grows (issue 17 round 2, measured on a loaded 2-core machine).
 * At 16 guests a request costs two to three times the host CPU it costs at 1 guest, and the extra
 * is user time (`sysUs` stays at 3–6 µs). Each guest turn (a slot hand-over, ~1 per 8 requests at
 * depth 8) puts a sleeping thread, with its own V8 heap, back on a core: `hostSleeps` is 0.4–0.55 per
 * request against 0.05–0.4 at 1 guest. And every Atomics.wait, Atomics.notify and
 * Atomics.waitAsync resolution in the process takes one process-wide mutex (V8's FutexEmulation
 * g_mutex, src/execution/futex-emulation.cc): in a `perf record -e syscalls:sys_enter_futex` of the
 * 16-guest window, 82% of the futex system calls were that mutex contended (glibc's
 * __lll_lock_wait/__lll_lock_wake under Atomics.notify, Atomics.wait and the task that resolves a
 * waitAsync), not the sleeps and wake-ups themselves. A slot given to a sleeping thread is held
 * idle until the host runs it (`slot dead`: 0.25–0.45 of slot time at 16 guests).
 *
 * The cost model from counts (issue 17 round 3, load 6-28; README "Measuring" has the arithmetic
 * for why 0.9 of the peak is out of reach with a thread per vCPU on 2 cores). Per request, 1 → 16
 * guests: guest turns (SCHEDOP_block sleeps) 0.17-0.23 → 0.13-0.22, context switches 0.06 → 0.55-0.81,
 * futex calls 0.06 → 0.43-0.83, system calls 2.3 → 2.4-2.7 (one of them the disk read); blkback's
 * requests per turn exactly 2 at every N (blkfront's 4 queues split depth 8 into rings of 2;
 * SCALE_QUEUES=1: 8.6-9.3). A 16-guest perf profile: the guests' threads 63% of the CPU (~120 µs per
 * guest turn of 7.5 requests), Dom0's 23%, V8's helper threads 11% (TurboFan still compiling for 16
 * isolates), and the kernel's thread switches and wake-ups 29% of all samples.
 */
import { closeSync, openSync, rmSync, writeSync } from 'node:fs';
import { randomUUID } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { FioJob } from '../../domu/workloads/fio.ts';
import { BlockHost } from '../block/harness.ts';
import type { BenchRow, SuiteOptions } from './types.ts';
import { COUNTS, DEPTH, DOM0_WEIGHT, GUEST_MIB, IMAGE_MIB, PINNED_COUNTS, REPEATS_AT_1, WARMUP_REQUESTS, type ScaleRow } from './scale-figures.ts';
import { runN } from './scale-row.ts';

export { DOM0_WEIGHT, WARMUP_REQUESTS, jain, type ScaleFigures, type ScaleRow } from './scale-figures.ts';
export { runN } from './scale-row.ts';
export { scaleSummary } from './scale-summary.ts';

export async function benchScale(opts: SuiteOptions): Promise<BenchRow[]> {
  const say = opts.progress ?? (() => {});
  const image = join(tmpdir(), `ringvisor-scale-${randomUUID()}.img`);
  fillImage(image, IMAGE_MIB);
  const rows: ScaleRow[] = [];
  const runtimeMs = opts.quick ? 300 : 2000;
  const job: FioJob = {
    rw: 'randread', bs: 4096, iodepth: DEPTH, ios: Number.MAX_SAFE_INTEGER, runtimeMs, warmup: opts.quick ? WARMUP_REQUESTS / 2 : WARMUP_REQUESTS,
    size: IMAGE_MIB << 20, seed: 11,
  };
  try {
    for (const wait of opts.waits) {
      for (const [pcpus, pin] of [[undefined, false], [undefined, true], [0, false]] as const) {
        // The second host pins (ScaleFigures.pinned): the 1-guest repeats and 16 guests again. The
        // third has no pCPU slots (pcpus 0): the host OS alone runs the 17 threads, with none of the
        // credit scheduler's hand-overs. Their rows are measuring sticks, not rows of the table (see
        // scaleSummary).
        const host = await BlockHost.boot(96 + GUEST_MIB * (COUNTS.at(-1)! + 2), wait, pcpus, { dom0_vcpus_pin: pin });
        const slots = host.host.sched.pcpus;
        if (pin && slots < 2) { await host.close(); continue; } // one slot: Dom0 and the guests share it, nothing to pin apart
        const cpus = pin ? Array.from({ length: slots - 1 }, (_, i) => i + 1) : undefined;
        host.host.setMaxListeners(4 * COUNTS.at(-1)!); // runGuest listens for each guest's shutdown
        const weightError = host.host.sched.setDomain(0, DOM0_WEIGHT, undefined);
        if (weightError !== null) throw new Error(`scale: Dom0's weight: ${weightError}`);
        try {
          for (const n of pcpus === 0 ? [COUNTS.at(-1)!] : pin ? PINNED_COUNTS : COUNTS) {
            const how = pcpus === 0 ? ', no pCPU slots (the host OS schedules)' : pin ? `, pinned (dom0_vcpus_pin, guests cpus="1-${slots - 1}")` : '';
            say(`scale (${wait}): ${n} guest(s), 4 KiB random reads at depth ${DEPTH} for ${runtimeMs} ms, all at once${how}`);
            // One guest is run REPEATS_AT_1 times, the same job each time: the spread of repeats.
            const reps: ScaleRow[] = [];
            const aff = host.host.sched.affinity;
            for (let r = 0; r < (n === 1 ? REPEATS_AT_1 : 1); r++) reps.push(await runN(host, image, n, { ...job, seed: 11 + n }, wait, cpus));
            await aff.settled();
            const row = [...reps].sort((a, b) => a.reqPerSec - b.reqPerSec)[reps.length >> 1]!;
            row.scale.repeatIops = reps.map((r) => r.reqPerSec);
            row.scale.repeatCores = reps.map((r) => r.scale.coresBusy);
            row.scale.repeatSameCpu = reps.map((r) => r.scale.sameCpu);
            if (pcpus === 0) row.workload += ', no slots';
            row.scale.pinned = pin ? { threads: aff.counts.pinned, failed: aff.counts.failed, unavailable: aff.unavailable } : null;
            if (pin) row.workload += ', pinned';
            rows.push(row);
          }
        } finally {
          await host.close();
        }
      }
    }
  } finally {
    rmSync(image, { force: true });
  }
  return rows;
}

/** Real data in every byte (a sparse hole reads faster than data). */
function fillImage(path: string, mib: number): void {
  const fd = openSync(path, 'w');
  const chunk = Buffer.alloc(1 << 20);
  for (let i = 0; i < chunk.length; i += 4) chunk.writeUInt32LE((i * 2654435761) >>> 0, i);
  for (let m = 0; m < mib; m++) writeSync(fd, chunk, 0, chunk.length, m << 20);
  closeSync(fd);
}
