/*
 * XS_CONTROL (dom0/services/xenstored/control.ts): each command Xen 4.17's C xenstored
 * implements, its reply text and its refusals, in one thread (test/helpers/xs-fake.ts). The same
 * commands driven by Debian's xenstore-control are in xenstore-utils.test.ts.
 */
import test from 'ava';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { XenbusClient } from '../shared/kernel/xenbus/client.ts';
import { XS_CONTROL } from '../shared/public/io/xs_wire.ts';
import { atoi } from '../dom0/services/xenstored/control.ts';
import { makeRig, refusal } from './helpers/xs-fake.ts';

const decoder = new TextDecoder();

/** xs_control_command: the reply up to its NUL. */
async function control(xs: XenbusClient, ...words: string[]): Promise<string> {
  const reply = await xs.request(XS_CONTROL, words);
  const nul = reply.indexOf(0);
  return decoder.decode(nul < 0 ? reply : reply.subarray(0, nul));
}

const HARD_TABLE = `Quota settings:
nodes            :     1000 Nodes per domain
watches          :      128 Watches per domain
transactions     :       10 Transactions per domain
outstanding      :       20 Outstanding requests per domain
transaction-nodes:     1024 Max. number of accessed nodes per transaction
memory           :  2621440 Total Xenstore memory per domain (error level)
node-size        :     2048 Max. size of a node
path-max         :     2048 Max. length of a node path
permissions      :        5 Max. number of permissions per node
`;

test('quota prints Xen\'s table; quota set changes a quota, and it binds at once', async (t) => {
  const { dom0, guests, addGuest } = await makeRig();
  t.is(await control(dom0, 'quota'), HARD_TABLE);
  t.is(await control(dom0, 'quota-soft'), 'Quota settings:\nmemory           :  2097152 Total Xenstore memory per domain (warning level)\n');
  await addGuest(1);
  const xs = guests.get(1)!.xs;
  t.is(await control(dom0, 'quota', 'set', 'nodes', '5'), 'OK');
  t.regex(await control(dom0, 'quota'), /^nodes {12}: {8}5 Nodes per domain$/m);
  let refused = '';
  for (let i = 0; i < 10 && refused === ''; i++) {
    const r = await refusal(xs.write(`data/n${i}`, 'x'));
    if (r !== 'resolved') refused = r;
  }
  t.is(refused, 'ENOSPC', 'the guest hits the new node quota');
  t.is(await refusal(control(dom0, 'quota', 'set', 'nodes', '0')), 'EINVAL', 'a quota is at least 1');
  t.is(await refusal(control(dom0, 'quota', 'set', 'nodes')), 'EINVAL');
  t.is(await refusal(control(dom0, 'quota', 'set', 'bogus', '5')), 'EINVAL');
  t.is(await control(dom0, 'quota-soft', 'set', 'memory', '4096'), 'OK');
  t.regex(await control(dom0, 'quota-soft'), /^memory {11}: {5}4096 /m);
  t.is(await refusal(control(dom0, 'quota-soft', '1')), 'EINVAL');
});

test('quota <domid> reports a domain\'s usage; a domain xenstored does not know is ENOENT', async (t) => {
  const { dom0, guests, addGuest, xenstored } = await makeRig();
  await addGuest(1);
  const xs = guests.get(1)!.xs;
  await xs.watch('data', () => undefined, 'tok');
  await xs.transactionStart();
  const nodes = xenstored.store.owned(1);
  const report = await control(dom0, 'quota', '1');
  const lines = report.split('\n');
  t.deepEqual(lines.slice(0, 5), [
    'Domain 1:',
    `nodes           : ${String(nodes).padStart(8)}`,
    'watches         :        1',
    'transactions    :        1',
    'outstanding     :        0',
  ]);
  t.regex(lines[5]!, /^memory {10}: +\d+$/);
  t.true(Number(lines[5]!.split(':')[1]) > nodes * 24, 'memory counts at least every node record header');
  t.regex(await control(dom0, 'quota', '0'), /^Domain 0:\nnodes +: +\d+\n/);
  t.is(await refusal(control(dom0, 'quota', '99')), 'ENOENT');
  t.is(await refusal(control(dom0, 'quota', '-1')), 'ENOENT');
});

