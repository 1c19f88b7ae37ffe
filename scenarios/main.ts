/*
 * `npm start`: runs a reference scenario, a narrated story that boots a host and shows one
 * part of Xen's design working.
 *
 *   npm start                 the default scenario
 *   npm start -- --list       what there is
 *   npm start -- NAME         one by name
 */
import { SCENARIOS, DEFAULT_SCENARIO } from './registry.ts';

async function main(argv: string[]): Promise<number> {
  if (argv.includes('--help') || argv.includes('-h')) {
    process.stdout.write('usage: npm start -- [--list | NAME]\n');
    return 0;
  }
  if (argv.includes('--list')) {
    for (const s of SCENARIOS) process.stdout.write(`${s.name.padEnd(16)} ${s.summary}${s.name === DEFAULT_SCENARIO ? '  (default)' : ''}\n`);
    return 0;
  }
  const name = argv.find((a) => !a.startsWith('-')) ?? DEFAULT_SCENARIO;
  const scenario = SCENARIOS.find((s) => s.name === name);
  if (!scenario) {
    process.stderr.write(`no scenario "${name}"; npm start -- --list shows them\n`);
    return 2;
  }
  await scenario.run((line) => process.stdout.write(`${line}\n`));
  return 0;
}

process.exitCode = await main(process.argv.slice(2));
