// Storage driver domains (issue 16, item 2): a DomU with driver_domain=1 and a storage
// controller passed through runs blkback; a guest's disk served by it passes the same checks as
// one served by Dom0, and the data path never involves Dom0. What the IOMMU lets the driver
// domain's controller reach, and what is left once it and its guests are gone.
import test from 'ava';
import { readFileSync } from 'node:fs';
import { BlockHost, type GuestOutcome } from '../scenarios/block/harness.ts';
import type { VerifyJob, VerifyResult } from '../domu/workloads/verify.ts';
import type { BurstJob, BurstResult } from '../domu/workloads/burst.ts';
import { sc_namespaces } from '../hypervisor/passthrough/storage-controller.ts';
import { checksum } from '../shared/checksum.ts';
import { PCI_STORAGE1 } from '../shared/public/hw/sc.ts';
import { iommu_translate, pci_info } from '../hypervisor/passthrough/pci.ts';
import { MAX_GUEST_PAGES, P2M_MFN_MASK, P2M_PRESENT } from '../hypervisor/state.ts';
import { scratchImages } from './helpers/scratch-images.ts';

const MIB = 1 << 20;
let host: BlockHost;
const { image, fileSums } = scratchImages(test, 'ringvisor-dd-');

function verifyOf(g: GuestOutcome, i = 0): VerifyResult {
  const t = g.tasks[i];
  if (t.error !== null || t.result?.kind !== 'verify') throw new Error(`verify failed: ${t.error}`);
  return t.result.result;
}

/** The machine frames behind a domain's present P2M entries, by gfn. */
function p2m(domid: number): Map<number, number> {
  const hv = host.host.hv;
  const out = new Map<number, number>();
  for (let gfn = 0; gfn < MAX_GUEST_PAGES; gfn++) {
    const e = hv.p2m[domid * MAX_GUEST_PAGES + gfn] >>> 0;
    if ((e & P2M_PRESENT) !== 0) out.set(gfn, e & P2M_MFN_MASK);
  }
  return out;
}

test.before(async () => {
  host = await BlockHost.boot(384);
});

test.after.always(async () => {
  await host?.close();
});

const JOB: VerifyJob = { ops: 800, depth: 16, minBytes: 512, maxBytes: 256 * 1024, size: 8 * MIB, seed: 5 };

test.serial('a disk served by a storage driver domain: the same data as through Dom0, and Dom0 maps nothing', async (t) => {
  const before = host.usage();
  const dd = await host.startDriverDomain('storage-dd', PCI_STORAGE1);
  t.is(pci_info(host.host.hv)[PCI_STORAGE1].owner, dd, 'the controller is the driver domain\'s');
  const viaDom0 = image(16);
  const viaDd = image(16);
  const a = await host.runGuest({ image: viaDom0, tasks: [{ kind: 'verify', job: JOB }] });
  const dmaBefore = pci_info(host.host.hv)[PCI_STORAGE1].dmaOps;
  // While the guest's disk is connected: what the driver domain's controller can reach.
  let confined: { reachable: number; viaGrant: number; frontFrames: number; refused: number } | null = null;
  const b = await host.runGuest({
    image: viaDd, backend: dd,
    tasks: [{ kind: 'fio', job: { rw: 'randwrite', bs: 4096, iodepth: 8, ios: 64, warmup: 8, size: MIB, seed: 1 } }, { kind: 'verify', job: JOB }],
    beforeTimed: async () => {
      // The guest's disk is connected: which of the frontend's frames can the driver domain's
      // controller reach? Only through bus addresses of the driver domain, translated by the
      // IOMMU through its P2M: its RAM (gfns below its 32 MiB) or the holes above, where blkback
      // mapped the pages the frontend granted.
      const hv = host.host.hv;
      const fe = host.host.list().find((d) => d.name.startsWith('blk-'))!.domid;
      const front = new Set(p2m(fe).values());
      let reachable = 0;
      let viaGrant = 0;
      for (const [gfn] of p2m(dd)) {
        const mfn = iommu_translate(hv, PCI_STORAGE1, dd, gfn, false);
        if (!front.has(mfn)) continue;
        reachable++;
        if (gfn >= (32 * MIB) / 4096) viaGrant++;
      }
      const faultsBefore = pci_info(hv)[PCI_STORAGE1].faults;
      const mine = p2m(dd);
      let unmapped = 0;
      while (mine.has(unmapped)) unmapped++;
      const refused = iommu_translate(hv, PCI_STORAGE1, dd, unmapped, true) < 0 && pci_info(hv)[PCI_STORAGE1].faults === faultsBefore + 1 ? 1 : 0;
      confined = { reachable, viaGrant, frontFrames: front.size, refused };
    },
  });
  t.deepEqual(verifyOf(a).errors, []);
  t.deepEqual(verifyOf(b, 1).errors, []);
  t.deepEqual(verifyOf(b, 1).chunkSums, fileSums(viaDd, JOB.size), 'the image file holds exactly what the guest wrote through the driver domain');
  t.deepEqual(verifyOf(b, 1).chunkSums, verifyOf(a).chunkSums, 'the same data as the same job through Dom0');
  t.is(b.tasks[0].error, null);
  t.true(pci_info(host.host.hv)[PCI_STORAGE1].dmaOps > dmaBefore, 'the driver domain drove its controller');
  for (const i of [0, 1]) {
    t.is(b.tasks[i].counters.dom0.grant_maps, 0, 'Dom0 mapped no grant: the data path does not touch it');
  }
  t.true(b.tasks[0].counters.backend.grant_maps + b.tasks[1].counters.backend.grant_maps > 0, 'the driver domain mapped the frontend\'s grants');
  const c = confined as unknown as { reachable: number; viaGrant: number; frontFrames: number; refused: number };
  t.true(c.reachable > 0, `the controller reaches the frontend's granted pages (${c.reachable} of its ${c.frontFrames} frames)`);
  t.is(c.viaGrant, c.reachable, 'every frontend frame it reaches is one blkback mapped by grant, none through the driver domain\'s RAM');
  t.true(c.reachable < c.frontFrames / 4, 'and not the rest of the frontend\'s memory');
  t.is(c.refused, 1, 'an address outside its P2M is an IOMMU fault, counted');
  await host.call({ kind: 'destroy', domid: dd });
  t.deepEqual(host.usage(), before, 'the driver domain and its guests left nothing behind');
});

