// The emulated disk end to end: a guest drives an ATA/IDE controller register by register (PIO
// and bus-master DMA), every access trapping to the device model in Dom0; the same checksummed
// random-I/O workload passes on both paths, the image file holds exactly what the guest wrote,
// and a guest with an emulated disk leaves nothing behind.
//
// Serial: each test runs a host whose vCPUs spin while they wait for each other (that is how a
// trap stays cheap); several such hosts at once on two cores only slow each other down.
import test from 'ava';
import { readFileSync } from 'node:fs';
import { IdeRig, type Guest } from './helpers/ide-rig.ts';
import { digest, imagePattern, type WorkloadResult, type WorkloadSpec } from './kernels/ide-workload.ts';

const SECTORS = 8192; // a 4 MiB disk

function spec(over: Partial<WorkloadSpec>): WorkloadSpec {
  return { seed: 1, imageSeed: 11, writes: 40, reads: 40, depth: 4, minSectors: 1, maxSectors: 128, ...over };
}

async function workload(t: import('ava').ExecutionContext, rig: IdeRig, g: Guest, mode: 'emu-dma' | 'emu-pio', s: WorkloadSpec, probe: Record<string, unknown> = {}) {
  await rig.task(g, { do: 'probe', mode, ...probe });
  const r = await rig.task<WorkloadResult>(g, { do: 'workload', spec: s });
  t.is(r.mismatches, 0, r.firstMismatch ?? '');
  t.is(r.writes, s.writes);
  t.is(r.reads, s.reads);
  t.true(r.sizesSeen.includes(s.minSectors) && r.sizesSeen.includes(s.maxSectors), `sizes ${s.minSectors * 512} B and ${s.maxSectors * 512} B both ran`);
  // After the workload's flush, the image file itself holds the guest's model of the disk.
  t.is(digest(readFileSync(g.image)), r.digest, 'the image file matches the guest\'s model byte for byte');
  t.is(r.driver.errors, 0);
  t.log(`${mode}: ${r.writes} writes + ${r.reads} reads, ${((r.bytesWritten + r.bytesRead) / 1024).toFixed(0)} KiB in ${r.ms.toFixed(0)} ms; ${r.driver.traps} traps, ${r.driver.interrupts} interrupts`);
  return r;
}

test.serial('emu-dma: random writes and checked reads (512 B to 64 KiB, scattered buffers), image file identical', async (t) => {
  const rig = await IdeRig.start();
  try {
    const before = rig.usage();
    const g = await rig.guest(rig.image('dma.img', SECTORS, 11));
    const r = await workload(t, rig, g, 'emu-dma', spec({ writes: 80, reads: 80, depth: 8 }));
    t.true(r.driver.prdEntries > r.driver.commands, 'scattered buffers needed several descriptors per command');
    const c = rig.counters(g.domid);
    t.is(c.traps, c.ioreqs, 'every trap of the guest was one ioreq');
    const stats = await rig.destroy(g);
    t.deepEqual(stats.ata.errors, {});
    t.is(stats.mapcache.mapped, 0, 'the model unmapped all guest memory');
    t.deepEqual(rig.usage(), before);
  } finally {
    await rig.close();
  }
});

test.serial('emu-pio: the same workload through the 16-bit data register, image file identical', async (t) => {
  const rig = await IdeRig.start();
  try {
    const before = rig.usage();
    const g = await rig.guest(rig.image('pio.img', SECTORS, 11));
    const r = await workload(t, rig, g, 'emu-pio', spec({ writes: 16, reads: 16, depth: 4, seed: 2 }));
    t.true(r.driver.traps > ((r.bytesWritten + r.bytesRead) / 2), 'at least one trap per 16-bit word');
    await rig.destroy(g);
    t.deepEqual(rig.usage(), before);
  } finally {
    await rig.close();
  }
});

test.serial('emu-pio with 32-bit data accesses, and both paths with LBA48 (EXT) commands', async (t) => {
  const rig = await IdeRig.start();
  try {
    const before = rig.usage();
    const g1 = await rig.guest(rig.image('pio32.img', SECTORS, 11));
    await workload(t, rig, g1, 'emu-pio', spec({ writes: 10, reads: 10, seed: 3 }), { pio32: true });
    await rig.destroy(g1);
    const g2 = await rig.guest(rig.image('ext-pio.img', SECTORS, 11));
    await workload(t, rig, g2, 'emu-pio', spec({ writes: 8, reads: 8, seed: 4 }), { lba48: 'always' });
    await rig.destroy(g2);
    const g3 = await rig.guest(rig.image('ext-dma.img', SECTORS, 11));
    await workload(t, rig, g3, 'emu-dma', spec({ writes: 30, reads: 30, seed: 5 }), { lba48: 'always' });
    const stats = await rig.destroy(g3, 'guest-first');
    t.deepEqual(stats.ata.errors, {});
    t.deepEqual(rig.usage(), before);
  } finally {
    await rig.close();
  }
});

