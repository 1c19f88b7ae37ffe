/*
 * `npm start -- live-migration`: the narration names the precopy rounds with their dirty pages, the
 * stop-and-copy, the downtime beside Clark et al.'s figures, the guest resuming on the other host
 * with its working set verified, and a save and restore. Checked for its key lines, not its numbers.
 */
import test from 'ava';
import { SCENARIOS } from '../scenarios/registry.ts';
import { liveMigration } from '../scenarios/live-migration.ts';

test('live-migration narrates the rounds, the stop-and-copy, the downtime, the resume and a save/restore', async (t) => {
  t.is(SCENARIOS.find((s) => s.name === 'live-migration')?.run, liveMigration);
  t.is(SCENARIOS.find((s) => s.name === 'migrate')?.run, liveMigration);
  const lines: string[] = [];
  await liveMigration((l) => lines.push(l));
  const text = lines.join('\n');
  t.regex(text, /receiver listens \(xl migrate-receive\) on 127\.0\.0\.1:\d+/);
  t.regex(text, /round 1: 16384 pages sent, \d+ dirtied meanwhile/);
  t.regex(text, /A sends the last \d+ dirty pages/);
  t.regex(text, /downtime \d+ ms, from the suspend request/);
  t.regex(text, /Clark et al\. \(NSDI 2005\) measured 60 ms/);
  t.regex(text, /mem-touch: resumed at pass \d+, page \d+/);
  t.regex(text, /still listed on A: no/);
  t.regex(text, /xl restore brought it back as domain \d+/);
});
