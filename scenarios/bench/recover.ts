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
 * The pv-dd row does the same with the backend in a storage driver domain (on_crash = "restart")
 * that panics after 6 requests on a ring (backends/blkback/xenbus.ts's fault injection): the
 * toolstack destroys it, builds it again, gives it its controller and hands it the disk
 * (dom0/toolstack/driver-domain.ts). Its req/s is low: the burst's time includes booting a new
 * driver domain, which the summary line says in ms.
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
import { PCI_STORAGE1 } from '../../shared/public/hw/sc.ts';
import type { WaitPolicy } from '../../shared/wait.ts';

const DD_NAME = 'storage-dd';

const JOB: BurstJob = { requests: 32, sectors: 16, start: 0, stride: 16, seed: 5 };
const CRASH_AFTER = 6;

/** Whose backend dies: Dom0's blkback (unbound mid-burst), or a storage driver domain (it panics mid-burst and on_crash restarts it). */
type Via = 'dom0' | 'driver-domain';

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
      for (const via of ['dom0', 'driver-domain'] as const) rows.push(await recoverRow(o, host, img, wait, via, repeats));
    } finally {
      await host.close();
      rmSync(img, { force: true });
    }
  }
  return rows;
}

async function recoverRow(o: SuiteOptions, host: BlockHost, img: string, wait: WaitPolicy, via: Via, repeats: number): Promise<BenchRow> {
  // The driver domain is restarted under a new domid each time it dies: follow it by name.
  let dd = -1;
  const follow = (e: { domid: number; name: string }) => { if (e.name === DD_NAME) dd = e.domid; };
  if (via === 'driver-domain') {
    host.host.on('created', follow);
    dd = await host.startDriverDomain(DD_NAME, PCI_STORAGE1, 'restart');
  }
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
        ...(via === 'dom0'
          ? { beforeWarmup: async () => { await host.call({ kind: 'block-backend-kill', domid, devid: XVDA, opts: { afterRequests: CRASH_AFTER } }); } }
          : { backend: dd, disk: { crashBackendDomainAfter: CRASH_AFTER } }),
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
      o.progress?.(`recover [${wait}, ${via}] repeat ${i}: ${t.stats.reissued} re-issued, stood still ${t.stats.stallMs.toFixed(1)} ms, recovered in ${t.stats.recoveryMs.toFixed(1)} ms after InitWait`);
    }
    const f = repeatFields(samples);
    return {
      suite: 'recover', path: via === 'dom0' ? 'pv' : 'pv-dd', wait,
      workload: via === 'dom0' ? 'blkback killed mid-burst, restarted' : 'driver domain crashed mid-burst, on_crash restart',
      blockSize: JOB.sectors * 512, queueDepth: JOB.requests, ...f, MBps: (f.reqPerSec * JOB.sectors * 512) / 1e6,
      medianUs: median(recoveries) * 1000, counters: { reissued: median(reissued) },
    };
  } finally {
    host.host.off('created', follow);
    if (via === 'driver-domain' && dd >= 0) await host.call({ kind: 'destroy', domid: dd }).catch(() => undefined);
  }
}

/** The headline: recovery time against the goal, per policy. */
export function recoverSummary(rows: readonly BenchRow[]): string | null {
  const lines = rows.filter((r) => r.suite === 'recover').map((r) =>
    `[wait=${r.wait}] ${r.path === 'pv-dd' ? 'driver domain restart' : 'backend restart'}: new blkback's InitWait → first re-issued request answered, median ${((r.medianUs ?? 0) / 1000).toFixed(1)} ms (goal ≤ 100 ms); `
    + `the 32-request burst took ${median((r.samples ?? []).map((x) => x.ms ?? 0)).toFixed(1)} ms (median), the ${r.path === 'pv-dd' ? 'driver domain\'s crash, restart and reconnection' : 'restart'} included`);
  return lines.length ? lines.join('\n') : null;
}
