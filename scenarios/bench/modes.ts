/*
 * A diagnostic for the bimodal block rate (issue 17, DESIGN.md §12 "Spin only while the peer
 * runs"): the same PV job repeated, and beside each repeat's IOPS what the operating system saw
 * of the two threads doing the work (the guest's vCPU and Dom0's, found as the two threads that
 * used the most CPU): CPU time, voluntary switches (they slept: Atomics.wait in SCHEDOP_block),
 * involuntary ones (the kernel preempted them, typically while spinning), and how often, sampled
 * every few milliseconds from the control thread, both were last seen on the same core.
 *
 *   npx tsx scenarios/bench/modes.ts [--repeats N] [--depth D] [--ios N] [--wait poll|irq]
 *
 * `poll` (the default here) is where the two modes live: spinning is what a preempted peer defeats.
 *
 * Not a benchmark (it samples /proc while it runs, which costs the control thread a little); it
 * prints evidence for or against a hypothesis: a fast repeat should show the two workers on
 * different cores, few wake-ups per request and few preemptions; a slow one, both on one core
 * (or sharing with a third runnable thread), many preemptions, and wake-ups per request near 1.
 */
import { closeSync, openSync, readdirSync, readFileSync, rmSync, writeSync } from 'node:fs';
import { randomUUID } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import type { FioJob } from '../../domu/workloads/fio.ts';
import { BlockHost } from '../block/harness.ts';
import type { BlockTask } from '../block/protocol.ts';
import { WAIT_POLICIES, type WaitPolicy } from '../../shared/wait.ts';

interface ThreadStat { tid: string; cpuTicks: number; voluntary: number; involuntary: number; processor: number }

function threads(): Map<string, ThreadStat> {
  const out = new Map<string, ThreadStat>();
  for (const tid of readdirSync('/proc/self/task')) {
    try {
      const stat = readFileSync(`/proc/self/task/${tid}/stat`, 'utf8');
      const f = stat.slice(stat.lastIndexOf(')') + 2).split(' '); // fields from 3 (state) on
      const status = readFileSync(`/proc/self/task/${tid}/status`, 'utf8');
      out.set(tid, {
        tid, cpuTicks: Number(f[11]) + Number(f[12]), processor: Number(f[36]),
        voluntary: Number(/voluntary_ctxt_switches:\s+(\d+)/.exec(status)?.[1] ?? 0),
        involuntary: Number(/nonvoluntary_ctxt_switches:\s+(\d+)/.exec(status)?.[1] ?? 0),
      });
    } catch { /* the thread ended */ }
  }
  return out;
}

const { values: args } = parseArgs({ options: { repeats: { type: 'string', default: '8' }, depth: { type: 'string', default: '32' }, ios: { type: 'string', default: '40000' }, wait: { type: 'string', default: 'poll' } } });
const wait = args.wait as WaitPolicy;
if (!WAIT_POLICIES.includes(wait)) throw new Error(`--wait ${args.wait}: expected ${WAIT_POLICIES.join(' or ')}`);
const repeats = Number(args.repeats);
const job: FioJob = { rw: 'randread', bs: 4096, iodepth: Number(args.depth), ios: Number(args.ios), warmup: 500, size: 64 << 20, seed: 7 };

const image = join(tmpdir(), `ringvisor-modes-${randomUUID()}.img`);
const fd = openSync(image, 'w');
const chunk = Buffer.alloc(1 << 20, 0x5a);
for (let m = 0; m < 64; m++) writeSync(fd, chunk, 0, chunk.length, m << 20);
closeSync(fd);

const host = await BlockHost.boot(256, wait);
const before: Map<string, ThreadStat>[] = [];
let sameCore = 0;
let samples = 0;
const sample = setInterval(() => {
  // The two busiest threads since this repeat began: same core now?
  const base = before.at(-1);
  if (!base) return;
  const now = [...threads().values()].map((t) => ({ t, d: t.cpuTicks - (base.get(t.tid)?.cpuTicks ?? 0) })).sort((a, b) => b.d - a.d);
  if (now.length < 2 || now[1]!.d === 0) return;
  samples++;
  if (now[0]!.t.processor === now[1]!.t.processor) sameCore++;
}, 5);
const perRepeat: { sameCore: number; samples: number }[] = [];
const mark = () => { before.push(threads()); perRepeat.push({ sameCore, samples }); };
try {
  const tasks: BlockTask[] = Array.from({ length: repeats }, () => ({ kind: 'fio', job }));
  const g = await host.runGuest({ image, readOnly: true, tasks, memoryMiB: 64, beforeTimed: async () => { mark(); } });
  mark();
  process.stdout.write(`pv rand-read 4 KiB qd${job.iodepth}, wait ${wait}, ${job.ios} reads per repeat (${readFileSync('/proc/loadavg', 'utf8').trim().split(' ').slice(0, 3).join(' ')} load)\n`);
  process.stdout.write('repeat      IOPS  wakeups/req  notif/req   top-2 threads: cpu ms, voluntary, involuntary switches   same core\n');
  g.tasks.forEach((t, i) => {
    if (t.result?.kind !== 'fio') return;
    const a = before[i]!, b = before[i + 1]!;
    const busiest = [...b.values()].map((x) => {
      const y = a.get(x.tid);
      return { cpu: (x.cpuTicks - (y?.cpuTicks ?? 0)) * 10, vol: x.voluntary - (y?.voluntary ?? 0), inv: x.involuntary - (y?.involuntary ?? 0) };
    }).sort((p, q) => q.cpu - p.cpu).slice(0, 2);
    const c = t.counters;
    const s = { sameCore: perRepeat[i + 1]!.sameCore - perRepeat[i]!.sameCore, samples: perRepeat[i + 1]!.samples - perRepeat[i]!.samples };
    process.stdout.write(`${String(i + 1).padStart(6)}  ${Math.round(t.result.result.iops).toLocaleString('en-US').padStart(8)}  ` +
      `${((c.domU.wakeups + c.dom0.wakeups) / job.ios).toFixed(3).padStart(11)}  ${((c.domU.notifications + c.dom0.notifications) / job.ios).toFixed(3).padStart(9)}   ` +
      `${busiest.map((x) => `${x.cpu} ms ${x.vol}v ${x.inv}i`).join(' | ').padEnd(52)}  ${s.samples ? `${Math.round((100 * s.sameCore) / s.samples)}% of ${s.samples}` : '-'}\n`);
  });
} finally {
  clearInterval(sample);
  await host.close();
  rmSync(image, { force: true });
}
