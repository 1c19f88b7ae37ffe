/*
 * One row of the scale suite on its own, for a CPU profile or a quick A/B:
 *   node --cpu-prof --cpu-prof-dir=DIR --import tsx scenarios/bench/scale-one.ts [guests] [runtimeMs] [pcpus|-] [irq|poll] [pin]
 * prints the row's aggregate IOPS, Jain and per-request counters (./scale.ts runN). pcpus 0: no slots.
 * With SCALE_PERF=1, `perf stat` counts this process's futex system calls and context switches
 * over the timed window, printed per request (the cost model's host-side terms); with
 * SCALE_PERF_RECORD=FILE also, `perf record -g` of the window into FILE (run node with
 * --perf-basic-prof to name the JavaScript frames). SCALE_QUEUES=n: blkfront with n queues.
 * RINGVISOR_SENDER_WAKE=1: vcpu_wake on the event sender's side (hypervisor/sched/credit.ts).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { rmSync, openSync, writeSync, closeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { BlockHost } from '../block/harness.ts';
import type { WaitPolicy } from '../../shared/wait.ts';
import { DOM0_WEIGHT, WARMUP_REQUESTS, runN } from './scale.ts';

const n = Number(process.argv[2] ?? 16);
const runtimeMs = Number(process.argv[3] ?? 1000);
const pcpus = process.argv[4] === undefined || process.argv[4] === '-' ? undefined : Number(process.argv[4]);
const wait = (process.argv[5] ?? 'irq') as WaitPolicy;
// 'pin0': dom0_vcpus_pin; 'pin': that, and the guests' hard affinity every other slot (xl.cfg cpus="1-").
const pin = process.argv[6] === 'pin' || process.argv[6] === 'pin0';
const image = join(tmpdir(), `ringvisor-scale-one-${randomUUID()}.img`);
const fd = openSync(image, 'w');
const chunk = Buffer.alloc(1 << 20, 0x5a);
for (let m = 0; m < 64; m++) writeSync(fd, chunk, 0, chunk.length, m << 20);
closeSync(fd);
const host = await BlockHost.boot(96 + 16 * (n + 2), wait, pcpus, { dom0_vcpus_pin: pin });
const slots = host.host.sched.pcpus;
const cpus = process.argv[6] === 'pin' && slots > 1 ? Array.from({ length: slots - 1 }, (_, i) => i + 1) : undefined;
host.host.setMaxListeners(4 * n);
host.host.sched.setDomain(0, DOM0_WEIGHT, undefined);
try {
  let perf: ChildProcess | null = null;
  let perfOut = '';
  let perfDone: Promise<void> = Promise.resolve();
  const onWindow = process.env.SCALE_PERF !== '1' ? undefined : (edge: 'start' | 'end') => {
    if (edge === 'start') {
      perf = spawn('perf', process.env.SCALE_PERF_RECORD ? ['record', '-F', '1999', '-g', '-o', process.env.SCALE_PERF_RECORD, '-p', String(process.pid)] : ['stat', '-x', ',', '-e', 'raw_syscalls:sys_enter,syscalls:sys_enter_futex,syscalls:sys_enter_write,syscalls:sys_enter_epoll_pwait,context-switches', '-p', String(process.pid)], { stdio: ['ignore', 'ignore', 'pipe'] });
      perf.stderr!.on('data', (d) => { perfOut += String(d); });
      perfDone = new Promise((r) => perf!.on('close', () => r()));
    } else perf?.kill('SIGINT');
  };
  const row = await runN(host, image, n, {
    rw: 'randread', bs: 4096, iodepth: 8, ios: Number.MAX_SAFE_INTEGER, runtimeMs, warmup: WARMUP_REQUESTS / 2, size: 64 << 20, seed: 11 + n,
  }, wait, cpus, onWindow);
  await perfDone;
  if (onWindow) {
    // Requests in the window: the aggregate rate over the window's length (the row's sample times).
    const windowReqs = (row.samples ?? []).reduce((a, x) => a + (x.ios ?? 0), 0);
    const perReq = perfOut.trim().split('\n').map((l) => l.split(',')).filter((f) => f.length > 2 && f[0] !== '')
      .map(([count, , name]) => `${name}/req=${(Number(count) / windowReqs).toFixed(3)}`);
    console.log(`perf over the window: ${perReq.join(' ')}`);
  }
  await host.host.sched.affinity.settled();
  console.log(`pins: ${JSON.stringify(host.host.sched.affinity.list().map((p) => [p.domid, p.tid, p.asked, p.readBack, p.error]))}`);
  const s = row.scale;
  console.log(`${n} guests: ${Math.round(row.reqPerSec)} IOPS, Jain ${s.jain.toFixed(3)}, cores ${s.coresBusy.toFixed(2)}, same CPU ${s.sameCpu?.toFixed(2)}, slots ${s.slotsHeld.toFixed(2)}, dead ${s.slotDead.toFixed(2)}`);
  console.log(Object.entries(row.counters).map(([k, v]) => `${k}=${v.toFixed(3)}`).join(' '));
} finally {
  await host.close();
  rmSync(image, { force: true });
}
