/*
 * `npm start`: runs a reference scenario, a narrated story that boots a host and shows one
 * part of Xen's design working.
 *
 *   npm start                 the default scenario
 *   npm start -- --list       what there is
 *   npm start -- NAME         one by name
 *   npm start -- --wait poll  under the `poll` waiting policy (default irq; shared/wait.ts)
 */
import { SCENARIOS, DEFAULT_SCENARIO } from './registry.ts';
import { parseWaitPolicy, type WaitPolicy } from '../shared/wait.ts';

async function main(argv: string[]): Promise<number> {
  if (argv.includes('--help') || argv.includes('-h')) {
    process.stdout.write('usage: npm start -- [--list | NAME] [--wait irq|poll]\n');
    return 0;
  }
  if (argv.includes('--list')) {
    for (const s of SCENARIOS) process.stdout.write(`${s.name.padEnd(16)} ${s.summary}${s.name === DEFAULT_SCENARIO ? '  (default)' : ''}\n`);
    return 0;
  }
  const w = argv.indexOf('--wait');
  let wait: WaitPolicy;
  try {
    wait = parseWaitPolicy(w >= 0 ? (argv[w + 1] ?? '') : undefined, '--wait');
  } catch (e) {
    process.stderr.write(`${(e as Error).message}\n`);
    return 2;
  }
  const name = argv.find((a, i) => !a.startsWith('-') && !(w >= 0 && i === w + 1)) ?? DEFAULT_SCENARIO;
  const scenario = SCENARIOS.find((s) => s.name === name);
  if (!scenario) {
    process.stderr.write(`no scenario "${name}"; npm start -- --list shows them\n`);
    return 2;
  }
  await scenario.run((line) => process.stdout.write(`${line}\n`), { wait });
  return 0;
}

process.exitCode = await main(process.argv.slice(2));
