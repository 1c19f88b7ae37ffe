/*
 * `npm run soak:mem`: a thousand guests created and destroyed on a host they overcommit, with
 * populate on demand, sharing, paging and the memory policy at work (scenarios/soak/mem-soak.ts),
 * the host checked against its baseline every hundred. test/mem-soak.test.ts runs 100.
 *
 *   npm run soak:mem -- [--guests N] [--check-every N] [--rss-tolerance MiB]
 *
 * Runs with --expose-gc (package.json) so that RSS is read after a full collection. Exits 1 if
 * anything failed to come back, or if the mechanisms never ran.
 */
import { soakArgs } from './args.ts';
import { MemSoak } from './mem-soak.ts';

const USAGE = 'usage: npm run soak:mem -- [--guests N] [--check-every N] [--rss-tolerance MiB]';

async function main(): Promise<number> {
  // Guests come in pairs, and a check falls between pairs.
  const a = soakArgs(USAGE, 'guests', (o) => (o.count % 2 !== 0 || o.checkEvery % 2 !== 0 ? 'guests and check-every must be even: guests come in pairs' : null));
  if (typeof a === 'number') return a;
  const { count: guests, checkEvery, rssToleranceMiB } = a;
  process.stdout.write(`soak:mem: ${guests} guests, two at a time, 1.5× overcommitted, sharing, paging and the memory policy on; checked every ${checkEvery}\n`);
  const t0 = performance.now();
  const soak = await MemSoak.start({ guests, checkEvery, rssToleranceMiB, progress: (l) => process.stdout.write(`${l}\n`) });
  let r;
  let steps;
  try {
    r = await soak.run(guests);
    steps = await soak.policy();
  } finally {
    await soak.close();
  }
  process.stdout.write(`the memory policy's last steps (${steps.eventCount} in all):\n${steps.events.slice(-6).map((e) => `  ${e}`).join('\n')}\n`);
  process.stdout.write(`mechanisms meanwhile: ${JSON.stringify(r.work)}\n${guests} guests in ${((performance.now() - t0) / 1000).toFixed(0)} s\n`);
  if (r.problems.length) {
    process.stdout.write(`soak:mem: FAILED\n${r.problems.map((p) => `  ${p}`).join('\n')}\n`);
    return 1;
  }
  if (!(r.work.page_outs > 0 && r.work.peak_sharing_mappings > 0)) {
    process.stdout.write('soak:mem: FAILED: the guests were never paged out or never shared a page, so the run proves nothing\n');
    return 1;
  }
  process.stdout.write('soak:mem: everything came back\n');
  return 0;
}

process.exitCode = await main();
