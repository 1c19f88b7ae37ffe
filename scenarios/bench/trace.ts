/*
 * The trace suite: what recording costs. The same fio job over the PV disk and the emulated
 * (DMA) disk, repeats interleaved, with tracing off (every trace point compiled in, the mask 0)
 * and on (every class, drained as xentrace would): the ratio on/off per path.
 *
 * The other figure the issue asks for, tracing compiled in but off against the code without
 * trace points, cannot be taken in one process: run `npm run bench -- --suite block` on this
 * branch and on the commit before the trace points, on a quiet machine, and divide (README,
 * "Measuring").
 *
 * Xen: what xentrace costs is the question its -e mask answers: tb_event_mask is read at each
 * trace point, and a record is written only when its class is set.
 */
import { closeSync, openSync, rmSync, writeSync } from 'node:fs';
import { randomUUID } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { FioJob } from '../../domu/workloads/fio.ts';
import { MAX_DOMAINS, MAX_VCPUS } from '../../hypervisor/state.ts';
import { drainTrace, setTraceMask, traceBuffer } from '../../hypervisor/trace.ts';
import { TRC_ALL, type TraceRecord } from '../../shared/public/trace.ts';
import { BlockHost } from '../block/harness.ts';
import type { BlockTask, DiskPath } from '../block/protocol.ts';
import { DRAIN_MS } from '../../tools/trace/record.ts';
import { repeatFields, type BenchRow, type Sample, type SuiteOptions } from './types.ts';

const IMAGE_MIB = 64;
const BS = 4096;
const DEPTH = 32;

export async function benchTrace(opts: SuiteOptions): Promise<BenchRow[]> {
  const say = opts.progress ?? (() => {});
  const repeats = opts.quick ? 3 : 6;
  const job: FioJob = { rw: 'randread', bs: BS, iodepth: DEPTH, ios: 1e9, size: IMAGE_MIB << 20, runtimeMs: opts.quick ? 150 : 500, warmupMs: opts.quick ? 30 : 100, seed: 11 };
  const image = join(tmpdir(), `ringvisor-bench-trace-${randomUUID()}.img`);
  const buf = traceBuffer(MAX_DOMAINS * MAX_VCPUS);
  const sink: TraceRecord[] = [];
  let timer: NodeJS.Timeout | null = null;
  const tracing = (on: boolean) => {
    if (timer !== null) { clearInterval(timer); timer = null; }
    setTraceMask(buf, on ? TRC_ALL : 0);
    drainTrace(buf, sink);
    sink.length = 0;
    // Drained as the recorder does, and thrown away: the cost measured is the writers' and the drain's.
    if (on) timer = setInterval(() => { drainTrace(buf, sink); sink.length = 0; }, DRAIN_MS);
  };
  const rows: BenchRow[] = [];
  try {
    const fd = openSync(image, 'w');
    const chunk = Buffer.alloc(1 << 20, 0x5a);
    for (let m = 0; m < IMAGE_MIB; m++) writeSync(fd, chunk, 0, chunk.length, m << 20);
    closeSync(fd);
    for (const wait of opts.waits) {
      const host = await BlockHost.boot(256, wait);
      try {
        for (const path of ['pv', 'emu-dma'] as DiskPath[]) {
          say(`trace (wait=${wait}): ${path}, ${repeats} repeats of off and on, interleaved`);
          // off, on, on, off, off, on, ...: neither setting always goes first.
          const plan = Array.from({ length: 2 * repeats }, (_, i) => ((i >> 1) + i) % 2 === 1);
          const tasks: BlockTask[] = plan.map((_, i) => ({ kind: 'fio', job: { ...job, seed: 11 + i } }));
          const g = await host.runGuest({
            image, path, tasks, memoryMiB: 64, readOnly: true,
            beforeWarmup: async (i) => tracing(plan[i]!),
            afterTask: () => tracing(false),
          });
          const got: Record<'off' | 'on', Sample[]> = { off: [], on: [] };
          g.tasks.forEach((o, i) => {
            if (o.error !== null || o.result?.kind !== 'fio') throw new Error(`trace ${path}: ${o.error}`);
            const f = o.result.result;
            got[plan[i] ? 'on' : 'off'].push({ reqPerSec: f.iops, ios: f.ios, ms: f.ms, maxInFlight: f.maxInFlight });
          });
          for (const k of ['off', 'on'] as const) {
            const fields = repeatFields(got[k]);
            rows.push({
              suite: 'trace', path, wait, workload: `rand-read, tracing ${k}`, blockSize: BS, queueDepth: DEPTH,
              ...fields, iops: fields.reqPerSec, MBps: (fields.reqPerSec * BS) / 1e6, counters: {}, engine: `trace-${k}`,
            });
          }
        }
      } finally {
        tracing(false);
        await host.close();
      }
    }
  } finally {
    rmSync(image, { force: true });
  }
  return rows;
}

/** "tracing on / off" per path and policy. */
export function traceSummary(rows: readonly BenchRow[]): string | null {
  const lines: string[] = [];
  for (const r of rows) {
    if (r.suite !== 'trace' || r.engine !== 'trace-on') continue;
    const off = rows.find((o) => o.suite === 'trace' && o.engine === 'trace-off' && o.path === r.path && o.wait === r.wait);
    if (off) lines.push(`  ${r.path.padEnd(8)} wait=${r.wait}: tracing on / off = ${(r.reqPerSec / off.reqPerSec).toFixed(3)}`);
  }
  return lines.length > 0 ? `What recording a trace costs (every class on, drained every ${DRAIN_MS} ms):\n${lines.join('\n')}` : null;
}
