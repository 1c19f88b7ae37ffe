/*
 * Properties of the emulated IDE controller (dom0/device-models/ide/: QEMU's hw/ide/core.c,
 * piix.c and the bus-master engine of pci.c) under random register sequences.
 *
 * An HVM guest reaches the device model in Dom0 through nothing but port accesses, each one
 * trapped and emulated; whatever it writes, in whatever order, with descriptor tables pointing
 * wherever it likes, Dom0 must live, the model must touch no memory but what the guest's own
 * descriptors name, and the device must come back after the reset a driver's error handler does.
 * Each case plays a random sequence against a live host (test/kernels/ide-fuzz.ts runs it in the
 * guest, so every access really traps), then checks:
 *   - the fuzzing guest: a READ SECTORS works after BM stop + SRST; its canary pages (allocated
 *     right after its 64 KiB DMA window, outside every descriptor) are unchanged;
 *   - a bystander guest on the same Dom0: its canary, its disk's data, its own device, unchanged;
 *   - Dom0 answers (the model's counters), no domain crashed, and the host's frames, ports and
 *     grant mappings are as they were.
 */
import fc from 'fast-check';
import { ATA_CMD_DSM, ATA_CMD_FLUSH, ATA_CMD_ID_ATA, ATA_CMD_READ_DMA, ATA_CMD_READ_DMA_EXT, ATA_CMD_READ_PIO, ATA_CMD_READ_PIO_EXT,
  ATA_CMD_WRITE_DMA, ATA_CMD_WRITE_PIO, ATA_PRIMARY_CMD_BASE, ATA_PRIMARY_CTL_BASE } from '../../shared/public/hw/ata.ts';
import { PIIX_BMIDE_BASE, PRD_BOUNDARY } from '../../shared/public/hw/bmide.ts';
import { IdeRig, type Guest } from '../helpers/ide-rig.ts';
import type { PortFuzzCase, PortFuzzResult, PortOp, PrdEntry } from '../kernels/ide-fuzz.ts';
import type { FuzzGroup } from './property.ts';

interface Ctx { rig: IdeRig; fuzzed: Guest; bystander: Guest; byDigest: string; usage: ReturnType<IdeRig['usage']> }

const CMD = ATA_PRIMARY_CMD_BASE + 7;
const PRDT = PIIX_BMIDE_BASE + 4;
const COMMANDS = [ATA_CMD_READ_DMA, ATA_CMD_WRITE_DMA, ATA_CMD_READ_PIO, ATA_CMD_WRITE_PIO, ATA_CMD_READ_DMA_EXT, ATA_CMD_READ_PIO_EXT,
  ATA_CMD_DSM, ATA_CMD_FLUSH, ATA_CMD_ID_ATA, 0x00, 0x01, 0x08, 0x91, 0xef, 0xff];

const op: fc.Arbitrary<PortOp> = fc.oneof(
  // The task file and Command: values near what drivers write.
  fc.record({
    port: fc.integer({ min: ATA_PRIMARY_CMD_BASE + 1, max: ATA_PRIMARY_CMD_BASE + 6 }), size: fc.constant(1 as const), write: fc.boolean(),
    value: fc.oneof(fc.nat(255), fc.constantFrom(0, 1, 8, 0x40, 0xe0, 0xa0, 0xff)), repeat: fc.constant(1),
  }),
  fc.record({ port: fc.constant(CMD), size: fc.constant(1 as const), write: fc.constant(true), value: fc.constantFrom(...COMMANDS), repeat: fc.constant(1) }),
  fc.record({ port: fc.constant(CMD), size: fc.constant(1 as const), write: fc.constant(false), value: fc.constant(0), repeat: fc.constant(1) }),
  // The data register, a word or a dword at a time, sometimes a whole sector's worth.
  fc.record({
    port: fc.constant(ATA_PRIMARY_CMD_BASE), size: fc.constantFrom(1 as const, 2 as const, 4 as const), write: fc.boolean(),
    value: fc.nat({ max: 0xffffffff }), repeat: fc.constantFrom(1, 2, 128, 256),
  }),
  // Device Control / Alternate Status: nIEN, SRST, HOB.
  fc.record({ port: fc.constant(ATA_PRIMARY_CTL_BASE), size: fc.constant(1 as const), write: fc.boolean(), value: fc.constantFrom(0, 2, 4, 6, 0x80, 0xff), repeat: fc.constant(1) }),
  // The bus master: Command (start, direction), Status (write 1 to clear), the table address.
  fc.record({ port: fc.constant(PIIX_BMIDE_BASE), size: fc.constant(1 as const), write: fc.boolean(), value: fc.constantFrom(0, 1, 8, 9, 0xff), repeat: fc.constant(1) }),
  fc.record({ port: fc.constant(PIIX_BMIDE_BASE + 2), size: fc.constant(1 as const), write: fc.boolean(), value: fc.nat(255), repeat: fc.constant(1) }),
  fc.record({
    port: fc.constant(PRDT), size: fc.constant(4 as const), write: fc.constant(true),
    value: fc.oneof(fc.nat(PRD_BOUNDARY - 1).map((v) => v & ~3), fc.nat(PRD_BOUNDARY - 1), fc.nat({ max: 0xffffffff })), repeat: fc.constant(1),
  }),
  // Any claimed port, any width that stays inside the claimed range (an access running past it
  // reaches no device model: the hypervisor raises #GP in the guest, which is the guest's end).
  fc.constantFrom(1 as const, 2 as const, 4 as const).chain((size) => fc.record({
    port: fc.oneof(fc.integer({ min: ATA_PRIMARY_CMD_BASE, max: ATA_PRIMARY_CMD_BASE + 8 - size }), fc.integer({ min: PIIX_BMIDE_BASE, max: PIIX_BMIDE_BASE + 8 - size })),
    size: fc.constant(size), write: fc.boolean(), value: fc.nat({ max: 0xffffffff }), repeat: fc.constant(1),
  })),
);

