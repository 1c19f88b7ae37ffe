/*
 * The host's network card (issue 16, item 1's NIC): its driver and the device over a real
 * hypervisor state, in this thread, with a UDP socket on 127.0.0.1 as the far end of its wire.
 * Checksummed frames cross both ways through the descriptor rings; a descriptor naming a frame
 * outside the owner's memory is an IOMMU fault, counted, and changes nothing anywhere (the other
 * domain's pages keep their checksums, nothing is sent, the next good frame still goes); the card
 * belongs to its owner only. Then two whole hosts, whose bridges meet through their cards.
 */
import test from 'ava';
import { createSocket, type Socket } from 'node:dgram';
import { evtchn_alloc_unbound, evtchn_close } from '../hypervisor/event-channel.ts';
import { PD, pci_assign, pci_owner, pci_reassign_to_dom0, pciWord } from '../hypervisor/passthrough/pci.ts';
import { PassthroughNic, nic_doorbell } from '../hypervisor/passthrough/nic.ts';
import { NicDriver } from '../shared/kernel/drivers/nic.ts';
import type { Kernel } from '../shared/kernel/kernel.ts';
import { checksum, fillPattern } from '../shared/checksum.ts';
import { NIC_CTRL_WORD, NIC_DESC_BYTES, NIC_DESC_DD, NIC_DESC_ERR_IOMMU, NIC_RING_SIZE, nic_desc } from '../shared/public/hw/nic.ts';
import { PCI_NIC0 } from '../shared/public/hw/sc.ts';
import { PAGE_SIZE, XEN_EPERM, shared_info } from '../shared/public/xen.ts';
import { World, type TestDomain } from './helpers/world.ts';
import { NetHost } from '../scenarios/net/harness.ts';

const PENDING = shared_info.evtchn_pending >> 2;
const tick = () => new Promise<void>((r) => setImmediate(r));

/** Just what NicDriver uses of a kernel, over a World domain; `pump` delivers its one event. */
function kernelOf(w: World, d: TestDomain) {
  let handler: (() => void) | null = null;
  let port = -1;
  const k = {
    pages: d.pages,
    memory: d.mem,
    events: {
      allocUnbound: (_remote: number, h: () => void) => {
        port = evtchn_alloc_unbound(d.c, 0x7ff0, 0x7ff0);
        handler = h;
        return port;
      },
      close: (p: number) => { evtchn_close(d.c, p); },
    },
    hypercall: {
      pci_doorbell: (dev: number, gfn: number) => (pci_owner(w.hv, dev) !== d.domid ? -XEN_EPERM : nic_doorbell(w.hv, dev, gfn)),
    },
  } as unknown as Kernel;
  /** The vCPU's event loop, reduced to this one port: take it if pending, run the handler. */
  const pump = () => {
    const si = w.hv.sharedInfo[d.domid];
    const bit = 1 << (port & 31);
    if ((Atomics.and(si, PENDING + (port >> 5), ~bit) & bit) !== 0) handler?.();
  };
  return { k, pump };
}

async function until(what: string, cond: () => boolean, pump: () => void): Promise<void> {
  for (let i = 0; i < 20000; i++) {
    pump();
    if (cond()) return;
    await tick();
  }
  throw new Error(`gave up waiting for ${what}`);
}

function frame(seed: number, len: number): Buffer {
  const b = Buffer.alloc(len);
  fillPattern(b, seed);
  b.fill(0xff, 0, 6); // a broadcast destination: any bridge would flood it
  return b;
}

async function bound(): Promise<Socket> {
  const s = createSocket('udp4');
  await new Promise<void>((r) => s.bind(0, '127.0.0.1', r));
  return s;
}

