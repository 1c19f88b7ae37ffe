/*
 * One block job on the PV path, repeated, with the mechanism counters of every repeat: a quick
 * way to see what one job costs per request (grant operations, notifications, wake-ups, spins)
 * and how far its repeats spread, without running the whole block suite.
 *
 *   npx tsx scenarios/bench/block-probe.ts [--rw read|randread|write|randwrite] [--bs BYTES]
 *        [--qd N] [--repeats N] [--wait irq|poll] [--ms MS] [--warmup MS] [--queues N] [--guests N]
 *
 * --guests N runs N PV guests at once on the one image (each its own region), as the scale suite
 * does, and prints each one's rate. The figures are one host's, on whatever else the machine runs.
 */
import { closeSync, openSync, rmSync, writeSync } from 'node:fs';
import { randomUUID } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import type { FioRw } from '../../domu/workloads/fio.ts';
import { parseWaitPolicy } from '../../shared/wait.ts';
import { BlockHost, type TaskOutcome } from '../block/harness.ts';
import { MAX_VCPUS, VT } from '../../hypervisor/state.ts';

const { values: a } = parseArgs({
  options: {
    rw: { type: 'string', default: 'read' },
    bs: { type: 'string', default: '65536' },
    qd: { type: 'string', default: '32' },
    repeats: { type: 'string', default: '5' },
    wait: { type: 'string', default: 'irq' },
    ms: { type: 'string', default: '300' },
    warmup: { type: 'string', default: '50' },
    queues: { type: 'string' },
    guests: { type: 'string', default: '1' },
  },
});
const rw = a.rw as FioRw;
const bs = Number(a.bs);
const qd = Number(a.qd);
const repeats = Number(a.repeats);
const ms = Number(a.ms);
const guests = Number(a.guests);
const IMAGE_MIB = 256;

const image = join(tmpdir(), `ringvisor-probe-${randomUUID()}.img`);
const fd = openSync(image, 'w');
const chunk = Buffer.alloc(1 << 20, 0x5a);
for (let m = 0; m < IMAGE_MIB; m++) writeSync(fd, chunk, 0, chunk.length, m << 20);
closeSync(fd);

const host = await BlockHost.boot(256 + 96 * guests, parseWaitPolicy(a.wait, '--wait'));
const per = (o: TaskOutcome, ios: number) => {
  const d = o.counters.domU;
  const z = o.counters.dom0;
  return {
    grantOps: (z.grant_maps + z.grant_unmaps + z.grant_copies) / ios,
    notif: (d.notifications + z.notifications) / ios,
    wakeups: (d.wakeups + z.wakeups) / ios,
    hypercalls: (d.hypercalls + z.hypercalls) / ios,
  };
};
/** Dom0's vCPU 0: ms running, runnable (waiting for a slot) and blocked so far; and the scheduler's counters. */
const dom0Times = () => {
  const t = host.host.hv.vcpuTime;
  const b = 0 * MAX_VCPUS * VT.WORDS;
  return { running: t[b + VT.RUNNING], runnable: t[b + VT.RUNNABLE], blocked: t[b + VT.BLOCKED], ...host.host.sched.counters() };
};
const t0 = dom0Times();
try {
  const region = (IMAGE_MIB << 20) / guests;
  const runs = await Promise.all(Array.from({ length: guests }, (_, g) => host.runGuest({
    image: g === 0 ? image : image, memoryMiB: 96, disk: { ...(a.queues ? { maxQueues: Number(a.queues) } : {}) }, path: 'pv',
    tasks: Array.from({ length: repeats }, (_, r) => ({
      kind: 'fio' as const,
      job: {
        rw, bs, iodepth: qd, ios: 1e9, size: region, runtimeMs: ms, warmupMs: Number(a.warmup), seed: 7 + 101 * r + g,
        skip: Math.floor(((g * region) / bs) + (r * region / bs) / repeats),
      },
    })),
  })));
  const rates: number[] = [];
  runs.forEach((o, g) => {
    o.tasks.forEach((t, r) => {
      if (t.result?.kind !== 'fio') throw new Error(`guest ${g} repeat ${r}: ${t.error}`);
      const f = t.result.result;
      const c = per(t, f.ios);
      rates.push(f.iops);
      const idle = Object.entries(t.stats).filter(([k]) => /poll|spin|sleep|arm/i.test(k)).map(([k, v]) => `${k}=${v}`).join(' ');
      console.log(`g${g} r${r}: ${f.iops.toFixed(0)} IOPS, ${f.ios} ios, inflight ${f.maxInFlight}; per request: grantOps ${c.grantOps.toFixed(3)}, `
        + `notifications ${c.notif.toFixed(3)}, wake-ups ${c.wakeups.toFixed(3)}, hypercalls ${c.hypercalls.toFixed(2)} ${idle}`);
    });
    console.log(`g${g} backend: ${JSON.stringify(o.backend)}`);
    if (o.kernel) console.log(`g${g} kernel: ${JSON.stringify(o.kernel)}`);
  });
  const med = [...rates].sort((x, y) => x - y)[rates.length >> 1];
  console.log(`median ${med.toFixed(0)} IOPS, min ${Math.min(...rates).toFixed(0)}, max ${Math.max(...rates).toFixed(0)}, `
    + `spread (max-min)/median ${(((Math.max(...rates) - Math.min(...rates)) / med) * 100).toFixed(1)}%`);
  console.log(`dom0: ${JSON.stringify(await host.dom0Wait())}`);
  const t1 = dom0Times();
  console.log(`dom0 vCPU over the run (ms): ${Object.entries(t1).map(([k, v]) => `${k} ${(v - (t0 as Record<string, number>)[k]).toFixed(0)}`).join(', ')}`);
} finally {
  await host.close();
  rmSync(image, { force: true });
}
