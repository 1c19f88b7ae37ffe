// The ioreq path and the device model's privileges, below any particular device: who may call
// dm_op and map foreign frames, MMIO through a second ioreq server, what an access nobody
// claims does to a DomU, and teardown in every order (model first, guest first, guest crashed,
// model gone in the middle of I/O) leaving the host exactly as it was.
import test from 'ava';
import { foreignMappingsHeld } from '../hypervisor/p2m-foreign.ts';
import { ioreqServersOf } from '../hypervisor/ioreq.ts';
import { XEN_EINVAL, XEN_EPERM } from '../shared/public/xen.ts';
import { IdeRig } from './helpers/ide-rig.ts';
import type { WorkloadSpec } from './kernels/ide-workload.ts';
import { until } from '../scenarios/lib/hang.ts';

test.serial('a DomU calling the device-model hypercalls gets EPERM, and nothing is mapped', async (t) => {
  const rig = await IdeRig.start();
  try {
    const g = await rig.guest(rig.image('a.img', 2048, 1));
    const r = await rig.task<Record<string, number>>(g, { do: 'privileged-calls' });
    t.deepEqual(r, {
      foreign: -XEN_EPERM,     // XENMEM_add_to_physmap_batch, XENMAPSPACE_gmfn_foreign (of Dom0!)
      acquire: -XEN_EPERM,     // XENMEM_acquire_resource of an ioreq page
      create: -XEN_EPERM,      // XEN_DMOP_create_ioreq_server
      irq: -XEN_EPERM,         // XEN_DMOP_set_isa_irq_level
      remove: -XEN_EINVAL,     // remove_from_physmap: it has no foreign mapping to remove
      selfTarget: -XEN_EPERM,
      present: 0,
    });
    t.is(foreignMappingsHeld(rig.host.hv, g.domid), 0);
    t.is(rig.counters(g.domid).foreign_maps, 0);
    await rig.destroy(g);
  } finally {
    await rig.close();
  }
});

test.serial('MMIO goes to the ioreq server that claimed it; an address nobody claims is a page fault', async (t) => {
  const rig = await IdeRig.start();
  try {
    const base = 0xfeb0_0000; // above 2^31: addresses travel as unsigned 32-bit values
    const g = await rig.guest(rig.image('a.img', 2048, 1), { mmioEcho: { base, bytes: 4096 } });
    t.is(ioreqServersOf(rig.host.hv, g.domid), 2, 'the IDE model and the echo device each run a server');
    const c0 = rig.counters(g.domid);
    const r = await rig.task<{ word: number; byte: number; fault: string }>(g, { do: 'mmio', base });
    t.is(r.word, (0x12345678 ^ 0xa5a5a5a5) >>> 0, 'the model stored the write and answered the read');
    t.is(r.byte, 0xdd, 'a 1-byte load gets 1 byte');
    t.regex(r.fault, /^page fault: d\d+ read at gpa 0xfeb10000 .*no device claims this MMIO address/);
    const c1 = rig.counters(g.domid);
    t.is(c1.traps - c0.traps, 4);
    t.is(c1.ioreqs - c0.ioreqs, 3, 'the unclaimed access never reached a device model');
    t.is(c1.page_faults - c0.page_faults, 1);
    const before = rig.host.usage();
    await rig.destroy(g);
    t.is(ioreqServersOf(rig.host.hv, g.domid), 0);
    t.true(rig.host.usage().portsBound < before.portsBound);
  } finally {
    await rig.close();
  }
});

test.serial('a port nobody emulates still crashes a DomU that has an emulated disk, and the crash leaks nothing', async (t) => {
  const rig = await IdeRig.start();
  try {
    const base = rig.usage();
    const g = await rig.guest(rig.image('a.img', 2048, 1));
    await rig.task(g, { do: 'probe', mode: 'emu-dma' });
    const detail = await rig.crash(g, { do: 'port', port: 0x80 });
    t.regex(detail, /general protection fault: outb port 0x80 without I\/O privilege/);
    await rig.stopModel(g);
    t.deepEqual(rig.usage(), base);
  } finally {
    await rig.close();
  }
});

const busy: WorkloadSpec = { seed: 7, imageSeed: 1, writes: 400, reads: 400, depth: 4, minSectors: 1, maxSectors: 64 };

test.serial('teardown in every order, and in the middle of I/O, returns every frame, port and mapping', async (t) => {
  const rig = await IdeRig.start();
  try {
    const base = rig.usage();
    const img = rig.image('a.img', 4096, 1);
    for (let i = 0; i < 12; i++) {
      const g = await rig.guest(img);
      await rig.task(g, { do: 'probe', mode: i % 3 === 2 ? 'emu-pio' : 'emu-dma' });
      await rig.task(g, { do: 'io', op: 'write', sector: i * 8, sectors: 64, scatter: i % 2 === 0 });
      await rig.destroy(g, i % 2 === 0 ? 'model-first' : 'guest-first');
      t.is(foreignMappingsHeld(rig.host.hv, 0), 0, `cycle ${i}: Dom0 maps nothing of the guest any more`);
    }
    t.deepEqual(rig.usage(), base, 'after 12 cycles');

    // The guest destroyed while its vCPU waits on ioreqs: its threads still end, the model then stops.
    const g1 = await rig.guest(img);
    await rig.task(g1, { do: 'probe', mode: 'emu-pio' });
    void rig.task(g1, { do: 'workload', spec: busy }).catch(() => undefined);
    await until(() => rig.counters(g1.domid).ioreqs >= 20_000, `20000 ioreqs from d${g1.domid}`, { everyMs: 5, seen: () => [`ioreqs ${rig.counters(g1.domid).ioreqs}`, ...rig.log] });
    await rig.host.destroy(g1.domid);
    await rig.stopModel(g1);
    t.deepEqual(rig.usage(), base, 'guest destroyed mid-I/O');

    // The model stopped under a busy guest: the access in flight is answered with all ones, the
    // next one is claimed by nobody and faults, and the guest crashes; nothing is left behind.
    const g2 = await rig.guest(img);
    await rig.task(g2, { do: 'probe', mode: 'emu-pio' });
    const crashed = rig.crash(g2, { do: 'workload', spec: busy });
    await until(() => rig.counters(g2.domid).ioreqs >= 20_000, `20000 ioreqs from d${g2.domid}`, { everyMs: 5, seen: () => [`ioreqs ${rig.counters(g2.domid).ioreqs}`, ...rig.log] });
    await rig.stopModel(g2);
    t.regex(await crashed, /general protection fault: (in|out)[bwl] port 0x/);
    t.deepEqual(rig.usage(), base, 'model gone mid-I/O');
  } finally {
    await rig.close();
  }
});
