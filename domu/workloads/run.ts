/*
 * The workloads a VM config can name (`workload = "..."`), run by the standard DomU kernel once its
 * disks are up, with their results printed on the console.
 *
 * Not a Xen component: a real guest runs whatever its disk boots into; ringvisor's config names
 * one of these instead (dom0/toolstack/config/workload.ts checks the names and the common arguments,
 * and puts them on the kernel command line, shared/public/cmdline.ts). Arguments:
 *
 *   disk=VDEV   the disk to use (default: the first)     bs=BYTES   per request (default 4096)
 *   count=N     requests (fio-*: default 1024) or, for disk-check, blocks checked (default: the
 *               whole disk)                              seed=N     random offsets and data (1)
 *   iodepth=N   requests in flight (default 8)           then=idle|poweroff   what to do after
 *   write-log only: flush_every=N (acknowledged blocks between flushes, default 64; 0 never),
 *               report_every=N (blocks between "acknowledged" console lines, default 16)
 *
 * cpu-burn (seconds=N) and io-wake (count=N, period=MS) need no disk (./cpu.ts).
 *
 * `then` defaults to poweroff for disk-check (it has a verdict: pass, power off, and the config's
 * on_poweroff decides what becomes of the VM; fail, and the guest crashes, so on_crash decides) and
 * to idle for the others (a measurement leaves the VM up for `xl console` and more).
 *
 * Besides the human-readable lines, each run ends with one line `workload-result {JSON}`: the
 * numbers and the device's own counters over the run, for scenarios and scripts (fio's
 * --output-format=json, in spirit).
 */
import type { Kernel } from '../../shared/kernel/kernel.ts';
import type { BlockDevice } from '../block/blkdev.ts';
import { runDiskCheck } from './disk-check.ts';
import { fioBuffers, runFio, type FioRw } from './fio.ts';
import { runIoWake } from './cpu.ts';
import { runSmpBurn } from './cpu-burn-all.ts';
import { runWriteLog } from './write-log.ts';
import { runMemImage } from './mem-image.ts';

export type AfterWorkload = 'idle' | 'poweroff';

const FIO: Readonly<Record<string, FioRw>> = {
  'fio-seq-read': 'read', 'fio-seq-write': 'write', 'fio-rand-read': 'randread', 'fio-rand-write': 'randwrite',
};

export const RESULT_PREFIX = 'workload-result ';

/**
 * Runs the workload named on the command line (`args`: its words) and returns what to do next.
 * A disk-check that finds bad data throws: the kernel lets it crash the domain.
 */
export async function runWorkload(k: Kernel, disks: readonly BlockDevice[], args: ReadonlyMap<string, string>,
  say: (line: string) => void): Promise<AfterWorkload> {
  const name = args.get('workload') ?? 'idle';
  const then = args.get('then') === 'poweroff' || args.get('then') === 'idle'
    ? args.get('then') as AfterWorkload : name === 'disk-check' ? 'poweroff' : 'idle';
  if (name === 'idle') {
    say('workload idle: nothing to run; waiting to be shut down (xl shutdown, or type poweroff at the console)');
    return then;
  }
  if (name === 'cpu-burn' || name === 'io-wake') return runCpuWorkload(k, name, args, say, then);
  if (name === 'mem-image') {
    say(`${RESULT_PREFIX}${JSON.stringify(await runMemImage(k, args, say))}`);
    return then;
  }
  if (name !== 'disk-check' && name !== 'write-log' && !(name in FIO)) {
    say(`workload ${name}: unknown to this kernel (it knows idle, disk-check, write-log, ${Object.keys(FIO).join(', ')}, cpu-burn, io-wake); idling`);
    return 'idle';
  }
  const wanted = args.get('disk');
  const dev = wanted === undefined ? disks[0] : disks.find((d) => d.name === wanted);
  if (dev === undefined) {
    say(`workload ${name}: no disk${wanted === undefined ? '' : ` named ${wanted}`} (disks: ${disks.map((d) => d.name).join(', ') || 'none'}); idling`);
    return 'idle';
  }
  const num = (key: string, dflt: number) => {
    const v = Number(args.get(key) ?? dflt);
    return Number.isSafeInteger(v) && v >= 0 ? v : dflt;
  };
  const bs = num('bs', 4096);
  const iodepth = Math.max(1, num('iodepth', 8));
  const seed = num('seed', 1);
  const where = `${dev.name} (${dev.path})`;
  const before = dev.stats();
  let result: Record<string, unknown>;

  if (name === 'disk-check') {
    const blocks = num('count', Math.floor((dev.sectors * 512) / bs));
    say(`disk-check on ${where}: writing a pattern over ${mib(blocks * bs)} in ${bs}-byte requests, ${iodepth} in flight`);
    const r = await runDiskCheck(k, dev, { bs, blocks, iodepth, seed });
    say(`disk-check on ${where}: wrote ${mib(r.bytes)} in ${ms(r.writeMs)} (${mbps(r.bytes, r.writeMs)})`);
    say(`disk-check on ${where}: read back ${mib(r.bytes)} in ${ms(r.readMs)} (${mbps(r.bytes, r.readMs)})`);
    result = {
      workload: name, disk: dev.name, path: dev.path, bs, iodepth, bytes: r.bytes, requests: r.requests,
      writeMs: r.writeMs, readMs: r.readMs, writeMBps: r.bytes / r.writeMs / 1000, readMBps: r.bytes / r.readMs / 1000,
      verified: r.mismatchedBlocks === 0, device: delta(dev.stats(), before),
    };
    sayStats(say, dev, result.device as Record<string, number>, r.requests);
    say(`${RESULT_PREFIX}${JSON.stringify(result)}`);
    if (r.mismatchedBlocks > 0) {
      throw new Error(`disk-check on ${dev.name}: ${r.mismatchedBlocks} block(s) read back wrong: ${r.mismatches.join('; ')}`);
    }
    say(`disk-check on ${where}: OK, every byte read back as written`);
  } else if (name === 'write-log') {
    const blocks = num('count', Math.floor((dev.sectors * 512) / bs));
    const flushEvery = num('flush_every', 64);
    say(`write-log on ${where}: ${blocks} blocks of ${bs} bytes in order, ${iodepth} in flight, a flush every ${flushEvery}`);
    const r = await runWriteLog(k, dev, { bs, blocks, iodepth, seed, flushEvery, reportEvery: num('report_every', 16) }, say);
    result = { workload: name, disk: dev.name, path: dev.path, bs, iodepth, ...r, device: delta(dev.stats(), before) };
    say(`${RESULT_PREFIX}${JSON.stringify(result)}`);
  } else {
    const rw = FIO[name]!;
    const ios = num('count', 1024);
    const bufs = fioBuffers(k, bs, iodepth);
    const r = await runFio(dev, { rw, bs, iodepth, ios, seed }, bufs);
    for (const b of bufs) for (const g of b.gfns) k.pages.release(g);
    say(`${name} on ${where}: ${ios} × ${bs} bytes, ${iodepth} in flight: ${mbps(r.bytes, r.ms)}, ${Math.round(r.iops)} IOPS (${ms(r.ms)})`);
    result = { workload: name, disk: dev.name, path: dev.path, ...r, device: delta(dev.stats(), before) };
    sayStats(say, dev, result.device as Record<string, number>, ios);
    say(`${RESULT_PREFIX}${JSON.stringify(result)}`);
  }
  return then;
}