/**
 * A bus-master transfer set up the way a driver does it ([BMIDE]'s programming sequence): table
 * address, direction, task file, DMA command, start; each piece drawn at random.
 */
type Table = PortFuzzCase['tables'][number];
interface DmaItem { dma: { dir: number; lba: number; count: number; command: number; features: number }; table: Table }
const dmaItem: fc.Arbitrary<DmaItem> = fc.record({
  // Mostly what a driver would do (the direction that matches the command, a range on the
  // 4096-sector disk), sometimes not.
  dma: fc.record({
    wrongDir: fc.boolean().chain((b) => (b ? fc.boolean() : fc.constant(false))).chain((b) => (b ? fc.boolean() : fc.constant(false))),
    lba: fc.oneof({ weight: 4, arbitrary: fc.nat(4000) }, { weight: 1, arbitrary: fc.nat(0xffffff) }), count: fc.oneof(fc.integer({ min: 0, max: 16 }), fc.nat(255)),
    command: fc.constantFrom(ATA_CMD_READ_DMA, ATA_CMD_READ_DMA, ATA_CMD_WRITE_DMA, ATA_CMD_DSM, ATA_CMD_READ_DMA_EXT), features: fc.constantFrom(0, 1, 1),
  }).map(({ wrongDir, command, ...rest }) => {
    const toMemory = command === ATA_CMD_READ_DMA || command === ATA_CMD_READ_DMA_EXT;
    return { ...rest, command, dir: toMemory !== wrongDir ? 8 : 0 };
  }),
  table: fc.record({ at: fc.nat(PRD_BOUNDARY - 64), entries: fc.array(fc.constant(null).chain(() => entryArb()), { minLength: 1, maxLength: 4 }), cross: fc.boolean() }),
}).map(({ dma, table }) => ({ dma, table: { ...table, fit: (dma.count || 256) * 512, cross: table.cross && table.at % 3 === 0 } }));

/** A bus-master transfer set up the way a driver does it ([BMIDE]'s programming sequence), its table at index `t`. */
function dmaOps(d: DmaItem['dma'], t: number): PortOp[] {
  const b = (port: number, value: number): PortOp => ({ port, size: 1, write: true, value, repeat: 1 });
  return [
    { port: PRDT, size: 4, write: true, value: t, repeat: 1 },
    b(PIIX_BMIDE_BASE, d.dir),
    b(ATA_PRIMARY_CMD_BASE + 1, d.features),
    b(ATA_PRIMARY_CMD_BASE + 2, d.count),
    b(ATA_PRIMARY_CMD_BASE + 3, d.lba & 0xff),
    b(ATA_PRIMARY_CMD_BASE + 4, (d.lba >>> 8) & 0xff),
    b(ATA_PRIMARY_CMD_BASE + 5, (d.lba >>> 16) & 0xff),
    b(ATA_PRIMARY_CMD_BASE + 6, 0xe0),
    b(CMD, d.command),
    b(PIIX_BMIDE_BASE, d.dir | 1),
  ];
}

