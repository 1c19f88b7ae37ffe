/*
 * `npm run bench`: measure, in one run, the paths ringvisor compares, and report them as a
 * terminal table, a JSON file (--json FILE) and, later, an SVG chart (--svg FILE).
 *
 *   npm run bench -- [--suite ring|xenstore|block|net|sched|scale|trace|mem|migrate|recover|all] [--wait irq|poll|both] [--quick] [--json FILE] [--svg FILE]
 *
 * Figures are medians of repeats after a warm-up, and comparisons are ratios within the run:
 * these machines are shared and noisy. Nothing here sleeps or spins to shape a number. Every
 * row names the waiting policy it ran under (shared/wait.ts); by default the block and ring
 * suites run under both, and ratios are printed per policy.
 */
import { benchMigrate, migrateSummary } from './migrate.ts';
import { writeFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { benchBlock } from './block.ts';
import { benchRing } from './ring.ts';
import { benchScale, scaleSummary } from './scale.ts';
import { benchXenstore } from './xenstore.ts';
import { benchSched, schedSummary } from './sched.ts';
import { benchTrace, traceSummary } from './trace.ts';
import { benchNet } from './net.ts';
import { netSummary } from './net-summary.ts';
import { benchRecover, recoverSummary } from './recover.ts';
import { benchMem } from './mem.ts';
import { blockSummary, formatTable, ringSummary } from './report.ts';
import { renderSvg } from './chart.ts';
import type { BenchRow, SuiteOptions } from './types.ts';
import { WAIT_POLICIES, type WaitPolicy } from '../../shared/wait.ts';

const SUITES: Record<string, (o: SuiteOptions) => Promise<BenchRow[]>> = {
  ring: benchRing,
  xenstore: benchXenstore,
  block: benchBlock,
  sched: benchSched,
  scale: benchScale,
  trace: benchTrace,
  net: benchNet,
  mem: benchMem,
  migrate: benchMigrate,
  recover: benchRecover,
};

const USAGE = `usage: npm run bench -- [--suite ${[...Object.keys(SUITES), 'all'].join('|')}] [--wait irq|poll|both] [--quick] [--json FILE] [--svg FILE]`;

async function main(): Promise<number> {
  let args;
  try {
    args = parseArgs({
      options: {
        suite: { type: 'string', default: 'all' },
        quick: { type: 'boolean', default: false },
        wait: { type: 'string', default: 'both' },
        json: { type: 'string' },
        svg: { type: 'string' },
        help: { type: 'boolean', short: 'h', default: false },
      },
      strict: true,
    }).values;
  } catch (e) {
    process.stderr.write(`${(e as Error).message}\n${USAGE}\n`);
    return 2;
  }
  if (args.help) {
    process.stdout.write(`${USAGE}\n`);
    return 0;
  }
  const names = args.suite === 'all' ? Object.keys(SUITES) : [args.suite!];
  for (const n of names) {
    if (!SUITES[n]) {
      process.stderr.write(`unknown suite "${n}"\n${USAGE}\n`);
      return 2;
    }
  }
  if (args.wait !== 'both' && !WAIT_POLICIES.includes(args.wait as WaitPolicy)) {
    process.stderr.write(`unknown waiting policy "${args.wait}" (expected irq, poll or both)\n${USAGE}\n`);
    return 2;
  }
  const waits: readonly WaitPolicy[] = args.wait === 'both' ? WAIT_POLICIES : [args.wait as WaitPolicy];
  const rows: BenchRow[] = [];
  const progress = (line: string) => process.stderr.write(`  … ${line}\n`);
  for (const n of names) {
    process.stderr.write(`suite ${n}${args.quick ? ' (quick)' : ''}, wait ${waits.join(' and ')}\n`);
    rows.push(...(await SUITES[n]({ quick: args.quick!, waits, progress })));
  }
  process.stdout.write(`${formatTable(rows)}\n`);
  for (const summary of [ringSummary(rows), blockSummary(rows), schedSummary(rows), scaleSummary(rows), traceSummary(rows), migrateSummary(rows), recoverSummary(rows), netSummary(rows)]) if (summary) process.stdout.write(`${summary}\n`);
  if (args.json) {
    writeFileSync(args.json, `${JSON.stringify(rows, null, 2)}\n`);
    process.stderr.write(`wrote ${rows.length} rows to ${args.json}\n`);
  }
  if (args.svg) {
    writeFileSync(args.svg, await renderSvg(rows));
    process.stderr.write(`wrote the chart to ${args.svg}\n`);
  }
  return 0;
}

process.exitCode = await main();
