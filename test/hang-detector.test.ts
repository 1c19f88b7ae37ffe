/*
 * The hang detector (scenarios/lib/hang.ts) that every wait on a console line, a log line or a
 * harness message goes through: a wait whose line never comes fails, naming the regex, where it
 * looked and the last lines seen, instead of hanging the suite; a line that comes ends the wait.
 * The bound is shortened here through RINGVISOR_HANG_S (this file's process only); nothing here
 * asserts on how long anything took.
 */
import test from 'ava';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { XlClient } from '../cli/client.ts';
import { startHost } from '../cli/host.ts';
import { consoleMatch, consoleText, fileSays } from '../scenarios/lib/console.ts';
import { HangError, bounded, until } from '../scenarios/lib/hang.ts';
import { Inbox } from '../scenarios/lib/inbox.ts';
import { LineLog } from '../scenarios/lib/line-log.ts';

const SHORT = '1';
process.env.RINGVISOR_HANG_S = SHORT;

test.serial('bounded and until: a promise that never settles and a condition that never holds fail, naming what they waited for', async (t) => {
  t.is(await bounded(Promise.resolve(7), () => 'never asked'), 7);
  await t.throwsAsync(bounded(new Promise(() => undefined), () => 'the moon'), { instanceOf: HangError, message: /a hang, not a slow run\): the moon/ });
  let n = 0;
  await until(() => ++n > 3, 'three looks');
  t.is(n, 4);
  await t.throwsAsync(until(() => false, 'pigs to fly', { seen: () => ['oink', 'still oink'] }),
    { instanceOf: HangError, message: /still waiting for pigs to fly; last seen:\n {2}\| oink\n {2}\| still oink$/ });
});

test.serial('a log line: found when it comes (before or after the wait starts); one that never comes names the regex, the log and its last lines', async (t) => {
  const log = new LineLog('the test\'s log');
  log.add('xenbr0: uplink up, wire 127.0.0.1:4242');
  t.is((await log.waitFor(/wire [\d.]+:(\d+)/))[1], '4242');
  const later = log.waitFor(/later (\w+)/);
  log.add('later arrived');
  t.is((await later)[1], 'arrived');
  for (let i = 0; i < 30; i++) log.add(`line ${i}`);
  const e = await t.throwsAsync(log.waitFor(/uplink xenbr0-uplink through nic/), { instanceOf: HangError });
  t.regex(e.message, /waiting for \/uplink xenbr0-uplink through nic\/ in the test's log; its last lines:/);
  t.regex(e.message, /\| line 29$/);
  t.notRegex(e.message, /\| line 9\n/, 'only the last lines');
});

test.serial('a harness inbox: a message that never comes fails with what was waited for, what did come and the host\'s lines', async (t) => {
  const inbox = new Inbox<{ kind: string }>();
  inbox.push({ kind: 'hello' });
  t.is((await inbox.take((m) => m.kind === 'hello')).kind, 'hello');
  const late = inbox.take((m) => m.kind === 'late');
  inbox.push({ kind: 'late' });
  t.is((await late).kind, 'late');
  inbox.push({ kind: 'stray' });
  await t.throwsAsync(inbox.take((m) => m.kind === 'result', () => null, { what: 'workload-result', seen: () => ['d1: booted'] }),
    { instanceOf: HangError, message: /waiting for workload-result; unclaimed messages: stray; last lines:\n {2}\| d1: booted/ });
});

test.serial('a guest\'s console: the line it says ends the wait; one it never says, or a console that closes first, fails with the regex and its last lines', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'rv-hang-'));
  process.env.RINGVISOR_HANG_S = '120'; // booting a host and a guest on a loaded machine
  const rh = await startHost({ runDir: join(dir, 'run'), memoryMiB: 96, log: () => undefined });
  const xl = await XlClient.open(rh.runDir);
  try {
    const d = join(dir, 'quiet');
    mkdirSync(d);
    writeFileSync(join(d, 'vm.cfg'), 'name = "quiet"\nmemory = 16\nworkload = "idle"\n');
    await xl.call({ verb: 'create', path: d });
    t.regex((await consoleMatch(rh.runDir, 'quiet', /workload idle/))[0], /workload idle/);
    t.regex(await consoleText(rh.runDir, 'quiet', /workload idle/), /ringvisor DomU kernel/, 'everything said up to the line');
    await fileSays(join(d, 'console.log'), /workload idle/);

    process.env.RINGVISOR_HANG_S = SHORT;
    const never = await t.throwsAsync(consoleMatch(rh.runDir, 'quiet', /a line it never says/), { instanceOf: HangError });
    t.regex(never.message, new RegExp(`waiting for /a line it never says/ on quiet's console \\(host ${rh.runDir.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}\\); it said last:`));
    t.regex(never.message, /\| .*workload idle/);
    const missing = await t.throwsAsync(fileSays(join(d, 'console.log'), /a line it never says/), { instanceOf: HangError });
    t.regex(missing.message, /a line it never says\/ in .*console\.log; last seen:\n[\s\S]*workload idle/);

    process.env.RINGVISOR_HANG_S = '120';
    const closing = consoleMatch(rh.runDir, 'quiet', /a line it never says/);
    await xl.call({ verb: 'destroy', domain: 'quiet' });
    await t.throwsAsync(closing, { instanceOf: HangError, message: /on quiet's console .*: the console closed first \([^)]*\); it said last:\n[\s\S]*workload idle/ });
  } finally {
    process.env.RINGVISOR_HANG_S = SHORT;
    xl.close();
    await rh.close();
    rmSync(dir, { recursive: true, force: true });
  }
});