test.serial('transfers across page boundaries: a scattered buffer and a PRD entry ending on a page boundary, both paths', async (t) => {
  const rig = await IdeRig.start();
  try {
    const img = rig.image('pages.img', SECTORS, 11);
    const file = () => readFileSync(img);
    for (const mode of ['emu-dma', 'emu-pio'] as const) {
      const g = await rig.guest(img);
      await rig.task(g, { do: 'probe', mode });
      // 9 pages' worth, scattered (no two pages adjacent): 9 descriptors, each ending exactly at
      // the end of its page; the write goes in scattered, comes back through contiguous pages.
      const sector = mode === 'emu-dma' ? 100 : 300;
      const w = await rig.task<{ digest: string; gfns: number[] }>(g, { do: 'io', op: 'write', sector, sectors: 72, scatter: true, seed: 9 });
      t.true(w.gfns.every((gfn, i) => i === 0 || gfn !== w.gfns[i - 1] + 1), 'no two pages of the buffer are neighbours');
      const r = await rig.task<{ digest: string }>(g, { do: 'io', op: 'read', sector, sectors: 72 });
      t.is(r.digest, w.digest);
      await rig.task(g, { do: 'flush' });
      t.is(digest(file().subarray(sector * 512, (sector + 72) * 512)), w.digest, `${mode}: the file holds the scattered write`);
      await rig.destroy(g);
    }
    // A descriptor table that itself spans two guest pages, read by the model across the boundary.
    const g = await rig.guest(img);
    await rig.task(g, { do: 'probe', mode: 'emu-dma' });
    const r = await rig.task<{ status: number; bm: number; digest: string }>(g, { do: 'regs', script: 'prd-table-spans-pages' });
    t.is(r.status, 0x40);
    t.is(r.bm, 0x24);
    t.is(r.digest, digest(file().subarray(0, 8192)));
    await rig.destroy(g);
  } finally {
    await rig.close();
  }
});

test.serial('discard: TRIM on emu-dma reads back zeros (file too); emu-pio refuses it with a clear error', async (t) => {
  const rig = await IdeRig.start();
  try {
    // 80,000 sectors (a sparse file): a discard of 70,000 needs two range entries (65,535 at most each).
    const img = rig.image('trim.img', 80_000, null);
    const g = await rig.guest(img);
    const p = await rig.task<{ features: { discard: boolean } }>(g, { do: 'probe', mode: 'emu-dma' });
    t.true(p.features.discard);
    const w = await rig.task<{ digest: string }>(g, { do: 'io', op: 'write', sector: 66_000, sectors: 8, seed: 3 });
    await rig.task(g, { do: 'io', op: 'write', sector: 70_010, sectors: 8, seed: 4 });
    t.not(w.digest, digest(new Uint8Array(4096)));
    t.deepEqual(await rig.task(g, { do: 'discard', sector: 10, sectors: 70_000 }), { ok: true });
    const r = await rig.task<{ digest: string }>(g, { do: 'io', op: 'read', sector: 66_000, sectors: 8 });
    t.is(r.digest, digest(new Uint8Array(4096)), 'the second range was discarded too');
    await rig.task(g, { do: 'flush' });
    const f = readFileSync(img);
    t.true(f.subarray(66_000 * 512, 66_008 * 512).every((b) => b === 0));
    t.false(f.subarray(70_010 * 512, 70_018 * 512).every((b) => b === 0), 'after the range: untouched');
    const stats = await rig.destroy(g);
    t.is(stats.ata.trimmedSectors, 70_000);

    const g2 = await rig.guest(img);
    const p2 = await rig.task<{ features: { discard: boolean } }>(g2, { do: 'probe', mode: 'emu-pio' });
    t.false(p2.features.discard);
    const d = await rig.task<{ ok: boolean; error: string }>(g2, { do: 'discard', sector: 0, sectors: 8 });
    t.false(d.ok);
    t.regex(d.error, /TRIM .* is a DMA command; the emu-pio path has no discard \(status -2\)/);
    await rig.destroy(g2);
  } finally {
    await rig.close();
  }
});

test.serial('a read-only image: reads work, a write fails with the device\'s abort, the file is unchanged', async (t) => {
  const rig = await IdeRig.start();
  try {
    const img = rig.image('ro.img', SECTORS, 11);
    for (const mode of ['emu-dma', 'emu-pio'] as const) {
      const g = await rig.guest(img, { readOnly: true });
      await rig.task(g, { do: 'probe', mode });
      const r = await rig.task<{ digest: string }>(g, { do: 'io', op: 'read', sector: 0, sectors: 16 });
      t.is(r.digest, digest(imagePattern(11, 16 * 512)));
      const e = await t.throwsAsync(rig.task(g, { do: 'io', op: 'write', sector: 0, sectors: 16 }));
      t.regex(e!.message, /write of 16 sector\(s\) at 0: ATA status 0x41, error 0x4/);
      const stats = await rig.destroy(g);
      t.is(stats.ata.errors['read-only'], 1);
    }
    t.is(digest(readFileSync(img)), digest(imagePattern(11, SECTORS * 512)), 'the file is unchanged');
  } finally {
    await rig.close();
  }
});

test.serial('a two-vCPU guest: one ioreq slot and event channel per vCPU; the disk works', async (t) => {
  const rig = await IdeRig.start();
  try {
    const before = rig.usage();
    const g = await rig.guest(rig.image('smp.img', SECTORS, 11), { vcpus: 2 });
    await workload(t, rig, g, 'emu-dma', spec({ writes: 10, reads: 10, seed: 6 }));
    t.is(rig.usage().portsBound - before.portsBound, 2 /* store, console */ + 2 /* vp_eports */ + 2 /* their Dom0 ends */ + 2 /* IRQ 14 */);
    await rig.destroy(g);
    t.deepEqual(rig.usage(), before);
  } finally {
    await rig.close();
  }
});
