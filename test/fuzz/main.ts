/*
 * `npm run fuzz`: the suite's fuzz properties (test/fuzz/groups.ts), run for as long as asked.
 *
 *   npm run fuzz -- [--seconds N] [--seed S] [--only TEXT]
 *
 * --seconds is the whole run's budget, shared evenly by the properties (default 60); --seed fixes
 * fast-check's seed (default: a fresh one, printed); --only keeps the properties whose title
 * contains TEXT. Every property runs from the same seed, so a failure replays with
 * `--seed S --only "<its title>"`: the same seed draws the same cases in the same order. A
 * failure prints fast-check's report (the shrunk counterexample, its seed and path) and the run
 * exits 1.
 */
import { parseArgs } from 'node:util';
import fc from 'fast-check';
import { FUZZ_GROUPS } from './groups.ts';

const USAGE = 'usage: npm run fuzz -- [--seconds N] [--seed S] [--only TEXT]';

async function main(): Promise<number> {
  let args;
  try {
    args = parseArgs({
      options: { seconds: { type: 'string', default: '60' }, seed: { type: 'string' }, only: { type: 'string' }, help: { type: 'boolean', short: 'h' } },
      strict: true,
    }).values;
  } catch (e) {
    process.stderr.write(`${(e as Error).message}\n${USAGE}\n`);
    return 2;
  }
  if (args.help) { process.stdout.write(`${USAGE}\n`); return 0; }
  const seconds = Number(args.seconds);
  const seed = args.seed === undefined ? (Date.now() ^ (Math.random() * 2 ** 31)) | 0 : Number(args.seed);
  if (!(seconds > 0) || !Number.isInteger(seed)) { process.stderr.write(`--seconds must be positive and --seed an integer\n${USAGE}\n`); return 2; }

  const chosen = FUZZ_GROUPS.map((g) => ({ g, props: g.properties.filter((p) => args.only === undefined || p.name.includes(args.only)) }))
    .filter((x) => x.props.length > 0);
  const total = chosen.reduce((n, x) => n + x.props.length, 0);
  if (total === 0) { process.stderr.write(`no property matches "${args.only}"\n`); return 2; }
  const budgetMs = (seconds * 1000) / total;
  process.stdout.write(`fuzz: ${total} properties, ${(budgetMs / 1000).toFixed(1)} s each, seed ${seed}\n`);

  let failed = 0;
  for (const { g, props } of chosen) {
    const ctx = g.setup ? await g.setup() : undefined;
    try {
      for (const p of props) {
        const t0 = performance.now();
        const details = await fc.check(p.property(ctx as never), {
          seed, numRuns: Number.MAX_SAFE_INTEGER, interruptAfterTimeLimit: budgetMs, markInterruptAsFailure: false, includeErrorInReport: true,
        });
        const secs = ((performance.now() - t0) / 1000).toFixed(1);
        if (details.failed) {
          failed++;
          process.stdout.write(`FAIL  ${p.name}\n      after ${details.numRuns} cases (${secs} s), seed ${details.seed}\n`);
          process.stdout.write(`${fc.defaultReportMessage(details)?.replace(/^/gm, '      ')}\n`);
          process.stdout.write(`      replay: npm run fuzz -- --seed ${details.seed} --only ${JSON.stringify(p.name)}\n`);
        } else {
          process.stdout.write(`ok    ${p.name}: ${details.numRuns} cases in ${secs} s (suite runs ${p.ciRuns})\n`);
        }
      }
    } finally {
      if (ctx !== undefined) await g.teardown?.(ctx as never);
    }
  }
  process.stdout.write(failed ? `fuzz: ${failed} of ${total} properties FAILED (seed ${seed})\n` : `fuzz: all ${total} properties held (seed ${seed})\n`);
  return failed ? 1 : 0;
}

process.exitCode = await main();
