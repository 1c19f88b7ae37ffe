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
import { parseArgs } from 'node:util';
import { MemSoak } from './mem-soak.ts';

const USAGE = 'usage: npm run soak:mem -- [--guests N] [--check-every N] [--rss-tolerance MiB]';

async function main(): Promise<number> {
  let args;
  try {
    args = parseArgs({
      options: {
        guests: { type: 'string', default: '1000' },
        'check-every': { type: 'string', default: '100' },
        'rss-tolerance': { type: 'string', default: '64' },
        help: { type: 'boolean', short: 'h' },
      },
      strict: true,
    }).values;
  } catch (e) {
    process.stderr.write(`${(e as Error).message}\n${USAGE}\n`);
    return 2;
  }
  if (args.help) { process.stdout.write(`${USAGE}\n`); return 0; }
  const guests = Number(args.guests);
  const checkEvery = Number(args['check-every']);
  const rssToleranceMiB = Number(args['rss-tolerance']);
  const positive = (n: number) => Number.isInteger(n) && n > 0;
  if (![guests, checkEvery, rssToleranceMiB].every(positive) || guests % 2 !== 0 || checkEvery % 2 !== 0) {
    process.stderr.write(`each option takes a positive whole number (guests and check-every even: guests come in pairs)\n${USAGE}\n`);
    return 2;
  }
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