function burstOf(g: GuestOutcome): BurstResult {
  const t = g.tasks[0];
  if (t.error !== null || t.result?.kind !== 'burst') throw new Error(`burst failed: ${t.error}`);
  return t.result.result;
}

function onDisk(img: string, job: BurstJob): number[] {
  const data = readFileSync(img);
  const bytes = job.sectors * 512;
  return Array.from({ length: job.requests }, (_, i) => {
    const off = (job.start + i * job.stride) * 512;
    return checksum(new Uint8Array(data.buffer, data.byteOffset + off, bytes));
  });
}

test.serial('a driver domain crashes with 32 writes in flight; on_crash = "restart" brings it back; each request answered once, none lost; a Dom0 guest never notices', async (t) => {
  const before = host.usage();
  const dd = await host.startDriverDomain('storage-dd-r', PCI_STORAGE1, 'restart');
  const img = image(16);
  const job: BurstJob = { requests: 32, sectors: 16, start: 8, stride: 32, seed: 9 };
  const restarted = new Promise<{ domid: number }>((resolve) => {
    const on = (e: { domid: number; name: string }) => {
      if (e.name !== 'storage-dd-r' || e.domid === dd) return;
      host.host.off('created', on);
      resolve(e);
    };
    host.host.on('created', on);
  });
  const [g, bystander] = await Promise.all([
    host.runGuest({ image: img, backend: dd, disk: { crashBackendDomainAfter: 6 }, tasks: [{ kind: 'burst', job }] }),
    host.runGuest({ image: image(16), tasks: [{ kind: 'verify', job: { ...JOB, ops: 400 } }] }),
  ]);
  const r = burstOf(g);
  t.deepEqual(r.answers, new Array(32).fill(1), 'every request answered exactly once');
  t.deepEqual(r.errors, []);
  t.deepEqual(r.mismatches, [], 'every range reads back as written');
  t.deepEqual(onDisk(img, job), r.sums, 'every acknowledged write is in the image file');
  const s = g.tasks[0].stats;
  t.is(s.recoveries, 1, 'the frontend saw its backend die once');
  t.true(s.reissued > 0 && s.reissued < 32, `some answered before the crash, some re-issued after (${s.reissued})`);
  t.log(`${s.reissued} of 32 re-issued; stood still ${s.stallMs.toFixed(1)} ms; first re-issued answered ${s.recoveryMs.toFixed(1)} ms after the new backend's InitWait (loaded machine)`);
  const next = (await restarted).domid;
  t.not(next, dd);
  t.is(pci_info(host.host.hv)[PCI_STORAGE1].owner, next, 'the restarted driver domain has the controller again');
  t.is(bystander.tasks[0].error, null);
  t.is(bystander.tasks[0].stats.recoveries, 0, 'the guest on Dom0\'s backend never noticed');
  await host.call({ kind: 'destroy', domid: next });
  t.deepEqual(host.usage(), before, 'both driver domains and the guests left nothing behind');
});

test.serial('a driver domain destroyed under its guest: the guest waits; once it is gone too, the host is as before', async (t) => {
  const before = host.usage();
  const namespaces = sc_namespaces(host.host.hv);
  const dd = await host.startDriverDomain('storage-dd-d', PCI_STORAGE1);
  let fe = -1;
  let destroyed: Promise<unknown> = Promise.resolve();
  const run = host.runGuest({
    image: image(16), backend: dd, tasks: [{ kind: 'burst', job: { requests: 32, sectors: 8, start: 0, stride: 8, seed: 3 } }],
    onRunning: (d) => { fe = d; },
    beforeWarmup: async () => {
      await host.call({ kind: 'destroy', domid: dd });
      t.is(pci_info(host.host.hv)[PCI_STORAGE1].owner, 0, 'its controller went back to Dom0');
      // The burst starts with no backend: its requests wait in the guest, which is destroyed next.
      destroyed = new Promise((resolve, reject) => setImmediate(() => host.call({ kind: 'destroy', domid: fe }).then(resolve, reject)));
    },
  });
  await t.throwsAsync(run, { message: /is gone/ });
  await destroyed; // the toolstack's cleanup after it, to the end
  t.deepEqual(host.usage(), before, 'no frame, grant, mapping, port or thread is left');
  t.is(sc_namespaces(host.host.hv), namespaces, 'the guest\'s disk was detached from the controller');
});
