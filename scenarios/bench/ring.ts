/*
 * The ring suite: ringvisor's generic ring between two domains (grants + event channels, 4 KiB
 * payloads through granted frames), against a bare SPSC ring on a plain SharedArrayBuffer and
 * against the published ringbuf.js, all moving the same 4 KiB requests at the same depth.
 *
 * Each figure is the median of several repeats; each repeat warms up first (a fresh DomU or
 * worker pair is a fresh JIT) and times only what follows.
 *
 * Waiting: ringvisor's ring and the bare ring wait under the run's policy (shared/wait.ts): under
 * `irq` a side that finds nothing arms and sleeps at once, under `poll` it spins for the policy's
 * budget first; they run once per policy. ringbuf.js offers no way to sleep, so its two threads
 * spin without bound: it runs once, and its row says `spin`.
 */
import { startThread } from '../../hypervisor/thread.ts';
import { runRingtest } from '../ring/harness.ts';
import { bareRingBytes, type BaselineJob, type BaselineResult } from './baselines.ts';
import { median, repeatFields, type BenchRow, type SuiteOptions } from './types.ts';
import { spinBudgetUs, type WaitPolicy } from '../../shared/wait.ts';
import { RingBuffer } from 'ringbuf.js';

const BLOCK = 4096;
const DEPTH = 32;
const WORKER = new URL('./baselines-worker.ts', import.meta.url);

export async function benchRing(opts: SuiteOptions): Promise<BenchRow[]> {
  const requests = opts.quick ? 200_000 : 1_000_000;
  const warmup = opts.quick ? 50_000 : 200_000;
  const repeats = opts.quick ? 3 : 5;
  const say = opts.progress ?? (() => {});
  const rows: BenchRow[] = [];
  for (const wait of opts.waits) {
    const spinUs = spinBudgetUs(wait);
    for (const mode of ['map', 'copy'] as const) {
      say(`ring (wait=${wait}): ringtest over grants (${mode}), ${repeats} × ${requests} requests`);
      const res = await runRingtest({ requests, warmup, depth: DEPTH, len: BLOCK, check: false, front: { spinUs }, back: { mode, spinUs }, rounds: repeats });
      const rates = res.rounds.map((r) => (r.front.requests / r.ms) * 1000);
      const per = (f: (r: (typeof res.rounds)[number]) => number) => median(res.rounds.map((r) => f(r) / r.front.requests));
      rows.push(row('ring', wait, mode === 'map' ? '4k-persistent-map' : '4k-grant-copy', rates, {
        notifications: per((r) => r.timed.domU.notifications + r.timed.dom0.notifications),
        frontNotifications: per((r) => r.timed.domU.notifications),
        backNotifications: per((r) => r.timed.dom0.notifications),
        wakeups: per((r) => r.timed.domU.wakeups + r.timed.dom0.wakeups),
        hypercalls: per((r) => r.timed.domU.hypercalls + r.timed.dom0.hypercalls),
        grantOps: per((r) => r.timed.dom0.grant_maps + r.timed.dom0.grant_unmaps + r.timed.dom0.grant_copies),
      }));
    }

    say(`ring (wait=${wait}): bare SPSC ring, ${repeats} × ${requests} requests`);
    const bare: BaselineResult[] = [];
    for (let i = 0; i < repeats; i++) {
      const sab = new SharedArrayBuffer(bareRingBytes(DEPTH));
      bare.push(await pair('bare', { sab, slots: DEPTH, depth: DEPTH, warmup, requests, spinUs }));
    }
    rows.push(row('bare-ring', wait, '4k', bare.map((r) => (r.requests / r.ms) * 1000), {
      notifications: median(bare.map((r) => r.notifications / r.requests)), hypercalls: 0, grantOps: 0,
    }));
  }

  say(`ring: ringbuf.js, ${repeats} × ${requests} requests`);
  const rb: BaselineResult[] = [];
  for (let i = 0; i < repeats; i++) {
    const sab = RingBuffer.getStorageForCapacity(DEPTH * (BLOCK / 4), Int32Array);
    const rsp = RingBuffer.getStorageForCapacity(DEPTH, Int32Array);
    rb.push(await pair('rb', { sab, rsp, slots: DEPTH, depth: DEPTH, warmup, requests, spinUs: 0 }));
  }
  rows.push(row('ringbuf.js', 'spin', '4k', rb.map((r) => (r.requests / r.ms) * 1000), { notifications: 0, hypercalls: 0, grantOps: 0 }));
  return rows;
}

function row(path: string, wait: WaitPolicy | 'spin', workload: string, rates: number[], counters: Record<string, number>): BenchRow {
  const f = repeatFields(rates.map((reqPerSec) => ({ reqPerSec })));
  return { suite: 'ring', path, wait, workload, blockSize: BLOCK, queueDepth: DEPTH, ...f, MBps: (f.reqPerSec * BLOCK) / 1e6, counters };
}

/** Run a producer and a consumer thread on one shared buffer; the producer's figures count. */
async function pair(kind: 'bare' | 'rb', job: Omit<BaselineJob, 'role'>): Promise<BaselineResult> {
  const result = (w: ReturnType<typeof startThread>) => new Promise<BaselineResult>((resolve, reject) => {
    w.once('message', resolve);
    w.once('error', reject);
  });
  const consumer = startThread(WORKER, { ...job, role: `${kind}-consumer` }, `${kind}-consumer`);
  const producer = startThread(WORKER, { ...job, role: `${kind}-producer` }, `${kind}-producer`);
  const [p] = await Promise.all([result(producer), result(consumer)]);
  return p;
}
