// What a request costs on the emulated paths, counted by the hypervisor: every register access
// is one trap and one ioreq (one round trip to the device model), so a request's count follows
// from the register protocol alone and is asserted exactly. With n sectors (domu/ide/disk.ts):
//   PIO read   6 task-file writes + n × (1 Status read + 256 data reads)        = 6 + 257n
//   PIO write  6 + 1 Alternate Status + n × (256 data writes + 1 Status read)  = 7 + 257n
//   DMA        PRD address, engine direction, 6 task file, Start; then on the interrupt:
//              bus-master status, Stop, Status, clear status                   = 13 for any size
// 48-bit (EXT) commands write the four address/count registers twice: 4 more.
import test from 'ava';
import { IdeRig, type Guest } from './helpers/ide-rig.ts';

let rig: IdeRig;
const guests: Record<string, Guest> = {};

test.before(async () => {
  rig = await IdeRig.start();
  const img = rig.image('traps.img', 8192, 5);
  for (const [name, probe] of [
    ['pio', { mode: 'emu-pio' }], ['pio32', { mode: 'emu-pio', pio32: true }],
    ['dma', { mode: 'emu-dma' }], ['dma48', { mode: 'emu-dma', lba48: 'always' }],
  ] as const) {
    guests[name] = await rig.guest(img);
    await rig.task(guests[name], { do: 'probe', ...probe });
  }
});

test.after.always(async () => {
  await rig?.close();
});

/** Run one request and return what the hypervisor and the model counted for it. */
async function cost(g: Guest, op: 'read' | 'write', sectors: number) {
  const c0 = rig.counters(g.domid);
  const d0 = rig.counters(0);
  const m0 = await rig.modelStats(g);
  const r = await rig.task<{ traps: number }>(g, { do: 'io', op, sector: 64, sectors });
  const c1 = rig.counters(g.domid);
  const d1 = rig.counters(0);
  const m1 = await rig.modelStats(g);
  return {
    traps: c1.traps - c0.traps,
    ioreqs: c1.ioreqs - c0.ioreqs,
    notifications: c1.notifications - c0.notifications,
    driverTraps: r.traps,
    interrupts: m1.ioreq.irqRaises - m0.ioreq.irqRaises,
    foreignMaps: d1.foreign_maps - d0.foreign_maps,
  };
}

const cases: [string, 'read' | 'write', number, number, number][] = [
  // guest, op, sectors, traps, interrupts
  ['pio', 'read', 8, 6 + 257 * 8, 8],      // 4 KiB: 2048 data traps + 14
  ['pio', 'write', 8, 7 + 257 * 8, 8],
  ['pio', 'read', 128, 6 + 257 * 128, 128], // 64 KiB: 32,768 data traps + 134
  ['pio', 'write', 128, 7 + 257 * 128, 128],
  ['pio32', 'read', 8, 6 + 129 * 8, 8],    // 32-bit data accesses: 1024 data traps
  ['pio32', 'write', 8, 7 + 129 * 8, 8],
  ['dma', 'read', 8, 13, 1],
  ['dma', 'write', 8, 13, 1],
  ['dma', 'read', 128, 13, 1],
  ['dma', 'write', 128, 13, 1],
  ['dma', 'read', 1, 13, 1],
  ['dma48', 'read', 128, 17, 1],
  ['dma', 'read', 512, 17, 1],             // 256 KiB: more than 256 sectors, so one 48-bit command
  ['dma', 'read', 2056, 17 + 13, 2],       // past one descriptor page's worth (1 MiB): split in two
];

for (const [name, op, sectors, traps, interrupts] of cases) {
  test.serial(`${name} ${op} of ${sectors * 512} bytes: exactly ${traps} traps, ${traps} ioreqs, ${interrupts} interrupt(s)`, async (t) => {
    const c = await cost(guests[name], op, sectors);
    t.is(c.traps, traps, 'hypervisor trap counter');
    t.is(c.driverTraps, traps, 'the driver counted the same accesses');
    t.is(c.ioreqs, traps, 'each trap was one ioreq to the device model');
    t.is(c.notifications, traps, 'each ioreq was one event to the device model');
    t.is(c.interrupts, interrupts, 'interrupts the model raised');
  });
}

test.serial('flush is 3 traps; a discard of one DATA SET MANAGEMENT command is 19 (13 + Features twice + 4 more address bytes)', async (t) => {
  const g = guests.dma;
  let c0 = rig.counters(g.domid);
  await rig.task(g, { do: 'flush' });
  t.is(rig.counters(g.domid).traps - c0.traps, 3);
  c0 = rig.counters(g.domid);
  await rig.task(g, { do: 'discard', sector: 4000, sectors: 100 });
  t.is(rig.counters(g.domid).traps - c0.traps, 19);
});

test.serial('the mapcache: DMA into pages the model has mapped before needs no new foreign mapping', async (t) => {
  const g = guests.dma;
  await cost(g, 'read', 128); // warm: the buffer's pages are mapped now (the guest reuses them)
  const c = await cost(g, 'read', 128);
  t.is(c.foreignMaps, 0);
  const stats = await rig.modelStats(g);
  t.true(stats.mapcache.hits > stats.mapcache.misses);
  t.is(rig.counters(0).foreign_maps, stats.mapcache.pagesMapped
    + (await rig.modelStats(guests.dma48)).mapcache.pagesMapped + 2 /* ioreq pages of the two DMA guests */
    + 2 /* and of the two PIO guests */, 'Dom0 foreign mappings = pages the mapcaches mapped + one ioreq page per server');
});
