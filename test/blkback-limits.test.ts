/*
 * The pieces that bound what a hostile frontend can make Dom0 do, on their own: the per-guest
 * log limiter, the per-frontend mapping budget, the raw image's discard (never allocating,
 * bounded per call), TRIM range merging, the 64-bit request id, and the emulated disk's TRIM on a
 * sparse image (issue 17, items 5-7).
 */
import test from 'ava';
import { closeSync, ftruncateSync, openSync, readFileSync, rmSync, statSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomUUID } from 'node:crypto';
import { GuestLog } from '../backends/lib/guest-log.ts';
import { GrantBudget } from '../backends/lib/grant-budget.ts';
import { DISCARD_PIECE_SECTORS, RawImage } from '../dom0/lib/raw-image.ts';
import { trim, trimRanges } from '../dom0/device-models/ide/trim.ts';
import { RequestPlan, checkRequest, type VbdLimits } from '../backends/blkback/request.ts';
import { BLKIF_OP_DISCARD, BLKIF_OP_READ, BLKIF_RSP_ERROR, BLKIF_RSP_OKAY, BLKIF_SEG_OFFSET, blkif_request, blkif_request_discard, set_seg } from '../shared/public/io/blkif.ts';
import { IdeRig } from './helpers/ide-rig.ts';

const MIB = 1 << 20;
const files: string[] = [];
test.after.always(() => { for (const f of files) rmSync(f, { force: true }); });

function sparse(bytes: number, data: { at: number; len: number }[] = []): string {
  const path = join(tmpdir(), `ringvisor-limits-${randomUUID()}.img`);
  const fd = openSync(path, 'w');
  ftruncateSync(fd, bytes);
  for (const d of data) writeSync(fd, new Uint8Array(d.len).fill(0xa5), 0, d.len, d.at);
  closeSync(fd);
  files.push(path);
  return path;
}

test('GuestLog: each guest gets its burst, then its lines are counted, and the next line says how many', (t) => {
  const out: string[] = [];
  const log = new GuestLog((l) => out.push(l), 3, 1e9);
  for (let i = 0; i < 50; i++) log.line(5, `d5 line ${i}`);
  for (let i = 0; i < 2; i++) log.line(6, `d6 line ${i}`);
  t.deepEqual(out, ['d5 line 0', 'd5 line 1', 'd5 line 2', 'd6 line 0', 'd6 line 1']);
  t.is(log.suppressed, 47);
  const later = new GuestLog((l) => out.push(l), 1, 0); // an interval of 0: every line opens a new one
  later.line(7, 'a');
  later.line(7, 'b');
  t.deepEqual(out.slice(-2), ['a', 'b']);
});

test('GrantBudget: persistent mappings per frontend and in total, every mapping per frontend', (t) => {
  const b = new GrantBudget({ persistentPerFrontend: 3, persistentTotal: 5, perFrontend: 4 });
  t.true(b.takePersistent(1) && b.takePersistent(1) && b.takePersistent(1));
  t.false(b.takePersistent(1), 'the frontend has its persistent share');
  t.true(b.take(1), 'a per-request mapping still fits');
  t.false(b.take(1), 'but no more than perFrontend in all');
  t.true(b.takePersistent(2) && b.takePersistent(2));
  t.false(b.takePersistent(2), 'the total is reached');
  t.true(b.take(2));
  b.give(1, true);
  t.true(b.takePersistent(2), 'room given back is room again');
  for (const [fe, n, p] of [[1, 2, true], [1, 1, false], [2, 3, true], [2, 1, false]] as const) for (let i = 0; i < n; i++) b.give(fe, p);
  t.is(b.held(1) + b.held(2), 0);
});

test('RawImage.discard: zeroes data, never allocates in a hole, works a bounded piece per call, truncates a tail', (t) => {
  const size = 8 * MIB;
  const path = sparse(size, [{ at: 3 * MIB, len: 4096 }]);
  const disk = new RawImage(path, false);
  try {
    const before = statSync(path).blocks;
    t.true(before > 0 && before <= 64);
    const n = disk.discard(0, disk.sectors - 8);
    t.is(n, DISCARD_PIECE_SECTORS, 'one call, one piece');
    let done = n;
    while (done < disk.sectors - 8) done += disk.discard(done, disk.sectors - 8 - done);
    t.true(statSync(path).blocks <= before, 'no block allocated');
    t.true(readFileSync(path).every((b) => b === 0), 'the data reads as zeros');
    t.is(disk.stats.zeroedBytes, 4096, 'only the block that held data was written');
    // A range reaching the end: deallocated by truncation, whatever its size.
    const fd = openSync(path, 'r+');
    writeSync(fd, new Uint8Array(MIB).fill(1), 0, MIB, size - MIB);
    closeSync(fd);
    t.is(disk.discard(disk.sectors - 4096, 4096), 4096);
    t.is(disk.stats.truncations, 1);
    t.is(statSync(path).size, size);
    t.true(readFileSync(path).every((b) => b === 0));
  } finally {
    disk.close();
  }
});