test('help lists the commands; unknown commands and wrong arguments are EINVAL; guests get EACCES', async (t) => {
  const { dom0, guests, addGuest } = await makeRig();
  t.is(await control(dom0, 'help'), 'check\t\nlog\ton|off\nlogfile\t<file>\nmemreport\t[<file>]\nprint\t<string>\n' +
    'quota\t[set <name> <val>|<domid>]\nquota-soft\t[set <name> <val>]\nhelp\t\n');
  t.is(await refusal(control(dom0, 'frobnicate')), 'EINVAL');
  t.is(await refusal(control(dom0, 'help', 'x')), 'EINVAL');
  t.is(await refusal(control(dom0, 'check', 'x')), 'EINVAL');
  t.is(await refusal(control(dom0, 'log', 'maybe')), 'EINVAL');
  t.is(await refusal(control(dom0, 'print')), 'EINVAL');
  t.is(await refusal(dom0.request(XS_CONTROL, [new Uint8Array([0x68, 0x65])])), 'EINVAL', 'no NUL: no command');
  await addGuest(1);
  t.is(await refusal(control(guests.get(1)!.xs, 'help')), 'EACCES');
});

test('check repairs a missing child, a duplicated child and an orphan, and logs each', async (t) => {
  const { dom0, xenstored, log } = await makeRig();
  await dom0.write('/c/real', 'x');
  const c = xenstored.store.read('/c')!;
  xenstored.store.write({ ...c, children: [...c.children, 'ghost', 'real'] });
  xenstored.store.write({ name: '/orphan', data: new Uint8Array(0), children: [], perms: c.perms });
  t.is(await control(dom0, 'check'), 'OK');
  t.deepEqual(await dom0.directory('/c'), ['real']);
  t.is(xenstored.store.read('/orphan'), undefined);
  const said = log.join('\n');
  t.regex(said, /Checking store \.\.\./);
  t.regex(said, /node '\/c\/ghost' not found/);
  t.regex(said, /'\/c\/real' is duplicated!/);
  t.regex(said, /'\/orphan' is orphaned!/);
  t.regex(said, /Checking store complete\./);
  log.length = 0;
  t.is(await control(dom0, 'check'), 'OK');
  t.false(log.some((l) => l.includes('check_store:')), 'a consistent store has nothing to say');
});

test('logfile, log on|off, print and memreport write where they are told', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'xsctl-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const { dom0, log } = await makeRig();
  t.is(await refusal(control(dom0, 'memreport')), 'EINVAL', 'no file and no trace file: EBADF, which travels as EINVAL');
  const trace = join(dir, 'trace');
  t.is(await control(dom0, 'logfile', trace), 'OK');
  await dom0.write('/traced', 'v\u0001');
  t.is(await control(dom0, 'print', 'hello there'), 'OK');
  t.is(await control(dom0, 'log', 'off'), 'OK');
  await dom0.write('/untraced', 'v');
  t.is(await control(dom0, 'log', 'on'), 'OK');
  t.is(await control(dom0, 'memreport'), 'OK');
  t.is(await control(dom0, 'memreport', join(dir, 'mem')), 'OK');
  t.is(await control(dom0, 'log', 'off'), 'OK');
  const text = readFileSync(trace, 'utf8');
  t.true(text.startsWith('\n***\n'));
  t.regex(text, /^IN 0x[0-9a-f]+ \d{8} \d\d:\d\d:\d\d WRITE \(\/traced v\u0001\)$/m);
  t.regex(text, /^OUT 0x[0-9a-f]+ \d{8} \d\d:\d\d:\d\d WRITE \(OK \)$/m);
  t.regex(text, /control: hello there/);
  t.false(text.includes('/untraced'), 'nothing is traced while the log is off');
  t.regex(text, /xenstored memory report/, 'memreport without a file appends to the trace file');
  t.regex(readFileSync(join(dir, 'mem'), 'utf8'), /store: \d+ nodes, \d+ bytes/);
  t.true(log.some((l) => l.includes('control: hello there')));
});

test('atoi reads numbers as C does', (t) => {
  t.is(atoi('5'), 5);
  t.is(atoi(' 12abc'), 12);
  t.is(atoi('-3'), -3);
  t.is(atoi('abc'), 0);
  t.is(atoi(''), 0);
});
