// The emulated disk under a broken driver: each malformed register sequence or descriptor table
// gives exactly the error status the spec (or the model's documented strictness) says, is
// counted by the model under its reason, and leaves the device working. The registers a driver
// reads after the interrupt are checked bit for bit:
//   ATA Status 0x41 = DRDY | ERR, Error 0x04 = ABRT;
//   bus-master Status 0x26 = drive-0-DMA-capable | Interrupt | Error (Active clear): a DMA the
//   engine refused; 0x25 = drive-0-DMA-capable | Interrupt | Active: the command was refused
//   before any DMA, and the engine, started after it, was still waiting ([BMIDE]'s Interrupt/Active table).
import test from 'ava';
import { IdeRig, type Guest } from './helpers/ide-rig.ts';
import type { RegsResult } from './kernels/ide-scripts.ts';

let rig: IdeRig;
let dma: Guest;   // a writable disk, driven as emu-dma
let ro: Guest;    // a read-only disk
let baseline: ReturnType<IdeRig['usage']>;

test.before(async () => {
  rig = await IdeRig.start();
  baseline = rig.usage();
  // 8200 KiB of RAM: the last RAM page is not on a 64 KiB line, so a region can run off its end
  // into what lies beyond (shared_info) without also crossing a 64 KiB boundary.
  dma = await rig.guest(rig.image('err.img', 4096, 3), { memoryKiB: 8200 });
  await rig.task(dma, { do: 'probe', mode: 'emu-dma' });
  ro = await rig.guest(rig.image('ro.img', 4096, 3), { readOnly: true });
  await rig.task(ro, { do: 'probe', mode: 'emu-dma' });
});

test.after.always(async () => {
  await rig?.close();
});

const ABORTED = { status: 0x41, error: 0x04 };

function errorCase(script: string, reason: string, expect: { status: number; error: number; bm?: number; extra?: Record<string, number> }, on: () => Guest = () => dma, where: 'ata' | 'bm' = 'ata') {
  test.serial(`${script}: status 0x${expect.status.toString(16)}, error 0x${expect.error.toString(16)}${expect.bm === undefined ? '' : `, bus master 0x${expect.bm.toString(16)}`}; counted as ${reason}`, async (t) => {
    const g = on();
    const before = await rig.modelStats(g);
    const r = await rig.task<RegsResult>(g, { do: 'regs', script });
    t.is(r.status, expect.status);
    t.is(r.error, expect.error);
    if (expect.bm !== undefined) t.is(r.bm, expect.bm);
    for (const [k, v] of Object.entries(expect.extra ?? {})) t.is(r.extra?.[k], v, k);
    t.true(r.recovered, 'a correct command works afterwards');
    const after = await rig.modelStats(g);
    const count = (s: typeof after) => (where === 'ata' ? s.ata.errors : s.bm.errors as Record<string, number>)[reason] ?? 0;
    t.is(count(after) - count(before), 1, `one ${reason} counted by the model`);
  });
}

/* The task file and the command engine. */
errorCase('out-of-range', 'out-of-range', { ...ABORTED, bm: 0x25 });
errorCase('unknown-command', 'unknown-command', ABORTED);
errorCase('chs-addressing', 'chs-addressing', ABORTED);
errorCase('data-without-drq', 'data-without-drq', { ...ABORTED, extra: { value: 0xffff } });
errorCase('data-8bit', 'data-access-width', ABORTED);
errorCase('write-during-read', 'data-wrong-direction', ABORTED);
errorCase('command-during-transfer', 'command-during-transfer', ABORTED);
errorCase('dsm-not-trim', 'dsm-not-trim', { ...ABORTED, bm: 0x25 });
errorCase('read-only-write', 'read-only', { ...ABORTED, bm: 0x25 }, () => ro);

/* The bus master and its descriptor table: no data moves, Error is set. */
const REFUSED = { ...ABORTED, bm: 0x26 };
errorCase('prd-no-eot', 'prd-no-eot', REFUSED, undefined, 'bm');
errorCase('prd-hole', 'prd-not-guest-ram', REFUSED, undefined, 'bm');
errorCase('prd-into-hole', 'prd-not-guest-ram', REFUSED, undefined, 'bm');
errorCase('prd-too-short', 'prd-too-short', REFUSED, undefined, 'bm');
errorCase('prd-too-long', 'prd-too-long', REFUSED, undefined, 'bm');
errorCase('prd-crosses-64k', 'prd-crosses-64k', REFUSED, undefined, 'bm');
errorCase('prd-odd', 'prd-misaligned', REFUSED, undefined, 'bm');
errorCase('bm-direction', 'direction', REFUSED, undefined, 'bm');

test.serial('software reset: BSY while SRST is set, then DRDY, diagnostic code 01h and the ATA signature', async (t) => {
  const r = await rig.task<RegsResult>(dma, { do: 'regs', script: 'srst' });
  t.is(r.extra?.during, 0x80);
  t.is(r.status, 0x40);
  t.is(r.error, 0x01);
  t.deepEqual([r.extra?.nsector, r.extra?.lbal, r.extra?.lbam, r.extra?.lbah], [1, 1, 0, 0]);
  t.true(r.recovered);
});

test.serial('nIEN: the device completes without raising its interrupt line, and no event arrives', async (t) => {
  const r = await rig.task<RegsResult>(dma, { do: 'regs', script: 'nien' });
  t.is(r.extra?.drq, 0x48);
  t.is(r.status, 0x40);
  t.is(r.extra?.events, 0);
  t.true(r.recovered);
});

test.serial('after all of it: the guest is alive, nothing crashed, and both guests go without a trace', async (t) => {
  t.is(rig.host.info(dma.domid)?.state, 'running');
  await rig.destroy(dma);
  await rig.destroy(ro, 'guest-first');
  t.deepEqual(rig.usage(), baseline);
});
