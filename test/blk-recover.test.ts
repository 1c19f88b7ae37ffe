// A backend that dies mid-I/O and one that takes its place (issue 16, item 3): blkback killed with
// 32 writes in flight, a new one bound; blkfront re-issues what was not answered (blkif_recover).
// Every request is answered once, every acknowledged write is in the image file, the bystander
// guest on another backend sees nothing, and nothing the dead backend held is left behind.
import test from 'ava';
import { readFileSync } from 'node:fs';
import { BlockHost, XVDA, type DiskSwitches, type GuestOutcome } from '../scenarios/block/harness.ts';
import type { BurstJob, BurstResult } from '../domu/workloads/burst.ts';
import { checksum } from '../shared/checksum.ts';
import { scratchImages } from './helpers/scratch-images.ts';

const MIB = 1 << 20;
let host: BlockHost;
const { image } = scratchImages(test, 'ringvisor-recover-');

test.before(async () => {
  host = await BlockHost.boot(384);
});

test.after.always(async () => {
  await host?.close();
});

function burstOf(g: GuestOutcome): BurstResult {
  const t = g.tasks[0];
  if (t.error !== null || t.result?.kind !== 'burst') throw new Error(`burst failed: ${t.error}`);
  return t.result.result;
}

/** One guest's 32-write burst, its backend armed to die after `after` requests on a ring. */
async function burstThroughCrash(disk: DiskSwitches, job: BurstJob, after: number) {
  const img = image(16);
  let domid = -1;
  const g = await host.runGuest({
    image: img, disk,
    tasks: [{ kind: 'burst', job }],
    onRunning: (d) => { domid = d; },
    beforeWarmup: async () => {
      await host.call({ kind: 'block-backend-kill', domid, devid: XVDA, opts: { afterRequests: after } });
    },
  });
  return { g, img, r: burstOf(g) };
}

function onDisk(img: string, job: BurstJob): number[] {
  const data = readFileSync(img);
  const bytes = job.sectors * 512;
  return Array.from({ length: job.requests }, (_, i) => {
    const off = (job.start + i * job.stride) * 512;
    return checksum(new Uint8Array(data.buffer, data.byteOffset + off, bytes));
  });
}

for (const [name, disk, sectors] of [
  ['4 queues, persistent grants, indirect', {}, 32],
  ['1 queue, transient grants, no indirect', { persistent: false, maxQueues: 1, maxIndirectSegments: 0 }, 64],
] as [string, DiskSwitches, number][]) {
  test.serial(`blkback killed with 32 writes in flight (${name}): each answered once, none lost, a bystander never notices`, async (t) => {
    const before = host.usage();
    const job: BurstJob = { requests: 32, sectors, start: 8, stride: 2 * sectors, seed: 7 };
    const bystanderImg = image(16);
    const [{ g, img, r }, bystander] = await Promise.all([
      burstThroughCrash(disk, job, 6),
      host.runGuest({ image: bystanderImg, tasks: [{ kind: 'verify', job: { ops: 600, depth: 16, minBytes: 512, maxBytes: 64 * 1024, size: 4 * MIB, seed: 3 } }] }),
    ]);
    t.deepEqual(r.answers, new Array(32).fill(1), 'every request answered exactly once');
    t.deepEqual(r.errors, []);
    t.deepEqual(r.mismatches, [], 'every range reads back as written');
    t.deepEqual(onDisk(img, job), r.sums, 'every acknowledged write is in the image file');
    const s = g.tasks[0].stats;
    t.is(s.recoveries, 1, 'the frontend saw its backend die once');
    t.true(s.reissued > 0 && s.reissued < 32, `some requests were answered before the crash and some re-issued after (${s.reissued})`);
    t.log(`${s.reissued} of 32 re-issued; first re-issued answered ${s.recoveryMs.toFixed(1)} ms after the new backend's InitWait (loaded machine)`);
    const v = bystander.tasks[0];
    t.is(v.error, null);
    t.deepEqual(v.result?.kind === 'verify' ? v.result.result.errors : ['no result'], []);
    t.is(v.stats.recoveries, 0, 'the bystander\'s disk never went away');
    t.deepEqual(host.usage(), before, 'the dead backend left nothing mapped, bound or allocated');
  });
}

test.serial('a kill with no restart leaves the guest waiting; a restart later answers what waited', async (t) => {
  const img = image(16);
  let domid = -1;
  const job: BurstJob = { requests: 32, sectors: 8, start: 0, stride: 8, seed: 21 };
  const g = await host.runGuest({
    image: img,
    tasks: [{ kind: 'burst', job }],
    onRunning: (d) => { domid = d; },
    beforeWarmup: async () => {
      // Dead before the burst: every request queues in the guest until a backend comes back.
      const k = await host.call({ kind: 'block-backend-kill', domid, devid: XVDA, opts: { restart: false } }) as { killed: boolean; restarted: boolean };
      t.deepEqual([k.killed, k.restarted], [true, false]);
      setTimeout(() => {
        void host.call({ kind: 'block-backend-start', domid, devid: XVDA });
      }, 0);
    },
  });
  const r = burstOf(g);
  t.deepEqual(r.answers, new Array(32).fill(1));
  t.deepEqual(r.mismatches, []);
  t.deepEqual(onDisk(img, job), r.sums);
});
