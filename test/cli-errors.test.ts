/*
 * What the command line does with mistakes: every malformed config is refused at its file:line
 * with exit code 1 and nothing started (the host's domain list is unchanged); two VMs with one
 * name cannot run side by side; usage errors exit 2, help exits 0, and with no host running every
 * verb says how to start one. The host runs in this process (cli/host.ts); the command line is
 * the bin, in child processes, as a user runs it.
 */
import test from 'ava';
import { cpSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startHost, type RunningHost } from '../cli/host.ts';
import { rv } from './helpers/cli.ts';

const FIXTURES = new URL('./fixtures/toolstack', import.meta.url).pathname;

let dir = '';
let rh: RunningHost;
test.before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'rv-err-'));
  cpSync(FIXTURES, join(dir, 'fx'), { recursive: true }); // create writes run-time files beside a config
  rh = await startHost({ runDir: join(dir, 'run'), memoryMiB: 128, log: () => undefined });
});
test.after.always(async () => {
  await rh?.close();
  rmSync(dir, { recursive: true, force: true });
});

/** The domains as (name, id) pairs: what "nothing was started" is checked against. */
async function domains(): Promise<string[]> {
  const r = await rv(['--run-dir', rh.runDir, 'list']);
  return r.stdout.split('\n').slice(1).filter(Boolean).map((l) => l.split(/\s+/).slice(0, 2).join(' '));
}

const MALFORMED: [string, number, RegExp][] = [
  ['wrong-type.cfg', 3, /`memory' is a list but should be a single value/],
  ['bad-diskspec.cfg', 4, /too many positional parameters/],
  ['missing-image.cfg', 3, /no-such\.img does not exist/],
  ['unterminated-list.cfg', 2, /unterminated list/],
  ['unterminated-string.cfg', 1, /unterminated string/],
];

for (const [file, line, why] of MALFORMED) {
  test.serial(`create ${file}: refused at its file:line, exit 1, nothing started`, async (t) => {
    const before = await domains();
    const cfg = join(dir, 'fx', file);
    const r = await rv(['--run-dir', rh.runDir, 'create', cfg]);
    t.is(r.code, 1);
    t.true(r.stderr.includes(`${cfg}:${line}:`), r.stderr);
    t.regex(r.stderr, why);
    t.regex(r.stderr, /nothing was started/);
    t.deepEqual(await domains(), before);
  });
}

test.serial('a second VM with the same name is refused, naming both configs; the first keeps running', async (t) => {
  const a = join(dir, 'fx', 'dup-names', 'a');
  const b = join(dir, 'fx', 'dup-names', 'b');
  t.is((await rv(['--run-dir', rh.runDir, 'create', a])).code, 0);
  const before = await domains();
  const r = await rv(['--run-dir', rh.runDir, 'create', b]);
  t.is(r.code, 1);
  t.true(r.stderr.includes(`${a}/vm.cfg:2:`), r.stderr);
  t.true(r.stderr.includes(`${b}/vm.cfg:3:`), r.stderr);
  t.regex(r.stderr, /name "twin" is also used by/);
  t.deepEqual(await domains(), before);
  t.is((await rv(['--run-dir', rh.runDir, 'destroy', 'twin'])).code, 0);
});

test('exit codes: 0 for help, 2 for usage mistakes', async (t) => {
  const help = await rv(['--help']);
  t.is(help.code, 0);
  for (const verb of ['create', 'list', 'console', 'shutdown', 'new-vm', 'xenstore-ls', 'host']) t.regex(help.stdout, new RegExp(`^  ${verb}\\b`, 'm'));
  const verbHelp = await rv(['shutdown', '--help']);
  t.is(verbHelp.code, 0);
  t.regex(verbHelp.stdout, /Usage: ringvisor shutdown \[options\] <domain>/);
  t.regex(verbHelp.stdout, /-F, --force/);
  t.is((await rv([])).code, 2, 'no verb');
  const unknown = await rv(['frobnicate']);
  t.is(unknown.code, 2);
  t.regex(unknown.stderr, /unknown command 'frobnicate'/);
  t.is((await rv(['create'])).code, 2, 'missing argument');
  t.is((await rv(['list', '--bogus'])).code, 2, 'unknown option');
  t.is((await rv(['host', '--memory', 'lots'])).code, 2, 'bad option value');
  t.is((await rv(['xenstore-write', '/a', '1', '/b'])).code, 2, 'an odd number of PATH VALUE words');
});

test('with no host running, every verb that needs one says how to start it, and exits 1', async (t) => {
  const none = join(dir, 'no-host-here');
  for (const args of [['list'], ['create', join(dir, 'fx', 'dup-names', 'a')], ['console', 'x'], ['info']]) {
    const r = await rv(['--run-dir', none, ...args]);
    t.is(r.code, 1, args.join(' '));
    t.is(r.stderr.trim(), `no ringvisor host is running at ${none}/xl/socket; start one with \`ringvisor host\``);
  }
  const xs = await rv(['--run-dir', none, 'xenstore-ls']);
  t.is(xs.code, 1);
  t.regex(xs.stderr, /no ringvisor host is running at .*xenstored\/socket; start one with `ringvisor host`/);
});

test('an unknown domain is exit 1 with xl\'s message', async (t) => {
  for (const verb of ['destroy', 'shutdown', 'pause', 'console', 'block-list']) {
    const r = await rv(['--run-dir', rh.runDir, verb, 'nosuch']);
    t.is(r.code, 1, verb);
    t.regex(r.stderr, /nosuch is an invalid domain identifier/);
  }
});
