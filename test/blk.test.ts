// PV block: blkfront in a DomU, blkback in Dom0, raw image files. Every byte checked.
import test from 'ava';
import { readFileSync } from 'node:fs';
import { BlockHost, type DiskSwitches, type GuestOutcome } from '../scenarios/block/harness.ts';
import type { VerifyResult } from '../domu/workloads/verify.ts';
import { checksum } from '../shared/checksum.ts';
import {
  BLKIF_OP_DISCARD, BLKIF_OP_FLUSH_DISKCACHE, BLKIF_OP_INDIRECT, BLKIF_OP_READ, BLKIF_OP_WRITE, BLKIF_RSP_EOPNOTSUPP,
  BLKIF_RSP_ERROR, BLKIF_RSP_OKAY,
} from '../shared/public/io/blkif.ts';
import type { RawCase, RawOutcome } from './kernels/blk-raw.ts';
import { scratchImages } from './helpers/scratch-images.ts';

const RAW_KERNEL = new URL('./kernels/blk-raw.ts', import.meta.url).href;
const MIB = 1 << 20;
let host: BlockHost;
const { image, fileSums } = scratchImages(test, 'ringvisor-test-');

function verifyOf(g: GuestOutcome, i: number): VerifyResult {
  const t = g.tasks[i];
  if (t.error !== null || t.result?.kind !== 'verify') throw new Error(`task ${i} failed: ${t.error}`);
  return t.result.result;
}

test.before(async () => {
  host = await BlockHost.boot(384);
});

test.after.always(async () => {
  await host?.close();
});

test.serial('random I/O from 512 B to 1 MiB, depth 32 and 1: every byte matches the model and the image file', async (t) => {
  const img = image(64);
  const before = host.usage();
  const region = 16 * MIB;
  const g = await host.runGuest({
    image: img,
    tasks: [
      { kind: 'verify', job: { ops: 2000, depth: 32, minBytes: 512, maxBytes: MIB, size: region, seed: 11 } },
      { kind: 'verify', job: { ops: 600, depth: 1, minBytes: 512, maxBytes: MIB, size: region, seed: 12 } },
    ],
  });
  for (const i of [0, 1]) {
    const v = verifyOf(g, i);
    t.deepEqual(v.errors, [], `task ${i}`);
    t.true(v.reads > 100 && v.writes > 100, `task ${i}: ${v.reads} reads, ${v.writes} writes`);
    t.true(v.bytesChecked > 10 * MIB);
    t.true(v.sizes.min <= 4096 && v.sizes.max >= MIB / 2, `sizes ${v.sizes.min}..${v.sizes.max}`);
  }
  t.deepEqual(verifyOf(g, 1).chunkSums, fileSums(img, region), 'the image file holds exactly what the guest wrote');
  t.is(g.device.name, 'xvda');
  t.deepEqual(g.device.negotiated, { ringPageOrder: 2, queues: 4, indirectSegments: 32, persistent: true });
  t.true(g.tasks[0].stats.indirect > 0, 'requests above 44 KiB went indirect');
  t.deepEqual(host.usage(), before, 'the guest came and went leaving nothing behind');
});

test.serial('each feature switched off, and all of them, gives the same data', async (t) => {
  const region = 4 * MIB;
  const job = { ops: 600, depth: 16, minBytes: 512, maxBytes: 256 * 1024, size: region, seed: 21 };
  const variants: { name: string; disk: DiskSwitches; want: Record<string, number | boolean> }[] = [
    { name: 'all on', disk: {}, want: { ringPageOrder: 2, queues: 4, indirectSegments: 32, persistent: true } },
    { name: 'no persistent grants', disk: { persistent: false }, want: { persistent: false } },
    { name: 'no indirect segments', disk: { maxIndirectSegments: 0 }, want: { indirectSegments: 0 } },
    { name: 'single-page ring', disk: { maxRingPageOrder: 0 }, want: { ringPageOrder: 0 } },
    { name: 'one queue', disk: { maxQueues: 1 }, want: { queues: 1 } },
    { name: 'all off', disk: { persistent: false, maxIndirectSegments: 0, maxRingPageOrder: 0, maxQueues: 1 }, want: { ringPageOrder: 0, queues: 1, indirectSegments: 0, persistent: false } },
  ];
  let reference: number[] | null = null;
  for (const v of variants) {
    const img = image(8);
    const g = await host.runGuest({ image: img, disk: v.disk, tasks: [{ kind: 'verify', job }] });
    const r = verifyOf(g, 0);
    t.deepEqual(r.errors, [], v.name);
    for (const [k, want] of Object.entries(v.want)) t.is(g.device.negotiated[k], want, `${v.name}: ${k}`);
    t.deepEqual(r.chunkSums, fileSums(img, region), `${v.name}: file matches`);
    reference ??= r.chunkSums;
    t.deepEqual(r.chunkSums, reference, `${v.name}: same data as with every feature on`);
  }
});