test('frames cross the card both ways with their checksums; a DMA outside the owner is an IOMMU fault that changes nothing', async (t) => {
  const w = new World(64);
  const owner = w.domain({ memoryKiB: 4096 });
  const other = w.domain({ memoryKiB: 4096 });
  const log: string[] = [];
  const nic = new PassthroughNic(w.hv, PCI_NIC0, (l) => log.push(l));
  const far = await bound();
  const got: Buffer[] = [];
  far.on('message', (m) => got.push(m));
  try {
    pci_assign(w.hv, PCI_NIC0, owner.domid);
    const { k, pump } = kernelOf(w, owner);
    const drv = new NicDriver(k, PCI_NIC0);
    const rx: { sum: number; len: number }[] = [];
    drv.onFrame = (bytes, len) => rx.push({ sum: checksum(bytes.subarray(0, len)), len });
    const upP = drv.up(0);
    let port = 0;
    void upP.then((p) => { port = p; });
    await until('link up', () => port !== 0, pump);
    t.is(port, nic.wirePort);
    drv.addPeer(far.address().port);

    // Out: sizes from a minimum frame to one spanning three pages.
    const sizes = [60, 1514, 4096, 9000];
    const sent = sizes.map((n, i) => frame(100 + i, n));
    for (const f of sent) t.true(drv.transmit(f, f.length));
    await until('frames on the wire', () => got.length === sent.length, pump);
    t.deepEqual(got.map((g) => checksum(g)), sent.map((f) => checksum(f)), 'each frame arrived whole, in order');

    // In: the far end sends; the frames land in the RX buffers and reach onFrame.
    const incoming = [64, 1500, 7000].map((n, i) => frame(200 + i, n));
    for (const f of incoming) far.send(f, port, '127.0.0.1');
    await until('frames received', () => rx.length === incoming.length, pump);
    t.deepEqual(rx, incoming.map((f) => ({ sum: checksum(f), len: f.length })));

    // A descriptor naming the other domain's frame (not in the owner's IOMMU table).
    const victim = other.pages.alloc();
    other.mem.fill(victim * PAGE_SIZE, PAGE_SIZE, 0x5a);
    const before = checksum(other.mem.page(victim, false));
    const faults0 = Atomics.load(w.hv.pci, pciWord(PCI_NIC0, PD.FAULTS));
    const ctrlGfn = Atomics.load(w.hv.pci, pciWord(PCI_NIC0, PD.ARG));
    const ctrl = owner.mem.pageWords(ctrlGfn, false);
    const rxRing = owner.mem.page(ctrl[NIC_CTRL_WORD.rx_ring], true);
    const rxDv = new DataView(rxRing.buffer, rxRing.byteOffset, PAGE_SIZE);
    const next = Atomics.load(ctrl, NIC_CTRL_WORD.rx_head) % NIC_RING_SIZE;
    const d = next * NIC_DESC_BYTES;
    const goodGfn = rxDv.getUint32(d + nic_desc.fields.gfn[1], true);
    // A bus address the owner's IOMMU table (its P2M) does not map: past its last page. The
    // victim page is in no table of the owner's at all: no address the card is given reaches it.
    rxDv.setUint32(d + nic_desc.fields.gfn[1], victim + 100000, true);
    const rxBefore = rx.length;
    far.send(frame(300, 1000), port, '127.0.0.1');
    await until('the fault', () => Atomics.load(w.hv.pci, pciWord(PCI_NIC0, PD.FAULTS)) > faults0, pump);
    await until('the descriptor back', () => (rxDv.getUint16(d + nic_desc.fields.status[1], true) !== 0 || rx.length > rxBefore || drv.stats.rx_errors > 0), pump);
    t.is(rx.length, rxBefore, 'the frame was not delivered');
    t.is(drv.stats.rx_errors, 1, 'its descriptor came back with ERR_IOMMU');
    t.is(checksum(other.mem.page(victim, false)), before, 'nobody else\'s memory changed');
    t.true(log.some((l) => l.includes('DMAR') && l.includes('fault')), log.join('\n'));
    rxDv.setUint32(d + nic_desc.fields.gfn[1], goodGfn, true);

    // The same on transmit: a frame whose buffer is outside the owner is not sent; the next one is.
    const txRing = owner.mem.page(ctrl[NIC_CTRL_WORD.tx_ring], true);
    const txDv = new DataView(txRing.buffer, txRing.byteOffset, PAGE_SIZE);
    const tn = (Atomics.load(ctrl, NIC_CTRL_WORD.tx_tail) % NIC_RING_SIZE) * NIC_DESC_BYTES;
    const txGood = txDv.getUint32(tn + nic_desc.fields.gfn[1], true);
    txDv.setUint32(tn + nic_desc.fields.gfn[1], victim + 100000, true);
    const faults1 = Atomics.load(w.hv.pci, pciWord(PCI_NIC0, PD.FAULTS));
    const gotBefore = got.length;
    // transmit() fills the buffer's page, not the descriptor's gfn field: the bad address stays.
    const bad = frame(400, 800);
    t.true(drv.transmit(bad, bad.length));
    const after = frame(401, 900);
    t.true(drv.transmit(after, after.length));
    await until('the next frame', () => got.length > gotBefore, pump);
    t.is(Atomics.load(w.hv.pci, pciWord(PCI_NIC0, PD.FAULTS)), faults1 + 1, 'one more IOMMU fault');
    t.is(got.length, gotBefore + 1);
    t.is(checksum(got[got.length - 1]), checksum(after), 'only the good frame went out');
    t.is(txDv.getUint16(tn + nic_desc.fields.status[1], true) & (NIC_DESC_DD | NIC_DESC_ERR_IOMMU), NIC_DESC_DD | NIC_DESC_ERR_IOMMU);
    txDv.setUint32(tn + nic_desc.fields.gfn[1], txGood, true);
    t.is(checksum(other.mem.page(victim, false)), before);

    // Only the owner rings the card.
    const { k: k2 } = kernelOf(w, other);
    t.throws(() => new NicDriver(k2, PCI_NIC0).up(0), { message: /not assigned to this domain/ });

    // The owner dies: the card goes back to Dom0 and no longer writes the old owner's rings.
    t.deepEqual(pci_reassign_to_dom0(w.hv, owner.domid), [PCI_NIC0]);
    const received = drv.deviceCounters().rx_received;
    const dropped = nic.stats.rx_dropped;
    far.send(frame(500, 700), port, '127.0.0.1');
    await until('the frame dropped', () => nic.stats.rx_dropped > dropped, pump);
    t.is(drv.deviceCounters().rx_received, received, 'nothing more was written into the old owner\'s memory');
    t.is(rx.length, rxBefore);
    // Its driver's next doorbell is refused: no exception in the old owner, frames are dropped.
    const gotNow = got.length;
    const late = frame(600, 600);
    t.true(drv.transmit(late, late.length), 'queued before the refused doorbell');
    await tick();
    t.false(drv.transmit(late, late.length));
    t.is(drv.stats.tx_lost, 1);
    await tick();
    t.is(got.length, gotNow, 'nothing went out');
    drv.close();
  } finally {
    nic.close();
    far.close();
  }
});

