// The block benchmark's baselines: native keeps the depth it claims, and job offsets start where asked
// (the warm-up and timed part share one sequence; each repeat starts further on). Counts, never times.
import test from 'ava';
import { closeSync, openSync, rmSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomUUID } from 'node:crypto';
import { jobSectors, type FioJob } from '../domu/workloads/fio.ts';
import { BlockHost } from '../scenarios/block/harness.ts';

test('jobSectors: skip starts a sequence further along it, sequential or random', (t) => {
  const base: FioJob = { rw: 'read', bs: 4096, iodepth: 1, ios: 0, size: 1 << 20 };
  const seq = jobSectors({ ...base, skip: 3 }, 4096);
  t.deepEqual([seq(), seq()], [24, 32]);
  const wrap = jobSectors({ ...base, skip: 256 + 5 }, 4096);
  t.is(wrap(), 40, 'the region (256 blocks) wraps');
  const all = jobSectors({ ...base, rw: 'randread', seed: 9 }, 4096);
  const first = Array.from({ length: 10 }, all);
  const later = jobSectors({ ...base, rw: 'randread', seed: 9, skip: 4 }, 4096);
  t.deepEqual(Array.from({ length: 6 }, later), first.slice(4));
});

test('native keeps the depth it claims: one synchronous call at depth 1, N outstanding at depth N', async (t) => {
  const image = join(tmpdir(), `ringvisor-native-${randomUUID()}.img`);
  const fd = openSync(image, 'w');
  writeSync(fd, Buffer.alloc(8 << 20, 0x5a), 0, 8 << 20, 0);
  closeSync(fd);
  const host = await BlockHost.boot(128);
  try {
    for (const [rw, depth] of [['randread', 1], ['randread', 8], ['write', 16]] as const) {
      const r = await host.native(image, { rw, bs: 4096, iodepth: depth, ios: 400, warmup: 40, size: 8 << 20, seed: 3 });
      t.is(r.ios, 400, `${rw} qd${depth}: every request done`);
      t.is(r.inFlight, depth, `${rw} qd${depth}: ${r.inFlight} in flight at most`);
      t.is(r.maxInFlight, depth);
      t.is(r.threads, depth === 1 ? 1 : Math.min(depth, Number(process.env.UV_THREADPOOL_SIZE) || 4));
    }
    const timed = await host.native(image, { rw: 'read', bs: 65536, iodepth: 4, ios: 1e9, size: 8 << 20, runtimeMs: 30, warmupMs: 10 });
    t.true(timed.ios >= 1 && timed.ios < 1e9, `time-based: stopped by the clock after ${timed.ios} requests`);
  } finally {
    await host.close();
    rmSync(image, { force: true });
  }
});
