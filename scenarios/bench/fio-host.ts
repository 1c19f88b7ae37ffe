/*
 * The machine's own file path, for scale: Debian's fio (/usr/bin/fio) run on the benchmark's
 * image file, with the same block size, depth, region and page-cache state as the `native` rows,
 * so a reader sees how far Node's file calls are from what the machine does with its own.
 *
 * Not a Xen component: fio is the tool whose job keys domu/workloads/fio.ts copies. Two engines:
 *   psync     pread/pwrite from one thread: a synchronous engine, so its real depth is 1 (fio
 *             caps iodepth at 1 for it and says so); it is run at depth 1 only.
 *   io_uring  the kernel's asynchronous ring, at depth 1 and N, where the kernel allows it (some
 *             sandboxes forbid io_uring_setup; then the engine is left out, and the run says why).
 * Same page-cache state: the image was written whole before the suite and fio is told not to
 * drop its pages (invalidate=0), not to open with O_DIRECT, and not to lay the file out again.
 * Offsets: fio draws its own random offsets (seeded per repeat), and sequential jobs start at
 * the byte where ours start; both cover the same region. Time-based, like the other paths.
 */
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import type { FioJob } from '../../domu/workloads/fio.ts';

export const FIO = '/usr/bin/fio';
export type FioEngine = 'psync' | 'io_uring';

export interface HostFioResult { iops: number; ios: number; ms: number; depth: number }

/** Run one job with fio; the real depth is the one fio reports most I/O was issued at. */
export function runHostFio(image: string, job: FioJob, engine: FioEngine, startByte: number): Promise<HostFioResult> {
  const write = job.rw === 'write' || job.rw === 'randwrite';
  const region = job.size ?? 0;
  // Sequential jobs start where ours start (fio wraps at the end of its range, as ours wraps at the region's).
  const offset = job.rw === 'read' || job.rw === 'write' ? startByte % region : 0;
  const args = [
    '--name=ringvisor-native', `--filename=${image}`, `--rw=${job.rw}`, `--bs=${job.bs}`, `--ioengine=${engine}`,
    `--iodepth=${engine === 'psync' ? 1 : job.iodepth}`, `--offset=${offset}`, `--size=${region - offset}`,
    '--time_based', `--runtime=${Math.round(job.runtimeMs ?? 200)}ms`, `--ramp_time=${Math.round(job.warmupMs ?? 0)}ms`,
    '--invalidate=0', '--direct=0', '--fallocate=none', '--allow_file_create=0', '--thread', '--output-format=json',
    `--randseed=${job.seed ?? 7}`,
  ];
  return new Promise((resolve, reject) => {
    execFile(FIO, args, { maxBuffer: 1 << 24 }, (err, stdout, stderr) => {
      if (err) return reject(new Error(`fio ${engine}: ${stderr.trim() || err.message}`));
      try {
        const out = JSON.parse(stdout.slice(stdout.indexOf('{'))) as FioJson;
        const j = out.jobs[0];
        if (j.error !== 0) return reject(new Error(`fio ${engine}: error ${j.error}`));
        const side = write ? j.write : j.read;
        const ms = j.job_runtime;
        resolve({ iops: side.iops, ios: side.total_ios, ms, depth: realDepth(j.iodepth_level) });
      } catch (e) {
        reject(new Error(`fio ${engine}: cannot read its JSON output: ${(e as Error).message}`));
      }
    });
  });
}

/** Whether fio is installed and `engine` works on this kernel (a tiny job on `image`); null if so, else why not. */
export function probeHostFio(image: string, engine: FioEngine): Promise<string | null> {
  if (!existsSync(FIO)) return Promise.resolve(`${FIO} is not installed`);
  return runHostFio(image, { rw: 'randread', bs: 4096, iodepth: 2, ios: 0, size: 1 << 20, runtimeMs: 20 }, engine, 0)
    .then(() => null, (e: Error) => e.message.split('\n')[0]);
}

interface FioSide { iops: number; total_ios: number }
interface FioJson { jobs: { error: number; job_runtime: number; read: FioSide; write: FioSide; iodepth_level: Record<string, number> }[] }

/** fio's iodepth_level buckets ("1", "2", "4", … ">=64", percent of I/O issued at that depth): the busiest one. */
function realDepth(levels: Record<string, number>): number {
  let best = 1;
  let share = -1;
  for (const [k, v] of Object.entries(levels)) {
    if (v > share) {
      share = v;
      best = Number(k.replace('>=', ''));
    }
  }
  return best;
}
