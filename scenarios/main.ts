/*
 * `npm start`: runs a reference scenario, a narrated story that boots a host and shows one
 * part of Xen's design working.
 *
 *   npm start                 the default scenario
 *   npm start -- --list       what there is
 *   npm start -- NAME         one by name
 *   npm start -- --wait poll  under the `poll` waiting policy (default irq; shared/wait.ts)
 *   npm start -- NAME --trace FILE [--trace-classes hvm,mem]   record a trace (tools/trace/record.ts)
 */
import { SCENARIOS, DEFAULT_SCENARIO } from './registry.ts';
import { parseWaitPolicy, type WaitPolicy } from '../shared/wait.ts';
import { TraceRecording, parseClasses } from '../tools/trace/record.ts';

async function main(argv: string[]): Promise<number> {
  if (argv.includes('--help') || argv.includes('-h')) {
    process.stdout.write('usage: npm start -- [--list | NAME] [--wait irq|poll] [--trace FILE [--trace-classes CLASSES]]\n');
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
  const tr = argv.indexOf('--trace');
  const tc = argv.indexOf('--trace-classes');
  const valueAt = new Set([w, tr, tc].filter((i) => i >= 0).map((i) => i + 1));
  const name = argv.find((a, i) => !a.startsWith('-') && !valueAt.has(i)) ?? DEFAULT_SCENARIO;
  const scenario = SCENARIOS.find((s) => s.name === name);
  if (!scenario) {
    process.stderr.write(`no scenario "${name}"; npm start -- --list shows them\n`);
    return 2;
  }
  let recording: TraceRecording | null = null;
  if (tr >= 0) {
    if (!argv[tr + 1]) { process.stderr.write('--trace needs a FILE\n'); return 2; }
    try { recording = new TraceRecording(parseClasses(tc >= 0 ? argv[tc + 1] : undefined)); }
    catch (e) { process.stderr.write(`${(e as Error).message}\n`); return 2; }
  }
  await scenario.run((line) => process.stdout.write(`${line}\n`), { wait });
  if (recording !== null) {
    const n = recording.writeJson(argv[tr + 1]!);
    process.stdout.write(`trace: ${n} records in ${argv[tr + 1]} (open it in https://ui.perfetto.dev)\n`);
  }
  return 0;
}

process.exitCode = await main(process.argv.slice(2));