test.serial('flush reaches the file: blkback fsyncs, and the written bytes are in the image', async (t) => {
  const img = image(4);
  const g = await host.runGuest({
    image: img,
    tasks: [{ kind: 'ops', steps: [{ op: 'write', sector: 100, count: 16, seed: 7 }, { op: 'flush', sector: 0, count: 0 }, { op: 'read', sector: 100, count: 16 }] }],
  });
  const r = g.tasks[0].result;
  if (r?.kind !== 'ops') return t.fail(String(g.tasks[0].error));
  t.true(r.result.every((o) => o.ok), JSON.stringify(r.result));
  const file = readFileSync(img);
  t.is(r.result[0].sum, checksum(new Uint8Array(file.buffer, file.byteOffset + 100 * 512, 16 * 512)));
  t.is(r.result[2].sum, r.result[0].sum);
  t.true((g.backend.flushes ?? 0) >= 1, `backend counters: ${JSON.stringify(g.backend)}`);
});

test.serial('discard: the range reads back as zeros, its neighbours are untouched', async (t) => {
  const img = image(4);
  const g = await host.runGuest({
    image: img,
    tasks: [{ kind: 'ops', steps: [
      { op: 'write', sector: 0, count: 64, seed: 3 },
      { op: 'discard', sector: 8, count: 16 },
      { op: 'read', sector: 8, count: 16 },
      { op: 'read', sector: 0, count: 8 },
    ] }],
  });
  const r = g.tasks[0].result;
  if (r?.kind !== 'ops') return t.fail(String(g.tasks[0].error));
  t.true(r.result.every((o) => o.ok), JSON.stringify(r.result));
  t.is(r.result[2].sum, checksum(new Uint8Array(16 * 512)), 'zeros');
  t.not(r.result[3].sum, checksum(new Uint8Array(8 * 512)), 'the sectors before it keep their data');
  const file = readFileSync(img);
  t.true(file.subarray(8 * 512, 24 * 512).every((b) => b === 0));
});

test.serial('a read-only disk: reads work, writes are refused, and discard is refused', async (t) => {
  const img = image(4);
  const g = await host.runGuest({
    image: img, readOnly: true,
    tasks: [{ kind: 'ops', steps: [{ op: 'read', sector: 0, count: 8 }, { op: 'write', sector: 0, count: 8 }, { op: 'discard', sector: 0, count: 8 }] }],
  });
  const r = g.tasks[0].result;
  if (r?.kind !== 'ops') return t.fail(String(g.tasks[0].error));
  t.true(g.device.readOnly);
  t.true(r.result[0].ok);
  t.false(r.result[1].ok);
  t.regex(r.result[1].error!, /read-only/);
  t.false(r.result[2].ok);
});

