/*
 * `npm start -- live-migration`: the narration names the precopy rounds with their dirty pages, the
 * stop-and-copy, xl's renames, the downtime beside Clark et al.'s figures and as a udp-rr client on a
 * third host saw it (every answer checked, answers before and after the move), the guest resuming on the other host
 * with its working set verified, a save and restore, and the pool moving a VM on its own when a host
 * runs short of memory. Checked for its key lines, not its numbers.
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
  t.regex(text, /round 1: \d+ pages sent, \d+ dirtied meanwhile/);
  t.regex(text, /A sends the last \d+ dirty pages/);
  t.regex(text, /downtime \d+ ms, from the suspend request/);
  t.regex(text, /On C, a guest, "client", asks it \(udp-probe\)[^]*; \d+ answered so far, 0 bad/);
  t.regex(text, /on A: wanderer -> wanderer--migratedaway/);
  t.regex(text, /on B: wanderer -> wanderer--incoming/);
  t.regex(text, /on B: wanderer--incoming -> wanderer/);
  t.regex(text, /The client on C saw \d+ ms without answers: its last answer \(request (\d+)\) came/);
  t.regex(text, /the first from B \(request \d+\) \d+ ms (after|before) A heard "unpaused"/);
  t.regex(text, /It has had \d+ answers in all, 0 bad: the same server, found on B/);
  t.regex(text, /Clark et al\. \(NSDI 2005\) measured 60 ms/);
  t.regex(text, /mem-touch: resumed at pass \d+, page \d+/);
  t.regex(text, /still listed on A: no/);
  t.regex(text, /xl restore brought it back as domain \d+/);
  // The pool part: the members, the decision with its reason, the move, the pool's list after it.
  t.regex(text, /A and B join a pool \(ringvisor pool-join .*pool\.json\)/);
  t.regex(text, /pool: host-b is short of memory: its hypervisor paged out \d+ page\(s\) since the last look .*; moving (alpha|beta) \(32 MiB\), its largest guest that fits, to host-a, the member with the most free memory/);
  t.regex(text, /pool: (alpha|beta): moved to host-a: \d+ precopy round\(s\)/);
  t.regex(text, /host-a +(alpha|beta) +\d+ +32/);
  t.regex(text, /On A, (alpha|beta) resumed its pass \d+ and finished it/);
  t.regex(text, /stayed on B and runs on, verifying \(CPU time [\d.]+ s, then [\d.]+ s/);
  t.regex(text, /No VM was lost, none is listed twice/);
});