test('two hosts: their bridges meet through their network cards (each uplink\'s port is its card\'s wire)', async (t) => {
  const bridges = [{ name: 'xenbr0', uplink: { port: 0 } }];
  const [h1, h2] = await Promise.all([NetHost.boot({ bridges, memoryMiB: 128 }), NetHost.boot({ bridges, memoryMiB: 128 })]);
  try {
    const [p1, p2] = await Promise.all([h1.uplinkPort('xenbr0'), h2.uplinkPort('xenbr0')]);
    t.is(p1, h1.host.nic.wirePort, 'the uplink\'s port is the card\'s wire');
    t.is(p2, h2.host.nic.wirePort);
    await h1.addUplinkPeer('xenbr0', `127.0.0.1:${p2}`);
    const A = { mac: '00:16:3e:00:05:0a', ip: '10.0.5.10' };
    const B = { mac: '00:16:3e:00:05:0b', ip: '10.0.5.11' };
    const b = await h2.start({ vif: B, tasks: [{ kind: 'stream-recv', port: 41002 }] });
    const a = await h1.start({
      vif: A, tasks: [{ kind: 'ping', target: B.ip, count: 3 }, { kind: 'barrier', name: 'go' }, { kind: 'stream-send', target: B.ip, port: 41002, size: 1200, count: 200 }],
    });
    await b.note('listen:41002');
    await a.go('go');
    const [ao, bo] = await Promise.all([a.outcome, b.outcome]);
    const ping = ao.tasks[0].result;
    t.true(ping?.kind === 'ping' && ping.result.received === 3, JSON.stringify(ao.tasks[0]));
    const r = bo.tasks[0].result;
    t.true(r?.kind === 'stream' && r.result.bad === 0 && r.result.received + r.result.lost === 200 && r.result.received > 0, JSON.stringify(r));
    for (const h of [h1, h2]) {
      t.true(h.host.nic.stats.tx_frames > 0 && h.host.nic.stats.rx_frames > 0, JSON.stringify(h.host.nic.stats));
      t.is(h.host.nic.stats.iommu_faults, 0);
    }
    t.log(`card 1 ${JSON.stringify(h1.host.nic.stats)}; card 2 ${JSON.stringify(h2.host.nic.stats)}`);
  } finally {
    await Promise.all([h1.close(), h2.close()]);
  }
});
