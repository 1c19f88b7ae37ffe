/*
 * blkfront's persistent grants are bounded per ring (xen-blkfront.c's per-ring grant list): the
 * pool on its own over a real grant table and real mappings (a grant the backend did not keep is
 * ended at completion, one it kept is reused, one it let go later is reclaimed, one it maps is
 * never ended, exhaustion is -1); then a guest whose random I/O
 * moves over far more pages than its grant table holds, every byte checked, with the grants it
 * issues (counted by the hypervisor in its own copy of the table) bounded all the way through;
 * then the same with a pool too small for the backend ever to purge, so segments go through
 * bounce pages, again every byte checked.
 */
import test from 'ava';
import { gnttab_map_grant_ref, gnttab_unmap_grant_ref, grantsIssued } from '../hypervisor/grant-table.ts';
import { NR_GRANT_ENTRIES } from '../hypervisor/state.ts';
import { GrantPool } from '../domu/blkfront/grant-pool.ts';
import type { VerifyJob, VerifyResult } from '../domu/workloads/verify.ts';
import type { BlkfrontOptions } from '../domu/blkfront/blkfront.ts';
import { BlockHost, type GuestOutcome } from '../scenarios/block/harness.ts';
import { GNTMAP_host_map, GNTST_okay } from '../shared/public/grant_table.ts';
import { BLKIF_MAX_SEGMENTS_PER_REQUEST, BLKIF_SEGMENTS_PER_INDIRECT_FRAME } from '../shared/public/io/blkif.ts';
import { World } from './helpers/world.ts';
import { scratchImages } from './helpers/scratch-images.ts';

const MIB = 1 << 20;

test('the pool ends what the backend did not keep, reuses what it kept, reclaims what it let go, and never ends one it maps', (t) => {
  const w = new World();
  const back = w.domain({ privileged: true });
  const front = w.domain();
  const builder = grantsIssued(w.hv, front.domid); // the reserved console and xenstore entries
  const pool = new GrantPool(front.gnttab, back.domid, 4);
  const [a, b, c, d, e, f] = Array.from({ length: 6 }, () => front.pages.alloc());
  const handles = new Map<number, { handle: number; hole: number }>();
  const map = (entry: number) => {
    const hole = back.pages.allocHole();
    const op = { host_addr: hole, flags: GNTMAP_host_map, ref: pool.refOf(entry), dom: front.domid, status: 99, handle: -1 };
    gnttab_map_grant_ref(back.c, op);
    t.is(op.status, GNTST_okay);
    handles.set(entry, { handle: op.handle, hole });
  };
  const unmap = (entry: number) => {
    const { handle, hole } = handles.get(entry)!;
    const op = { host_addr: hole, handle, status: 99 };
    gnttab_unmap_grant_ref(back.c, op);
    t.is(op.status, GNTST_okay);
  };
  const issued = () => grantsIssued(w.hv, front.domid) - builder;
  const ea = pool.get(a), eb = pool.get(b), ec = pool.get(c), ed = pool.get(d);
  t.is(pool.granted, 4);
  t.is(issued(), 4, 'the hypervisor sees the pool\'s grants');
  // The backend keeps a, b and c mapped (persistent); d it mapped for the request only.
  for (const x of [ea, eb, ec]) map(x);
  for (const x of [ea, eb, ec, ed]) pool.put(x);
  t.is(pool.stats.ended, 1, 'd\'s grant ended when its request was answered (blkif_completion)');
  t.false(pool.holds(d));
  t.is(pool.granted, 3);
  t.is(issued(), 3);
  const refA = pool.refOf(ea);
  t.is(pool.get(a), ea, 'a page seen again finds the grant the backend kept');
  t.is(pool.refOf(ea), refA);
  pool.put(ea); // idle, most recent: the LRU order is b, c, a
  t.is(pool.stats.hits, 1);
  const ee = pool.get(e); // a free slot (d's)
  t.is(pool.granted, 4);
  t.is(pool.get(f), -1, 'full of grants in use or mapped: the caller bounces or waits');
  t.is(pool.stats.stillMapped, 3, 'b, c and a were looked at and left alone');
  t.is(pool.stats.exhausted, 1);
  t.true(pool.holds(a) && pool.holds(b) && pool.holds(c), 'a grant the backend maps is never ended');
  unmap(eb); // the backend's purge let b go
  const ef = pool.get(f);
  t.is(ef, eb, 'the oldest grant the backend let go is reclaimed for f');
  t.is(pool.stats.reclaimed, 1);
  t.false(pool.holds(b));
  t.is(issued(), 4);
  pool.put(ee);
  pool.put(ef);
  t.is(pool.stats.ended, 3, 'e and f were not kept by the backend: ended when answered');
  t.is(issued(), 2);
  pool.endAll();
  t.is(front.gnttab.deferredCount, 2, 'a and c are still mapped: their ends wait on the deferred list');
  t.is(issued(), 2);
  unmap(ea);
  unmap(ec);
  front.gnttab.retryDeferred();
  t.is(issued(), 0);
});

let host: BlockHost;
const { image, fileSums } = scratchImages(test, 'ringvisor-fgnt-');

