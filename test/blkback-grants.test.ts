/*
 * blkback's persistent grants (issue 10's regression of issue 17's budget): the per-ring limit and
 * Linux's purge_persistent_gnt on their own, over a fake kernel that counts maps and unmaps; then
 * a real guest on four queues whose I/O buffers stay mapped, so that after its first pass over
 * them a 64 KiB depth-32 job costs Dom0 no grant operation at all.
 */
import test from 'ava';
import { closeSync, openSync, rmSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomUUID } from 'node:crypto';
import type { Kernel } from '../shared/kernel/kernel.ts';
import { GNTST_okay, type GnttabMapGrantRef } from '../shared/public/grant_table.ts';
import { GrantBudget, MAPPING_LIMITS } from '../backends/lib/grant-budget.ts';
import { GrantMapper, LRU_INTERVAL_MS, MAX_PERSISTENT_PER_RING, persistentPerRing } from '../backends/blkback/grants.ts';
import { BlockHost } from '../scenarios/block/harness.ts';

/** Just what GrantMapper uses of a kernel: holes, map and unmap hypercalls, page views. */
function fakeKernel() {
  const mapped = new Map<number, number>(); // handle → gref
  let nextHole = 1000;
  let nextHandle = 1;
  const k = {
    pages: { tryAllocHole: () => nextHole++, releaseHole: () => undefined },
    hypercall: {
      gnttab_map_grant_ref(op: GnttabMapGrantRef) {
        op.handle = nextHandle++;
        mapped.set(op.handle, op.ref);
        op.status = GNTST_okay;
      },
      gnttab_unmap_grant_ref(op: { handle: number; status: number }) {
        op.status = mapped.delete(op.handle) ? GNTST_okay : -1;
      },
    },
    memory: { page: () => new Uint8Array(4096) },
  };
  return { k: k as unknown as Kernel, mapped };
}

/** One piece of work touching `grefs`, as blkif-ring does it: map each, then release the piece. */
function piece(m: GrantMapper, grefs: number[]): void {
  for (const g of grefs) if (m.page(g, true) === null) throw new Error(m.lastError);
  m.releaseTransient();
}
const range = (from: number, n: number) => Array.from({ length: n }, (_, i) => from + i);

test('a ring keeps its share of the persistent budget, and past it maps per piece', (t) => {
  t.is(persistentPerRing(1536, 4, 128, 33), 384, 'four rings share the frontend\'s 1536');
  t.is(persistentPerRing(1536, 1, 128, 33), MAX_PERSISTENT_PER_RING, 'one ring: Linux\'s 1056');
  t.is(persistentPerRing(1536, 1, 32, 11), 352, 'never more than the ring can have in flight');
  const { k, mapped } = fakeKernel();
  const m = new GrantMapper(k, 1, new GrantBudget(), true, 10);
  piece(m, range(0, 10));
  piece(m, range(0, 10));
  t.is(m.stats.maps, 10, 'each grant mapped once');
  t.is(m.stats.persistentHits, 10);
  piece(m, [50, 51]);
  t.is(m.persistentCount, 10);
  t.is(m.stats.maps, 12);
  t.is(m.stats.unmaps, 2, 'past the limit: mapped for the piece and unmapped after it');
  t.is(mapped.size, 10);
  m.releaseAll();
  t.is(mapped.size, 0);
});

test('purge_persistent_gnt: at most every LRU interval, the unused first, never one in use', (t) => {
  const { k, mapped } = fakeKernel();
  const max = 40; // LRU_PERCENT_CLEAN (5%) of 40 is 2 per purge
  const m = new GrantMapper(k, 1, new GrantBudget(), true, max);
  let now = 1e6;
  piece(m, range(0, max));
  m.purgeIfDue(now);
  t.is(m.stats.purged, 0, 'nothing overflowed: no purge');
  piece(m, [100]); // wants a 41st: overflow
  m.purgeIfDue(now);
  // Every grant was used since the start, so the second pass takes the first two not in use.
  t.is(m.stats.purged, 2);
  t.is(m.persistentCount, max - 2);
  piece(m, [100, 101]); // room again: these two become persistent
  t.is(m.persistentCount, max);
  // Use 2..19 (and hold 20 in the piece in progress), then overflow: the purge must take grants
  // not used since the last one (21 and up), never 20, which the piece holds.
  piece(m, range(2, 18));
  m.page(20, true);
  m.page(102, true); // overflow while 20 is held
  m.purgeIfDue(now);
  t.is(m.stats.purged, 2, 'not again within LRU_INTERVAL_MS');
  now += LRU_INTERVAL_MS;
  m.purgeIfDue(now);
  t.is(m.stats.purged, 4);
  const held = new Set(mapped.values());
  for (const g of [...range(2, 19), 100, 101]) t.true(held.has(g), `grant ${g}, used since the last purge, is kept`);
  t.false(held.has(21) && held.has(22), 'the purge took grants unused since the last purge');
  m.releaseTransient();
  // Nothing overflows any more: no purge however much time passes.
  now += 10 * LRU_INTERVAL_MS;
  m.purgeIfDue(now);
  t.is(m.stats.purged, 4);
  m.releaseAll();
  t.is(mapped.size, 0, 'everything unmapped at the end');
});

test.serial('a guest on four queues with persistent grants: after the first pass over its buffers, no grant operation per request', async (t) => {
  const image = join(tmpdir(), `ringvisor-pgnt-${randomUUID()}.img`);
  const fd = openSync(image, 'w');
  const chunk = Buffer.alloc(1 << 20, 0x3c);
  for (let i = 0; i < 32; i++) writeSync(fd, chunk, 0, chunk.length, i << 20);
  closeSync(fd);
  const host = await BlockHost.boot(256);
  try {
    const job = { rw: 'read' as const, bs: 65536, iodepth: 32, ios: 2000, size: 32 << 20 };
    const g = await host.runGuest({
      image, memoryMiB: 96, readOnly: true,
      tasks: [{ kind: 'fio', job: { ...job, seed: 1 } }, { kind: 'fio', job: { ...job, seed: 2, skip: 100 } }],
    });
    t.deepEqual(g.device.negotiated, { ringPageOrder: 2, queues: 4, indirectSegments: 32, persistent: true });
    for (const task of g.tasks) t.is(task.error, null);
    const second = g.tasks[1].counters.dom0;
    t.is(second.grant_maps + second.grant_unmaps, 0, `the second job mapped nothing: ${JSON.stringify(g.backend)}`);
    t.true(g.backend.persistentHits >= 2000 * 16, 'every segment of the second job found its mapping');
    t.is(g.backend.persistentPurged, 0);
    t.log(`persistent mappings held at the end: ${g.backend.persistentHeld}`);
    // 32 buffers of 16 pages, each page's grant on one ring (plus indirect pages): well under the budget.
    t.true(g.backend.persistentHeld >= 32 * 16 && g.backend.persistentHeld <= 32 * 16 + 4 * 128, `held ${g.backend.persistentHeld}`);
    t.true(g.backend.persistentHeld < MAPPING_LIMITS.persistentPerFrontend);
  } finally {
    await host.close();
    rmSync(image, { force: true });
  }
});