/** The CPU workloads (./cpu.ts): no disk; they keep time and sleep through the hypervisor only. */
async function runCpuWorkload(k: Kernel, name: 'cpu-burn' | 'io-wake', args: ReadonlyMap<string, string>,
  say: (line: string) => void, then: AfterWorkload): Promise<AfterWorkload> {
  const num = (key: string, dflt: number) => {
    const v = Number(args.get(key) ?? dflt);
    return Number.isSafeInteger(v) && v > 0 ? v : dflt;
  };
  if (name === 'cpu-burn') return runSmpBurn(k, args, num, say, then);
  const count = num('count', 200);
  const periodMs = num('period', 5);
  say(`io-wake: ${count} sleeps of ${periodMs} ms on the guest timer (VIRQ_TIMER)`);
  const r = await runIoWake(k, { count, periodMs });
  say(`io-wake: late by median ${r.medianUs.toFixed(0)} µs, 99th percentile ${r.p99Us.toFixed(0)} µs, max ${r.maxUs.toFixed(0)} µs; ${r.early} early`);
  say(`${RESULT_PREFIX}${JSON.stringify({ workload: name, count, periodMs, ...r })}`);
  return then;
}

/* What the driver counted, per request: the mechanism behind the numbers. */
function sayStats(say: (line: string) => void, dev: BlockDevice, d: Record<string, number>, requests: number): void {
  const per = (n: number | undefined) => ((n ?? 0) / Math.max(1, requests)).toFixed(3);
  if (dev.path === 'pv') {
    say(`  blkfront ${dev.name}: ${d.requests ?? 0} ring requests; ${d.notifications ?? 0} notifications to the backend ` +
      `(${per(d.notifications)} per request), ${d.interrupts ?? 0} events back (${per(d.interrupts)}); ` +
      `${d.persistentGrants ?? 0} new persistent grants`);
  } else {
    say(`  ata_piix ${dev.name}: ${d.commands ?? 0} ATA commands; ${d.traps ?? 0} register accesses trapped ` +
      `(${per(d.traps)} per request), ${d.interrupts ?? 0} interrupts (${per(d.interrupts)})`);
  }
}

function delta(after: Record<string, number>, before: Record<string, number>): Record<string, number> {
  return Object.fromEntries(Object.entries(after).map(([key, v]) => [key, v - (before[key] ?? 0)]));
}

const mib = (bytes: number) => `${(bytes / 1048576).toFixed(bytes % 1048576 === 0 ? 0 : 2)} MiB`;
const ms = (t: number) => `${t.toFixed(0)} ms`;
const mbps = (bytes: number, t: number) => `${(bytes / t / 1000).toFixed(1)} MB/s`;