test.before(async () => {
  host = await BlockHost.boot(384);
});

test.after.always(async () => {
  await host?.close();
});

/** One guest's verify job, sampling the grants it has issued (the hypervisor's count) as it runs. */
async function run(job: VerifyJob, front?: BlkfrontOptions): Promise<{ g: GuestOutcome; v: VerifyResult; maxIssued: number; img: string }> {
  const img = image(32);
  let domid = -1;
  let maxIssued = 0;
  const sample = () => { if (domid >= 0) maxIssued = Math.max(maxIssued, grantsIssued(host.host.hv, domid)); };
  const timer = setInterval(sample, 2);
  try {
    const g = await host.runGuest({
      image: img, memoryMiB: 96, front, tasks: [{ kind: 'verify', job }],
      onRunning: (d) => { domid = d; },
      afterTask: sample,
    });
    const task = g.tasks[0];
    if (task.error !== null || task.result?.kind !== 'verify') throw new Error(`verify failed: ${task.error}`);
    return { g, v: task.result.result, maxIssued, img };
  } finally {
    clearInterval(timer);
  }
}

/** What one device may grant at most: per ring its pool, bounce pages, ring pages and indirect pages. */
function bound(g: GuestOutcome): number {
  const n = g.device.negotiated as { queues: number; ringPageOrder: number; indirectSegments: number };
  const poolGrants = g.tasks[0].stats.persistentPerRing;
  const slots = 32 << n.ringPageOrder; // blkif: 32 requests per ring page
  const segs = n.indirectSegments > 0 ? n.indirectSegments : BLKIF_MAX_SEGMENTS_PER_REQUEST;
  const indirectPerRequest = n.indirectSegments > 0 ? Math.ceil(n.indirectSegments / BLKIF_SEGMENTS_PER_INDIRECT_FRAME) : 0;
  // + the kernel's own (console and xenstore rings are not grants here; a few to spare).
  return n.queues * (poolGrants + segs + (1 << n.ringPageOrder) + slots * indirectPerRequest) + 16;
}

test.serial('random I/O over far more pages than the grant table holds: every byte checked, grants bounded', async (t) => {
  const buffers = 640; // x 64 KiB = 10240 pages, beyond the 8192 references of a grant table
  t.true(buffers * 16 > NR_GRANT_ENTRIES);
  const size = 16 * MIB;
  const { g, v, maxIssued, img } = await run({ ops: 2400, depth: 32, minBytes: 32 * 1024, maxBytes: 64 * 1024, size, seed: 5, buffers });
  t.deepEqual(v.errors, []);
  t.true(v.reads > 500 && v.writes > 500);
  t.deepEqual(v.chunkSums, fileSums(img, size), 'the image file holds exactly what the guest wrote');
  const stats = g.tasks[0].stats;
  const limit = bound(g);
  t.log(`pool ${stats.persistentPerRing}/ring x ${String(g.device.negotiated.queues)}; most grants issued ${maxIssued} (bound ${limit}); ` +
    `held at the end ${stats.persistentGrants}, ended ${stats.persistentEnded}, reclaimed ${stats.persistentReclaimed}, bounce copies ${stats.bounceCopies}; backend ${JSON.stringify(g.backend)}`);
  t.true(maxIssued > 0, 'the sampler saw the guest\'s grants');
  t.true(maxIssued <= limit, `the guest granted at most ${limit} at once (saw ${maxIssued})`);
  t.true(stats.persistentGrants <= stats.persistentPerRing * (g.device.negotiated.queues as number));
  t.true(stats.persistentEnded > 0, 'grants the backend mapped for one request were ended when it was answered');
  t.true(stats.persistentReclaimed + stats.bounceCopies > 0, 'the pool filled up: grants were reclaimed or segments bounced');
});

test.serial('a pool too small for the backend ever to purge: segments bounce, every byte checked, no error', async (t) => {
  const size = 8 * MIB;
  const { g, v, maxIssued, img } = await run(
    { ops: 1200, depth: 32, minBytes: 4096, maxBytes: 64 * 1024, size, seed: 9, buffers: 96 },
    { maxQueues: 1, maxPersistentGrants: 48 },
  );
  t.deepEqual(v.errors, []);
  t.deepEqual(v.chunkSums, fileSums(img, size));
  const stats = g.tasks[0].stats;
  t.is(stats.persistentPerRing, 48);
  t.log(`most grants issued ${maxIssued}; bounce copies ${stats.bounceCopies}, reclaimed ${stats.persistentReclaimed}`);
  // blkback keeps up to 1056 mappings on one ring: it maps all 48 (and the bounce pages) and
  // never overflows, so nothing is reclaimed and every other page goes through a bounce page.
  t.is(stats.persistentReclaimed, 0);
  t.is(stats.persistentEnded, 0, 'nothing to end: the backend kept every grant');
  t.true(stats.bounceCopies > 1000, `bounced ${stats.bounceCopies}`);
  t.true(stats.persistentGrants <= 48);
  t.true(maxIssued <= bound(g), `at most ${bound(g)} grants at once (saw ${maxIssued})`);
});