function dsm(ranges: [number, number][]): Uint8Array {
  const p = new Uint8Array(512 * Math.ceil(ranges.length / 64));
  ranges.forEach(([lba, count], i) => {
    for (let b = 0; b < 6; b++) p[i * 8 + b] = Math.floor(lba / 256 ** b) & 0xff;
    p[i * 8 + 6] = count & 0xff;
    p[i * 8 + 7] = count >> 8;
  });
  return p;
}

test('TRIM ranges are checked against the disk, sorted and merged', (t) => {
  t.deepEqual(trimRanges(dsm([[100, 10], [0, 50], [105, 20], [50, 5], [300, 1], [0, 0]]), 512, 1000), [{ lba: 0, count: 55 }, { lba: 100, count: 25 }, { lba: 300, count: 1 }]);
  t.is(trimRanges(dsm([[0, 8], [995, 6]]), 512, 1000), 'out-of-range');
  const same = Array.from({ length: 64 }, () => [0, 65535] as [number, number]);
  t.deepEqual(trimRanges(dsm(same), 512, 80_000), [{ lba: 0, count: 65535 }]);
});

test('TRIM of 64 copies of one range on a sparse image discards it once and allocates nothing', (t) => {
  const path = sparse(80_000 * 512);
  const disk = new RawImage(path, false);
  try {
    const same = Array.from({ length: 64 }, () => [10, 65535] as [number, number]);
    t.is(trim(disk, dsm(same), 512), 65535, 'the distinct sectors');
    t.is(statSync(path).blocks, 0);
    t.is(disk.stats.zeroedBytes, 0);
  } finally {
    disk.close();
  }
});

test('checkRequest keeps the id as its two halves, and refuses a discard whose size is past 2^53', (t) => {
  const lim: VbdLimits = { sectors: 1 << 20, readOnly: false, flush: true, discard: true, maxIndirectSegments: 0 };
  const plan = new RequestPlan(0);
  const r = blkif_request.create();
  r.operation = BLKIF_OP_READ;
  r.nr_segments = 1;
  r.dv.setUint32(blkif_request.fields.id[1], 0xffffffff, true);
  r.dv.setUint32(blkif_request.fields.id[1] + 4, 0xffffffff, true);
  set_seg(r.dv, BLKIF_SEG_OFFSET, 0, 9, 0, 7);
  t.is(checkRequest(r.dv, lim, plan), BLKIF_RSP_OKAY);
  t.deepEqual([plan.idLo, plan.idHi], [0xffffffff, 0xffffffff]);
  t.is(plan.idText(), '18446744073709551615');
  const d = blkif_request_discard.create();
  d.operation = BLKIF_OP_DISCARD;
  d.dv.setUint32(blkif_request_discard.fields.nr_sectors[1] + 4, 0x00300000, true);
  t.is(checkRequest(d.dv, lim, plan), BLKIF_RSP_ERROR);
});

test.serial('the emulated disk: TRIM of a sparse image leaves it sparse and reads back zeros', async (t) => {
  const rig = await IdeRig.start();
  try {
    const img = rig.image('sparse-trim.img', 80_000, null);
    const g = await rig.guest(img);
    await rig.task(g, { do: 'probe', mode: 'emu-dma' });
    await rig.task(g, { do: 'io', op: 'write', sector: 70_000, sectors: 8, seed: 3 });
    await rig.task(g, { do: 'flush' });
    const before = statSync(img).blocks;
    t.deepEqual(await rig.task(g, { do: 'discard', sector: 0, sectors: 79_990 }), { ok: true });
    await rig.task(g, { do: 'flush' });
    t.true(statSync(img).blocks <= before, `${statSync(img).blocks} blocks after, ${before} before`);
    t.true(readFileSync(img).subarray(0, 79_990 * 512).every((b) => b === 0));
    const stats = await rig.destroy(g);
    t.is(stats.ata.trimmedSectors, 79_990);
  } finally {
    await rig.close();
  }
});
