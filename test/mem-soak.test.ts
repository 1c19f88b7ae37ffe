/*
 * Issue 14: no frames or paging-file space leak after 100 create/destroy cycles under overcommit.
 * 100 guests (two at a time, 1.5× overcommitted, sharing a common image, paged out and in, their
 * balloon targets set by the memory policy), each verifying its data; after every 20 the host is
 * back to its baseline: frames, shared frames and mappings, paged-out pages, paging files and
 * their bytes, grants, maptrack handles, ports, domains, vCPU threads exactly; the process's
 * threads and descriptors exactly; RSS within a bound. And the mechanisms did work meanwhile.
 * `npm run soak:mem` runs 1,000 (scenarios/soak/mem-main.ts).
 */
import test from 'ava';
import { MemSoak } from '../scenarios/soak/mem-soak.ts';

const GUESTS = 100;
const CHECK_EVERY = 20;
/** No gc() under ava: RSS is a bound, not an equality (as test/soak.test.ts). */
const RSS_TOLERANCE_MIB = 96;

let soak: MemSoak;
const lines: string[] = [];

test.before(async () => {
  soak = await MemSoak.start({ guests: GUESTS, checkEvery: CHECK_EVERY, rssToleranceMiB: RSS_TOLERANCE_MIB, progress: (l) => lines.push(l) });
});
test.after.always(async () => {
  await soak?.close();
});

test.serial(`mem soak: ${GUESTS} guests created and destroyed under overcommit with sharing, paging and ballooning; nothing leaks`, async (t) => {
  const r = await soak.run(GUESTS);
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
