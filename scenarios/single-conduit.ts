/*
 * `npm start -- single-conduit`: the lecture's warning that Dom0 is the single I/O conduit ("if
 * something unexpected happens to it, all of the virtual machines it supports will be affected"),
 * shown, and what confines a failure: backends that fail and come back, and a device whose DMA the
 * IOMMU confines to its owner.
 *
 *   1. Four guests write bursts of 32 requests, every byte checked, all through Dom0's blkback.
 *      Dom0's blkback fails in the middle (every vbd's driver is unbound): all four stall; a new
 *      blkback is bound, each blkfront re-issues what was not answered (blkif_recover). How long
 *      each guest stood still is printed, and that none lost a byte.
 *   2. The remedy: the same four guests split across two storage driver domains (DomUs with
 *      driver_domain=1, each given a storage controller with pci = [...]: domu/driver-domain.ts),
 *      web and db on storage-a, mail and build on storage-b. storage-a crashes in the middle of
 *      their I/O and on_crash = "restart" brings it back under a new domid; the toolstack hands its
 *      disks to the new one (dom0/toolstack/driver-domain.ts). Only web and db pause, for how long
 *      is printed; mail and build never notice; no byte is lost.
 *   3. The second storage controller is passed through to a guest; the guest programs it to DMA
 *      into an address outside its memory (on a machine without an IOMMU, one of Dom0's frames),
 *      and the IOMMU refuses it: counted, logged, nothing transferred, Dom0's frame unchanged.
 */
import { BroadcastChannel } from 'node:worker_threads';
import { closeSync, ftruncateSync, mkdtempSync, openSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomUUID } from 'node:crypto';
import { BlockHost, XVDA, type GuestOutcome } from './block/harness.ts';
import type { BurstJob } from '../domu/workloads/burst.ts';
import { pci_assign, pci_info } from '../hypervisor/passthrough/pci.ts';
import { sc_attach } from '../hypervisor/passthrough/storage-controller.ts';
import { P2M_MFN_MASK, P2M_PRESENT } from '../hypervisor/state.ts';
import { PCI_DEVICES, PCI_STORAGE0, PCI_STORAGE1, PCI_STORAGE2 } from '../shared/public/hw/sc.ts';
import { checksum } from '../shared/checksum.ts';
import type { ScDmaModule, ScDmaReport } from './single-conduit/dma-guest.ts';
import type { ScenarioOptions } from './registry.ts';

const DMA_GUEST = new URL('./single-conduit/dma-guest.ts', import.meta.url).href;
const NAMES = ['web', 'db', 'mail', 'build'];
const JOB: BurstJob = { requests: 32, sectors: 16, start: 0, stride: 16, seed: 1 };