const CASES: (RawCase & { want: number })[] = [
  { name: 'nr_segments 0', op: BLKIF_OP_READ, nrSegs: 0, want: BLKIF_RSP_ERROR },
  { name: 'nr_segments 12', op: BLKIF_OP_READ, nrSegs: 12, want: BLKIF_RSP_ERROR },
  { name: 'last_sect 8', op: BLKIF_OP_READ, seg: { first: 0, last: 8 }, want: BLKIF_RSP_ERROR },
  { name: 'first_sect after last_sect', op: BLKIF_OP_READ, seg: { first: 5, last: 2 }, want: BLKIF_RSP_ERROR },
  { name: 'past the end of the disk', op: BLKIF_OP_READ, sector: 8192 - 4, want: BLKIF_RSP_ERROR },
  { name: 'a grant ref never granted', op: BLKIF_OP_READ, seg: { gref: 7000, first: 0, last: 7 }, want: BLKIF_RSP_ERROR },
  { name: 'reserved operation 4', op: 4, want: BLKIF_RSP_EOPNOTSUPP },
  { name: 'operation 200', op: 200, want: BLKIF_RSP_EOPNOTSUPP },
  { name: 'write barrier (not offered)', op: 2, want: BLKIF_RSP_EOPNOTSUPP },
  { name: 'indirect flush', op: BLKIF_OP_INDIRECT, indirect: { op: BLKIF_OP_FLUSH_DISKCACHE, nrSegs: 1 }, want: BLKIF_RSP_ERROR },
  { name: 'indirect with 0 segments', op: BLKIF_OP_INDIRECT, indirect: { op: BLKIF_OP_READ, nrSegs: 0 }, want: BLKIF_RSP_ERROR },
  { name: 'indirect above the offered maximum', op: BLKIF_OP_INDIRECT, indirect: { op: BLKIF_OP_READ, nrSegs: 4000 }, want: BLKIF_RSP_ERROR },
  { name: 'secure discard (not offered)', op: BLKIF_OP_DISCARD, discard: { flag: 1, nrSectors: 8 }, want: BLKIF_RSP_EOPNOTSUPP },
  { name: 'discard past the end', op: BLKIF_OP_DISCARD, sector: 8000, discard: { flag: 0, nrSectors: 500 }, want: BLKIF_RSP_ERROR },
  { name: 'a good write', op: BLKIF_OP_WRITE, want: BLKIF_RSP_OKAY },
];

test.serial('every malformed request gets its status, a response built whole, and the next good request succeeds', async (t) => {
  const img = image(4);
  const g = await host.runGuest({ image: img, kernel: RAW_KERNEL, extra: { cases: CASES, overflow: false }, tasks: [{ kind: 'ops', steps: [] }] });
  const r = g.tasks[0].result;
  if (r?.kind !== 'ops') return t.fail(String(g.tasks[0].error));
  const outcomes = r.result.map((o) => JSON.parse(o.error!) as RawOutcome);
  t.is(outcomes.length, CASES.length);
  for (const [i, c] of CASES.entries()) {
    const o = outcomes[i];
    t.is(o.status, c.want, c.name);
    t.is(o.operation, c.op, `${c.name}: the response echoes the operation`);
    t.is(o.padding, 0, `${c.name}: no stale bytes in the response`);
    t.is(o.followingRead, BLKIF_RSP_OKAY, `${c.name}: the next good request succeeds`);
  }
  t.true(host.dom0Log.some((l) => /bad read request id \d+: nr_segments 0/.test(l)), 'blkback logs the offending request');
});

test.serial('writes to a read-only disk and discards when discard is off are refused by the backend itself', async (t) => {
  const img = image(4);
  const cases: (RawCase & { want: number })[] = [
    { name: 'write to a read-only disk', op: BLKIF_OP_WRITE, want: BLKIF_RSP_ERROR },
    { name: 'discard switched off', op: BLKIF_OP_DISCARD, discard: { flag: 0, nrSectors: 8 }, want: BLKIF_RSP_EOPNOTSUPP },
  ];
  const g = await host.runGuest({ image: img, readOnly: true, disk: { discard: false }, kernel: RAW_KERNEL, extra: { cases, overflow: false }, tasks: [{ kind: 'ops', steps: [] }] });
  const r = g.tasks[0].result;
  if (r?.kind !== 'ops') return t.fail(String(g.tasks[0].error));
  const outcomes = r.result.map((o) => JSON.parse(o.error!) as RawOutcome);
  for (const [i, c] of cases.entries()) t.is(outcomes[i].status, c.want, c.name);
});

test.serial('a corrupted ring stops that one device; another guest\'s disk keeps working throughout', async (t) => {
  const before = host.usage();
  const [bad, good] = await Promise.all([
    host.runGuest({ image: image(4), kernel: RAW_KERNEL, extra: { cases: [], overflow: true }, tasks: [{ kind: 'ops', steps: [] }] }),
    host.runGuest({ image: image(16), tasks: [{ kind: 'verify', job: { ops: 1500, depth: 16, minBytes: 512, maxBytes: 256 * 1024, size: 8 * MIB, seed: 31 } }] }),
  ]);
  t.deepEqual(verifyOf(good, 0).errors, []);
  const line = host.dom0Log.find((l) => l.includes(`blkback d${bad.domid}/51712 queue 0: ring stopped`));
  t.truthy(line, 'the stopped ring is named in the log');
  t.regex(line!, /req_prod \d+ is more than \d+ ahead/);
  t.deepEqual(host.usage(), before);
});
