/*
 * `npm run bench -- --suite recover`: how long a frontend waits when its backend dies and a new
 * one starts (issue 16's goal: at most 100 ms from the new backend's InitWait to the first
 * re-issued request answered).
 *
 * Each repeat is one guest writing a burst of 32 requests, all in flight, while its blkback is
 * armed to crash after 6 requests on a ring (backends/blkback/restart.ts); the toolstack
 * binds a new blkback as soon as the frontend has seen the old one go, and blkfront re-issues
 * what was not answered (domu/blkfront/blkfront.ts). The row's `median µs` is the recovery time
 * blkfront measured (InitWait seen → first re-issued request answered); req/s is the whole
 * burst's rate, crash and restart included; `reissued/req` is the share that had to go again.
 * Every repeat also checks the burst: one answer per request and every range read back intact,
 * or the suite fails rather than report a time for a recovery that lost data.
 */
import { closeSync, ftruncateSync, openSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomUUID } from 'node:crypto';
import { BlockHost, XVDA } from '../block/harness.ts';
import type { BurstJob } from '../../domu/workloads/burst.ts';
import { median, repeatFields, type BenchRow, type Sample, type SuiteOptions } from './types.ts';

const JOB: BurstJob = { requests: 32, sectors: 16, start: 0, stride: 16, seed: 5 };
const CRASH_AFTER = 6;

export async function benchRecover(o: SuiteOptions): Promise<BenchRow[]> {
  const rows: BenchRow[] = [];
  const repeats = o.quick ? 3 : 5;
  for (const wait of o.waits) {
    const host = await BlockHost.boot(256, wait);
    const img = join(tmpdir(), `ringvisor-recover-${randomUUID()}.img`);
    const fd = openSync(img, 'w');
    ftruncateSync(fd, 16 << 20);
    closeSync(fd);
    try {
      const samples: Sample[] = [];
      const recoveries: number[] = [];
      const reissued: number[] = [];
      for (let i = 0; i <= repeats; i++) {
        let domid = -1;
        const g = await host.runGuest({
          image: img,
          tasks: [{ kind: 'burst', job: { ...JOB, seed: JOB.seed + i } }],
          onRunning: (d) => { domid = d; },
          beforeWarmup: async () => { await host.call({ kind: 'block-backend-kill', domid, devid: XVDA, opts: { afterRequests: CRASH_AFTER } }); },
        });
        const t = g.tasks[0];
        if (t.error !== null || t.result?.kind !== 'burst') throw new Error(`recover: burst failed: ${t.error}`);
        const r = t.result.result;
        if (r.answers.some((n) => n !== 1) || r.errors.length > 0 || r.mismatches.length > 0 || t.stats.recoveries !== 1) {
          throw new Error(`recover: the burst did not come through intact: ${JSON.stringify({ answers: r.answers, errors: r.errors, mismatches: r.mismatches })}`);
        }
        if (i === 0) continue; // warm-up
        samples.push({ reqPerSec: (JOB.requests * 1000) / r.ms, ios: JOB.requests, ms: r.ms });
        recoveries.push(t.stats.recoveryMs);
        reissued.push(t.stats.reissued / JOB.requests);
        o.progress?.(`recover [${wait}] repeat ${i}: ${t.stats.reissued} re-issued, recovered in ${t.stats.recoveryMs.toFixed(1)} ms`);
      }
      const f = repeatFields(samples);
      rows.push({
        suite: 'recover', path: 'pv', wait, workload: `blkback killed mid-burst, restarted`, blockSize: JOB.sectors * 512,
        queueDepth: JOB.requests, ...f, MBps: (f.reqPerSec * JOB.sectors * 512) / 1e6,
        medianUs: median(recoveries) * 1000, counters: { reissued: median(reissued) },
      });
    } finally {
      await host.close();
      rmSync(img, { force: true });
    }
  }
  return rows;
}

/** The headline: recovery time against the goal, per policy. */
export function recoverSummary(rows: readonly BenchRow[]): string | null {
  const lines = rows.filter((r) => r.suite === 'recover').map((r) =>
    `[wait=${r.wait}] backend restart: new blkback's InitWait → first re-issued request answered, median ${((r.medianUs ?? 0) / 1000).toFixed(1)} ms (goal ≤ 100 ms)`);
  return lines.length ? lines.join('\n') : null;
}
