/*
 * Issue 14: no frames or paging-file space leak after 100 create/destroy cycles under overcommit.
 * 100 guests (two at a time, 1.5× overcommitted, sharing a common image, paged out and in, their
 * balloon targets set by the memory policy), each verifying its data; after every 20 the host is
 * back to its baseline: frames, shared frames and mappings, paged-out pages, paging files and
 * their bytes, grants, maptrack handles, ports, domains, vCPU threads exactly; the process's
 * threads and descriptors exactly; what the control thread retains (its heap after a full
 * collection, external memory, ArrayBuffers) within scenarios/soak/soak.ts's
 * RETAINED_TOLERANCE_MIB. And the mechanisms did work meanwhile. `npm run soak:mem` runs 1,000
 * (scenarios/soak/mem-main.ts), and bounds RSS too.
 *
 * Why not RSS here: it used to be checked against the warm baseline + 96 MiB, and failed under
 * load (209 → 310 MiB) while passing on a quiet machine. Measured over this soak's 100 guests
 * (checks every 20, a machine loaded by other work), the retained memory is flat (heap after a
 * collection 12 → 13 MiB, external 3, ArrayBuffers 945), while RSS moves with no leak behind it:
 *  - the control thread's heap reservation grows (heapTotal 29 → 50 MiB) with nothing live in it;
 *  - the hypervisor's shared buffers (943 MiB reserved: guest RAM, the P2M, the per-domain
 *    tables) become resident where first touched: each new domain id's slices (ids rotate
 *    through 1..63) and frames first reached at a peak; that part grew 26 → 40 MiB, then stayed;
 *  - two hundred vCPU isolates come and go, and the C allocator keeps much of what they freed:
 *    RSS went 186 → 233 → 209 → 224 → 224 MiB, down as well as up; with MALLOC_ARENA_MAX=2,
 *    181 → 216 → 216 → 224, and without forced collections (as ava ran it) 203 → 286 under a
 *    load average of 11. More contention, more arenas touched, more kept.
 * None of that is memory the host holds on to; a bound wide enough for it would hide a real leak.
 */
import test from 'ava';
import { MemSoak } from '../scenarios/soak/mem-soak.ts';

const GUESTS = 100;
const CHECK_EVERY = 20;

let soak: MemSoak;
const lines: string[] = [];

test.before(async () => {
  soak = await MemSoak.start({ guests: GUESTS, checkEvery: CHECK_EVERY, progress: (l) => lines.push(l) });
});
test.after.always(async () => {
  await soak?.close();
});

test.serial(`mem soak: ${GUESTS} guests created and destroyed under overcommit with sharing, paging and ballooning; nothing leaks`, async (t) => {
  const r = await soak.run(GUESTS);
  const w = soak.warm;
  t.log(`warm: RSS ${w.rssMiB.toFixed(0)} MiB (heap ${w.heapMiB.toFixed(0)}, external ${w.externalMiB.toFixed(0)}, ArrayBuffers ${w.arrayBuffersMiB.toFixed(0)})`);
  for (const l of lines) t.log(l);
  t.log(JSON.stringify(r.work));
  t.deepEqual(r.problems, []);
  t.is(soak.guestsDone, GUESTS);
  t.is(lines.length, GUESTS / CHECK_EVERY);
  // The leak check means something only if the mechanisms ran.
  t.true(r.work.page_outs > 0 && r.work.page_ins > 0, 'guests were paged out and in');
  t.true(r.work.peak_sharing_mappings > 0, 'guests shared pages');
  t.true(r.work.pod_fills > 0, 'guests were populated on demand');
  const policy = await soak.policy();
  t.true(policy.events.some((e) => /^soft: .* balloon targets lowered .*→/.test(e)), 'the policy lowered balloon targets');
});