function entryArb(): fc.Arbitrary<PrdEntry> {
  return fc.oneof(
    { weight: 4, arbitrary: fc.nat(PRD_BOUNDARY - 2).chain((offset) => fc.record({
      far: fc.constant(false), offset: fc.constant(offset & ~1),
      count: fc.oneof(fc.integer({ min: 2, max: PRD_BOUNDARY - offset }).map((c) => c & 0xfffe), fc.nat(0xffff)), eot: fc.boolean(),
    })) },
    { weight: 1, arbitrary: fc.record({ far: fc.constant(true), offset: fc.nat(0xffff), count: fc.nat(0xffff), eot: fc.boolean() }) },
  );
}

/** A case: random accesses and driver-like DMA set-ups, interleaved; random tables besides the DMAs' own. */
const fuzzCase: fc.Arbitrary<PortFuzzCase> = fc.record({
  items: fc.array(fc.oneof({ weight: 5, arbitrary: op }, { weight: 1, arbitrary: dmaItem }), { minLength: 1, maxLength: 30 }),
  tables: fc.array(fc.record({ at: fc.nat(PRD_BOUNDARY - 8), entries: fc.array(entryArb(), { minLength: 1, maxLength: 6 }) }), { maxLength: 2 }),
  fillSeed: fc.integer({ min: 1, max: 0x7fffffff }),
}).map(({ items, tables, fillSeed }) => {
  const all: Table[] = [...tables];
  const ops = items.flatMap((it) => {
    if ('port' in it) return [it];
    all.push(it.table);
    return dmaOps(it.dma, all.length - 1);
  });
  return { ops, tables: all.slice(0, 16), fillSeed };
});

const NO_OPS: PortFuzzCase = { ops: [], tables: [], fillSeed: 1 };

async function setup(): Promise<Ctx> {
  const rig = await IdeRig.start(64);
  const fuzzed = await rig.guest(rig.image('fuzzed.img', 4096, 5), { memoryKiB: 8 * 1024 });
  await rig.task(fuzzed, { do: 'probe', mode: 'emu-dma' });
  const bystander = await rig.guest(rig.image('bystander.img', 4096, 9), { memoryKiB: 8 * 1024 });
  await rig.task(bystander, { do: 'probe', mode: 'emu-dma' });
  // Both arenas exist before the baseline is taken.
  await rig.task(fuzzed, { do: 'port-fuzz', case: NO_OPS });
  await rig.task(bystander, { do: 'port-fuzz', case: NO_OPS });
  const byDigest = (await rig.task<{ digest: string }>(bystander, { do: 'io', op: 'read', sector: 0, sectors: 64 })).digest;
  return { rig, fuzzed, bystander, byDigest, usage: rig.usage() };
}

async function oneCase(ctx: Ctx, c: PortFuzzCase): Promise<void> {
  const { rig } = ctx;
  const r = await rig.task<PortFuzzResult>(ctx.fuzzed, { do: 'port-fuzz', case: c });
  if (!r.canaryIntact) throw new Error('the device model wrote into the fuzzing guest\'s pages outside its DMA window');
  if (r.recovered !== 'ok') throw new Error(`after BM stop and SRST, READ SECTORS failed: ${r.recovered}`);
  await rig.modelStats(ctx.fuzzed); // Dom0 answers
  const by = await rig.task<PortFuzzResult>(ctx.bystander, { do: 'port-fuzz', case: NO_OPS });
  if (!by.canaryIntact || by.recovered !== 'ok') throw new Error(`the bystander was harmed: canary ${by.canaryIntact}, device ${by.recovered}`);
  const d = (await rig.task<{ digest: string }>(ctx.bystander, { do: 'io', op: 'read', sector: 0, sectors: 64 })).digest;
  if (d !== ctx.byDigest) throw new Error('the bystander\'s disk reads back changed');
  const u = rig.usage();
  for (const k of ['domains', 'framesUsed', 'portsBound', 'grantMappings'] as const) {
    if (u[k] !== ctx.usage[k]) throw new Error(`host ${k} ${ctx.usage[k]} → ${u[k]}`);
  }
}

export const idePortProperties: FuzzGroup<Ctx> = {
  name: 'IDE registers',
  setup,
  teardown: async (ctx) => { await ctx.rig.close(); },
  properties: [
    {
      name: 'random IDE register sequences: Dom0 lives, no memory outside the guest\'s descriptors is touched, a reset brings the device back',
      ciRuns: 30,
      property: (ctx) => fc.asyncProperty(fuzzCase, (c) => oneCase(ctx, c)),
    },
  ],
};
