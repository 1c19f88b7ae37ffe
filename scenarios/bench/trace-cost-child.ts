/*
 * One contestant of the trace suite (./trace.ts), in a process of its own, run from a copy of the
 * tree: `none` from the copy with every trace point cut (./strip-trace.ts), `off` and `on` from an
 * intact copy, with the mask 0 or every class on (drained every DRAIN_MS and thrown away, as the
 * recorder would write it). It boots one block host, and for each path the parent names runs a
 * guest whose fio repeats each wait for the parent's `go`, so the three take turns.
 *
 * Xen: xentrace's cost is the writers' stores plus the consumer's copying; the mask check is the
 * part left when tracing is off (xen/common/trace.c, tb_event_mask).
 */
import { MAX_DOMAINS, MAX_VCPUS } from '../../hypervisor/state.ts';
import { drainTrace, setTraceMask, traceBuffer } from '../../hypervisor/trace.ts';
import { TRC_ALL, TRC_LOST_RECORDS, type TraceRecord } from '../../shared/public/trace.ts';
import { BlockHost } from '../block/harness.ts';
import type { BlockTask, DiskPath } from '../block/protocol.ts';
import type { FioJob } from '../../domu/workloads/fio.ts';
import { DRAIN_MS } from '../../tools/trace/record.ts';
import type { WaitPolicy } from '../../shared/wait.ts';
import type { Sample } from './types.ts';

export type CostMode = 'none' | 'off' | 'on';
export type ToChild =
  | { cmd: 'run'; path: DiskPath; image: string; jobs: FioJob[] }
  | { cmd: 'go'; i: number }
  | { cmd: 'exit' };
export type FromChild =
  | { kind: 'booted' }
  | { kind: 'done'; i: number }
  | { kind: 'samples'; samples: Sample[]; records: number; lost: number }
  | { kind: 'error'; message: string };

const mode = process.argv[2] as CostMode;
const wait = process.argv[3] as WaitPolicy;
const send = (m: FromChild) => process.send!(m);

const buf = traceBuffer(MAX_DOMAINS * MAX_VCPUS);
const sink: TraceRecord[] = [];
let drained = 0;   // records written in the timed parts of this run's repeats
let timed = 0;     // ... in the current one
let counting = false;
let timer: NodeJS.Timeout | null = null;
let lost = 0;      // records the writers dropped (a full buffer: TRC_LOST_RECORDS says how many)
const drain = () => {
  drainTrace(buf, sink);
  if (counting) {
    timed += sink.length;
    for (const r of sink) if (r.event === TRC_LOST_RECORDS) lost += r.data[0];
  }
  sink.length = 0;
};
function tracing(on: boolean): void {
  if (timer !== null) { clearInterval(timer); timer = null; }
  setTraceMask(buf, on ? TRC_ALL : 0);
  drain();
  if (on) timer = setInterval(drain, DRAIN_MS);
}

// A repeat's `go` may come before its guest reaches the repeat (the parent does not wait for it).
const goes = new Map<number, () => void>();
const early = new Set<number>();
const go = (i: number) => new Promise<void>((resolve) => {
  if (early.delete(i)) resolve();
  else goes.set(i, resolve);
});
let host: BlockHost | null = null;

process.on('message', (m: ToChild) => {
  if (m.cmd === 'go') {
    const f = goes.get(m.i);
    if (f) { goes.delete(m.i); f(); } else early.add(m.i);
    return;
  }
  if (m.cmd === 'exit') { void (async () => { await host?.close(); process.exit(0); })(); return; }
  void (async () => {
    try {
      drained = 0;
      lost = 0;
      const tasks: BlockTask[] = m.jobs.map((job) => ({ kind: 'fio', job }));
      const g = await host!.runGuest({
        image: m.image, path: m.path, tasks, memoryMiB: 64, readOnly: true,
        beforeWarmup: async (i) => { await go(i); tracing(mode === 'on'); },
        // Records are counted over the timed part only, to give records per timed request.
        beforeTimed: async () => { drain(); timed = 0; counting = true; },
        afterTask: (i) => { tracing(false); counting = false; drained += timed; send({ kind: 'done', i }); },
      });
      const samples = g.tasks.map((o) => {
        if (o.error !== null || o.result?.kind !== 'fio') throw new Error(`${m.path}: ${o.error}`);
        const f = o.result.result;
        return { reqPerSec: f.iops, ios: f.ios, ms: f.ms, maxInFlight: f.maxInFlight };
      });
      send({ kind: 'samples', samples, records: drained, lost });
    } catch (e) {
      send({ kind: 'error', message: (e as Error).message });
    }
  })();
});

try {
  host = await BlockHost.boot(256, wait);
  send({ kind: 'booted' });
} catch (e) {
  send({ kind: 'error', message: (e as Error).message });
}
