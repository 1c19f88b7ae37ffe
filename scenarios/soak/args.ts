/*
 * The soak runs' command line (`npm run soak`, `npm run soak:mem`): how many guests, how often
 * the host is checked against its baseline, and how much RSS may grow. One parser for both, so
 * they answer bad input the same way.
 */
import { parseArgs } from 'node:util';

export interface SoakArgs {
  count: number;
  checkEvery: number;
  rssToleranceMiB: number;
}

/**
 * `--<countName> N --check-every N --rss-tolerance MiB`, each a positive whole number. Returns
 * the options, or an exit code after saying why (2: bad input, 0: --help).
 */
export function soakArgs(usage: string, countName: string, check: (a: SoakArgs) => string | null = () => null): SoakArgs | number {
  let values;
  try {
    values = parseArgs({
      options: {
        [countName]: { type: 'string', default: '1000' },
        'check-every': { type: 'string', default: '100' },
        'rss-tolerance': { type: 'string', default: '64' },
        help: { type: 'boolean', short: 'h' },
      },
      strict: true,
    }).values as Record<string, string | boolean | undefined>;
  } catch (e) {
    process.stderr.write(`${(e as Error).message}\n${usage}\n`);
    return 2;
  }
  if (values.help) { process.stdout.write(`${usage}\n`); return 0; }
  const a = { count: Number(values[countName]), checkEvery: Number(values['check-every']), rssToleranceMiB: Number(values['rss-tolerance']) };
  const why = [a.count, a.checkEvery, a.rssToleranceMiB].every((n) => Number.isInteger(n) && n > 0) ? check(a) : 'each option takes a positive whole number';
  if (why !== null) {
    process.stderr.write(`${why}\n${usage}\n`);
    return 2;
  }
  return a;
}
