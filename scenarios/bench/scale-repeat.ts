/*
 * Why the scale suite's one-guest repeats spread (issue 17: "the same VM, depth and job gave 96K
 * and 190K IOPS in consecutive runs"): a new guest each repeat, as the suite does, and on each
 * guest several timed windows in a row, so that what changes between guests (a new thread, a new
 * V8 isolate compiling its code afresh, the host OS placing it) can be told from what changes
 * between windows of one guest.
 *   npx tsx scenarios/bench/scale-repeat.ts [guests] [windows] [runtimeMs] [pin|-] [warmup] [gapMs]
 * defaults 4 guests, 4 windows, 300 ms (the quick suite's), unpinned, the quick suite's warm-up
 * (WARMUP_REQUESTS / 2, before the first window only), no gap between guests. Per window it prints IOPS, the host CPU
 * per request (every thread of the process), cores busy (process CPU time / window), the share of samples in which Dom0's vCPU thread and the
 * guest's ran on one CPU (./thread-placement.ts), and the thread switches per request (getrusage).
 *
 * Not a Xen concept: a measuring aid, like ./scale-one.ts.
 */
import { randomUUID } from 'node:crypto';
import { closeSync, openSync, rmSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { BlockHost } from '../block/harness.ts';
import type { BlockTask } from '../block/protocol.ts';
import { DEPTH, DOM0_WEIGHT, GUEST_MIB, IMAGE_MIB, WARMUP_REQUESTS } from './scale-figures.ts';
import { watchPlacement } from './thread-placement.ts';

const guests = Number(process.argv[2] ?? 4);
const windows = Number(process.argv[3] ?? 4);
const runtimeMs = Number(process.argv[4] ?? 300);
const pin = process.argv[5] === 'pin';
const warmup = Number(process.argv[6] ?? WARMUP_REQUESTS / 2);
// A diagnostic only: ms to wait after a guest has gone before the next is created, so that what
// the host still does for the last one (its thread's teardown, freeing its memory) is over.
const gapMs = Number(process.argv[7] ?? 0);

const image = join(tmpdir(), `ringvisor-scale-repeat-${randomUUID()}.img`);
const fd = openSync(image, 'w');
const chunk = Buffer.alloc(1 << 20);
for (let i = 0; i < chunk.length; i += 4) chunk.writeUInt32LE((i * 2654435761) >>> 0, i);
for (let m = 0; m < IMAGE_MIB; m++) writeSync(fd, chunk, 0, chunk.length, m << 20);
closeSync(fd);

const host = await BlockHost.boot(96 + GUEST_MIB * 4, 'irq', undefined, { dom0_vcpus_pin: pin });
const slots = host.host.sched.pcpus;
const cpus = pin && slots > 1 ? Array.from({ length: slots - 1 }, (_, i) => i + 1) : undefined;
host.host.sched.setDomain(0, DOM0_WEIGHT, undefined);
try {
  for (let g = 0; g < guests; g++) {
    if (g > 0 && gapMs > 0) await new Promise((r) => setTimeout(r, gapMs));
    const tasks: BlockTask[] = Array.from({ length: windows }, (_, w) => ({
      kind: 'fio' as const,
      job: { rw: 'randread' as const, bs: 4096, iodepth: DEPTH, ios: Number.MAX_SAFE_INTEGER, runtimeMs, warmup: w === 0 ? warmup : 0, size: IMAGE_MIB << 20, seed: 12 + g * windows + w },
    }));
    let domid = -1;
    let from = { cpu: process.cpuUsage(), ru: process.resourceUsage(), t: performance.now() };
    let stop: (() => number | null) | null = null;
    const line: string[] = [];
    const cs: number[] = [];
    const cpuMs: number[] = [];
    const out = await host.runGuest({
      image, readOnly: true, memoryMiB: GUEST_MIB, tasks, ...(cpus ? { cpus } : {}),
      onRunning: (d) => { domid = d; },
      beforeTimed: async () => {
        const a = host.host.sched.affinity.tidOf(0, 0);
        const b = host.host.sched.affinity.tidOf(domid, 0);
        stop = watchPlacement(a !== null && b !== null ? [a, b] : null);
        from = { cpu: process.cpuUsage(), ru: process.resourceUsage(), t: performance.now() };
      },
      afterTask: () => {
        const cpu = process.cpuUsage(from.cpu);
        const ru = process.resourceUsage();
        const ms = performance.now() - from.t;
        const same = stop?.() ?? null;
        cpuMs.push((cpu.user + cpu.system) / 1000);
        line.push(`cores ${((cpu.user + cpu.system) / 1000 / ms).toFixed(2)} same ${same === null ? '-' : same.toFixed(2)}`);
        cs.push(ru.voluntaryContextSwitches + ru.involuntaryContextSwitches - from.ru.voluntaryContextSwitches - from.ru.involuntaryContextSwitches);
      },
    });
    const res = out.tasks.map((t, i) => {
      if (t.result?.kind !== 'fio') return `window ${i}: failed ${t.error}`;
      const r = t.result.result;
      return `${Math.round(r.iops / 1000)}K (${(cpuMs[i] * 1000 / r.ios).toFixed(1)} CPU µs/req, ${line[i]}, switches/req ${(cs[i] / r.ios).toFixed(3)})`;
    });
    console.log(`guest ${g + 1} (d${domid}): ${res.join(' | ')}`);
  }
} finally {
  await host.close();
  rmSync(image, { force: true });
}
