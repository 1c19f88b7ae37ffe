// Hardware the hypervisor assigns (issue 16, item 1): a storage controller passed through to a
// guest does DMA into that guest's frames and nowhere else. Programmed to DMA to an address
// outside its domain, it is refused by the IOMMU: the fault is counted and logged, nothing is
// transferred, and the frame that address would name on a machine without an IOMMU (here one of
// Dom0's) is unchanged. The controller goes back to Dom0 when its owner dies.
import test from 'ava';
import { closeSync, ftruncateSync, openSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomUUID } from 'node:crypto';
import { Host } from '../hypervisor/host.ts';
import { pci_assign, pci_info } from '../hypervisor/passthrough/pci.ts';
import { sc_attach, sc_namespaces } from '../hypervisor/passthrough/storage-controller.ts';
import { MAX_GUEST_PAGES, P2M_MFN_MASK, P2M_PRESENT } from '../hypervisor/state.ts';
import { PCI_STORAGE0, PCI_STORAGE1 } from '../shared/public/hw/sc.ts';
import { checksum } from '../shared/checksum.ts';
import { openInbox } from './helpers/channel.ts';
import type { ScDmaModule, ScDmaReport } from '../scenarios/single-conduit/dma-guest.ts';

const IDLE = new URL('./kernels/probe.ts', import.meta.url).href;
const GUEST = new URL('../scenarios/single-conduit/dma-guest.ts', import.meta.url).href;

test('a passed-through controller DMAs into its owner\'s frames only; outside them the IOMMU refuses, counts and logs', async (t) => {
  const logs: string[] = [];
  const host = new Host({ memoryMiB: 32, log: (l) => logs.push(l) });
  const inbox = openInbox<ScDmaReport>();
  const img = join(tmpdir(), `ringvisor-iommu-${randomUUID()}.img`);
  const fd = openSync(img, 'w');
  ftruncateSync(fd, 1 << 20);
  closeSync(fd);
  try {
    await host.createDomain({ name: 'Domain-0', vcpus: 1, memoryKiB: 4096, kernel: IDLE, module: { action: 'idle' } }, { privileged: true });
    // A frame of Dom0's whose number lies beyond the guest's memory: the address a guest would
    // use to reach it on a machine whose devices see machine addresses.
    const hv = host.hv;
    let victim = -1;
    for (let gfn = 900; gfn > 0 && victim < 0; gfn--) {
      const e = hv.p2m[gfn] >>> 0;
      if ((e & P2M_PRESENT) !== 0 && (e & P2M_MFN_MASK) > 1024) victim = e & P2M_MFN_MASK;
    }
    t.true(victim > 0, 'found a frame of Dom0 above the guest\'s memory');
    const frame = hv.mem8.subarray(victim * 4096, victim * 4096 + 4096);
    frame.fill(0x5a);
    const before = checksum(frame);
    const nsid = sc_attach(hv, PCI_STORAGE1, img, false);
    const mod: ScDmaModule = { channel: inbox.name, dev: PCI_STORAGE1, nsid, outside: victim, otherDev: PCI_STORAGE0 };
    const domid = await host.createDomain({ name: 'pt-guest', vcpus: 1, memoryKiB: 2048, kernel: GUEST, module: mod, paused: true });
    t.is(hv.p2m[domid * MAX_GUEST_PAGES + victim] >>> 0, 0, 'the address is outside the guest');
    pci_assign(hv, PCI_STORAGE1, domid);
    host.unpause(domid);
    // A guest that crashes instead of reporting fails the test with its reason, rather than hanging it.
    const crashed = new Promise<never>((_, reject) => host.on('shutdown', (e: { reason: string; detail: string }) => {
      if (e.reason === 'crash') reject(new Error(e.detail));
    }));
    const r = await Promise.race([inbox.next('report'), crashed]);
    t.is(r.sectors, 2048);
    t.true(r.readBack, 'DMA to and from its own frames works');
    t.is(checksum(new Uint8Array(readFileSync(img).subarray(8 * 512, 16 * 512))), r.wroteSum, 'and reached the disk');
    t.regex(r.faultError, /IOMMU fault/);
    t.is(checksum(frame), before, 'Dom0\'s frame did not change');
    const info = pci_info(hv)[PCI_STORAGE1];
    t.is(info.faults, 1);
    t.deepEqual(info.lastFault, { domid, gfn: victim });
    // The log line travels from the guest's vCPU thread to the control thread by message, the report
    // to this test by another channel: let the line arrive (a bounded number of turns).
    const dmar = (l: string) => /\(XEN\) \[VT-D\] DMAR: .*fault from device 0000:00:1f\.1 \(owner d\d+\)/.test(l);
    for (let i = 0; i < 500 && !logs.some(dmar); i++) await new Promise((res) => setTimeout(res, 10));
    t.true(logs.some(dmar), logs.join('\n'));
    t.regex(r.notOurs, /not assigned to this domain/, 'the controller it was not given does not answer it');
    t.is(pci_info(hv)[PCI_STORAGE0].owner, 0);
    await host.destroy(domid);
    t.is(pci_info(hv)[PCI_STORAGE1].owner, 0, 'the device went back to Dom0 when its owner died');
  } finally {
    inbox.close();
    await host.close();
    t.is(sc_namespaces(host.hv), 0, 'host shutdown closed every namespace');
    rmSync(img, { force: true });
  }
});