export async function singleConduit(say: (line: string) => void, opts?: ScenarioOptions): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'ringvisor-single-conduit-'));
  const h = await BlockHost.boot(384, opts?.wait);
  const image = (name: string) => {
    const p = join(dir, `${name}.img`);
    const fd = openSync(p, 'w');
    ftruncateSync(fd, 16 << 20);
    closeSync(fd);
    return p;
  };
  const images = NAMES.map(image);
  try {
    say('1. Four guests (web, db, mail, build), each writing 32 requests at once, every byte checked, all');
    say('   through one backend: blkback in Dom0, which drives the host\'s storage controller');
    say(`   (${PCI_DEVICES[PCI_STORAGE0]}, owned by Dom0) by DMA straight into the guests' granted pages.`);
    say('   Dom0\'s blkback fails in the middle of their I/O.');
    const all = await round(h, images, () => true, 1);
    for (const [i, g] of all.entries()) say(`   ${describe(NAMES[i], g)}`);
    say(`   All four stood still: one conduit, one failure, every guest behind it (the lecture's point).`);

    say('');
    say('2. The remedy: storage driver domains. Two DomUs with driver_domain=1, each given a storage controller');
    say(`   (pci = [ '${PCI_DEVICES[PCI_STORAGE1].slice(5)}' ] and [ '${PCI_DEVICES[PCI_STORAGE2].slice(5)}' ]), run blkback; Dom0 stays the toolstack and no request`);
    say('   passes through it. web and db are served by storage-a, mail and build by storage-b.');
    say('   storage-a crashes in the middle of their I/O; on_crash = "restart".');
    const a = await h.startDriverDomain('storage-a', PCI_STORAGE1, 'restart');
    const b = await h.startDriverDomain('storage-b', PCI_STORAGE2);
    const restarted = new Promise<number>((resolve) => {
      const on = (e: { domid: number; name: string }) => {
        if (e.name !== 'storage-a' || e.domid === a) return;
        h.host.off('created', on);
        resolve(e.domid);
      };
      h.host.on('created', on);
    });
    const split = await ddRound(h, images, (i) => (i < 2 ? a : b), 2);
    const again = await restarted;
    for (const [i, g] of split.entries()) say(`   ${describe(NAMES[i], g)}`);
    say('   (their pause is the crash, a new storage-a booted and given the controller again, and the reconnection)');
    const paused = NAMES.filter((_, i) => split[i].tasks[0].stats.recoveries > 0);
    const confined = paused.every((n) => n === 'web' || n === 'db');
    say(`   storage-a came back as d${again} and took over its disks; ${paused.includes('mail') || paused.includes('build') ? 'storage-b\'s guests NOTICED' : 'mail and build, on storage-b, never noticed'}.`);
    say(confined
      ? `   Only storage-a's guests paused (${paused.join(', ')}): a failure is confined to the driver domain it happened in.`
      : `   NOT CONFINED: ${paused.join(', ')} paused.`);
    await h.call({ kind: 'destroy', domid: again });
    await h.call({ kind: 'destroy', domid: b });
    say(`   (both driver domains destroyed: ${PCI_DEVICES[PCI_STORAGE1]} and ${PCI_DEVICES[PCI_STORAGE2]} are Dom0's again)`);

    say('');
    say(`3. The second storage controller (${PCI_DEVICES[PCI_STORAGE1]}) is assigned to a guest (what xl.cfg's pci = [...]`);
    say('   asks for: XEN_DOMCTL_assign_device).');
    await passthrough(h, image('pt'), say);
  } finally {
    await h.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Four guests' bursts at once; those `dies(i)` picks have their backend armed to crash after 6 requests on a ring. */
async function round(h: BlockHost, images: string[], dies: (i: number) => boolean, seed: number): Promise<GuestOutcome[]> {
  return Promise.all(images.map((image, i) => {
    let domid = -1;
    return h.runGuest({
      image, memoryMiB: 32,
      tasks: [{ kind: 'burst', job: { ...JOB, seed: seed * 100 + i * 7 } }],
      onRunning: (d) => { domid = d; },
      beforeWarmup: async () => {
        if (dies(i)) await h.call({ kind: 'block-backend-kill', domid, devid: XVDA, opts: { afterRequests: 6 } });
      },
    });
  }));
}

/**
 * The four guests' bursts, each disk served by the driver domain `backend(i)`, all starting
 * together; the first driver domain's disks carry the fault injection that makes it panic once a
 * ring has taken 6 requests (backends/blkback/xenbus.ts), so it dies with requests in flight.
 */
async function ddRound(h: BlockHost, images: string[], backend: (i: number) => number, seed: number): Promise<GuestOutcome[]> {
  let arrived = 0;
  let go!: () => void;
  const together = new Promise<void>((resolve) => { go = resolve; });
  const first = backend(0);
  return Promise.all(images.map((image, i) => h.runGuest({
    image, memoryMiB: 32, backend: backend(i),
    disk: backend(i) === first ? { crashBackendDomainAfter: 6 } : {},
    tasks: [{ kind: 'burst', job: { ...JOB, seed: seed * 100 + i * 7 } }],
    beforeWarmup: async () => {
      if (++arrived === images.length) go();
      await together;
    },
  })));
}

function describe(name: string, g: GuestOutcome): string {
  const t = g.tasks[0];
  if (t.error !== null || t.result?.kind !== 'burst') return `${name}: FAILED: ${t.error}`;
  const r = t.result.result;
  const once = r.answers.every((n) => n === 1);
  const intact = r.errors.length === 0 && r.mismatches.length === 0;
  const s = t.stats;
  const data = `${r.requests} requests, ${once ? 'each answered once' : 'NOT each answered once'}, ${intact ? 'no byte lost' : `${r.mismatches.length} ranges wrong`}`;
  if (s.recoveries === 0) return `${name}: ${data}; never noticed anything`;
  return `${name}: ${data}; stood still ${s.stallMs.toFixed(1)} ms (${s.reissued} re-issued; ${s.recoveryMs.toFixed(1)} ms after the new backend's InitWait)`;
}

async function passthrough(h: BlockHost, img: string, say: (line: string) => void): Promise<void> {
  const hv = h.host.hv;
  // A frame of Dom0's, numbered beyond the guest's memory: where a device that saw machine
  // addresses would write if the guest named that number.
  let victim = -1;
  for (let gfn = 4000; gfn > 0 && victim < 0; gfn--) {
    const e = hv.p2m[gfn] >>> 0;
    if ((e & P2M_PRESENT) !== 0 && (e & P2M_MFN_MASK) > 4096) victim = e & P2M_MFN_MASK;
  }
  const frame = hv.mem8.subarray(victim * 4096, (victim + 1) * 4096);
  const before = checksum(frame);
  const ch = new BroadcastChannel(`ringvisor-single-conduit-${randomUUID()}`);
  const report = new Promise<ScDmaReport>((resolve) => { ch.onmessage = (ev) => resolve((ev as { data: ScDmaReport }).data); });
  try {
    const nsid = sc_attach(hv, PCI_STORAGE1, img, false);
    const module: ScDmaModule = { channel: ch.name, dev: PCI_STORAGE1, nsid, outside: victim, otherDev: PCI_STORAGE0 };
    const domid = (await h.call({ kind: 'create', config: { name: 'passthrough', vcpus: 1, memoryKiB: 8192, kernel: DMA_GUEST, module, paused: true } })) as number;
    pci_assign(hv, PCI_STORAGE1, domid);
    say(`   The IOMMU now translates its DMA through d${domid}'s P2M: it reaches d${domid}'s frames and no others.`);
    const logged = new Promise<string>((resolve) => h.host.once('xen-log', (e: { text: string }) => resolve(e.text)));
    h.host.unpause(domid);
    const r = await report;
    say(`   d${domid} writes a page to its disk and reads it back by DMA: ${r.readBack ? 'identical' : 'DIFFERENT'}.`);
    say(`   d${domid} programs a read into address 0x${(victim * 4096).toString(16)}, outside its memory (on a machine without`);
    say(`   an IOMMU, that is one of Dom0's frames): "${r.faultError}".`);
    say(`   The hypervisor's log: ${await logged}`);
    const info = pci_info(hv)[PCI_STORAGE1];
    say(`   IOMMU faults on ${info.bdf}: ${info.faults}; Dom0's frame ${checksum(frame) === before ? 'is unchanged' : 'CHANGED'}.`);
    say(`   Its doorbell on the controller it was not given: "${r.notOurs}".`);
    await h.call({ kind: 'forget', domid });
    say(`   d${domid} gone: ${info.bdf} belongs to d${pci_info(hv)[PCI_STORAGE1].owner} again.`);
  } finally {
    ch.close();
  }
}
