/*
 * ringvisor's xenstore-* verbs (cli/xenstore.ts) against Xen's own (Debian's xenstore-utils
 * 4.17), on the same nodes of the same xenstored, byte for byte: escaping of newlines, tabs, NUL
 * and bytes ≥ 0x7f, xenstore-write's unescaping (C's sscanf quirks included), xenstore-ls cutting
 * long values at 80 columns when piped, -p, -f, -R; and Debian's xenstore-control driven through
 * every XS_CONTROL command. xenstored is the single-threaded rig (test/helpers/xs-fake.ts)
 * listening on a socket in a temporary run directory; ours runs in this process (its stdout is
 * not a terminal, like the tools' pipes), Xen's as child processes pointed there by
 * XENSTORED_PATH. Where the tools are not installed the tests are skipped and say why.
 */
import test from 'ava';
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { run } from '../cli/main.ts';
import { xenstoredSocketPath } from '../dom0/kernel.ts';
import { makeRig, settle, type Rig } from './helpers/xs-fake.ts';
import { until } from '../scenarios/lib/hang.ts';

const tool = (name: string) => ['/usr/bin', '/usr/sbin', '/usr/local/bin'].map((d) => `${d}/${name}`).find((p) => existsSync(p)) ?? null;
const UTILS = ['xenstore-read', 'xenstore-write', 'xenstore-ls', 'xenstore-list', 'xenstore-exists', 'xenstore-rm', 'xenstore-chmod', 'xenstore-watch'];
const haveUtils = UTILS.every((n) => tool(n) !== null);
/*
 * Debian's /usr/bin/xenstore-control is a link to xen-utils-common's wrapper, which runs the
 * binary in xen-utils-4.17 (/usr/lib/xen-4.17/bin); without those packages the link dangles.
 * $XENSTORE_CONTROL may name a working one (for instance extracted from xen-utils-4.17's .deb).
 */
const CONTROL = [process.env.XENSTORE_CONTROL, tool('xenstore-control'), '/usr/lib/xen-4.17/bin/xenstore-control']
  .find((p) => p !== undefined && p !== null && existsSync(p)) ?? null;
const haveControl = CONTROL !== null;
if (!haveUtils) console.log('xenstore-utils not installed (apt-get install xenstore-utils): skipping the comparisons with Xen\'s xenstore tools');
if (!haveControl) {
  console.log('xenstore-control not runnable (Debian\'s /usr/bin/xenstore-control needs xen-utils-4.17 and xen-utils-common; ' +
    'or set XENSTORE_CONTROL to the binary): skipping the xenstore-control tests');
}
const withUtils = haveUtils ? test.serial : test.serial.skip;
const withControl = haveControl ? test.serial : test.serial.skip;

interface Ran { code: number | null; stdout: Buffer; stderr: string }

let rig: Rig;
let runDir: string;
let socket: string;

test.before(async () => {
  runDir = mkdtempSync(join(tmpdir(), 'rv-xscli-'));
  socket = xenstoredSocketPath(runDir);
  rig = await makeRig();
  await rig.xenstored.listen(socket);
});

test.after.always(async () => {
  await rig?.xenstored.close();
  rmSync(runDir, { recursive: true, force: true });
});

/** Xen's tool, as a child process (never spawnSync: xenstored runs in this thread). */
function xen(name: string, ...args: string[]): Promise<Ran> {
  return new Promise((resolve, reject) => {
    const child = spawn(name === 'xenstore-control' ? CONTROL! : tool(name)!, args, { env: { ...process.env, XENSTORED_PATH: socket } });
    const out: Buffer[] = [];
    let stderr = '';
    child.stdout.on('data', (b: Buffer) => out.push(b));
    child.stderr.on('data', (b: Buffer) => { stderr += b.toString(); });
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout: Buffer.concat(out), stderr }));
  });
}

function sink(into: Buffer[]): Writable {
  return new Writable({ write(chunk: Buffer | string, _enc, cb) { into.push(Buffer.from(chunk)); cb(); } });
}

/** `ringvisor --run-dir <ours> <verb> ...`, in this process. */
async function ours(...args: string[]): Promise<Ran> {
  const out: Buffer[] = [];
  const err: Buffer[] = [];
  const io = { stdin: process.stdin, stdout: sink(out), stderr: sink(err) } as unknown as Parameters<typeof run>[1];
  const code = await run(['--run-dir', runDir, ...args], io);
  return { code, stdout: Buffer.concat(out), stderr: Buffer.concat(err).toString() };
}

/** Both tools, same arguments: same stdout and the same success or failure. */
async function same(t: { is: (a: unknown, b: unknown, m?: string) => void }, verb: string, ...args: string[]): Promise<Ran> {
  const x = await xen(verb, ...args);
  const o = await ours(verb, ...args);
  t.is(o.stdout.toString('latin1'), x.stdout.toString('latin1'), `${verb} ${args.join(' ')}: stdout`);
  t.is(o.code === 0, x.code === 0, `${verb} ${args.join(' ')}: exit ${o.code} vs Xen's ${x.code} (${o.stderr.trim()} | ${x.stderr.trim()})`);
  return x;
}

const bytes = (...b: number[]) => new Uint8Array(b);
const VALUES: Record<string, Uint8Array | string> = {
  plain: 'hello world',
  newline: 'line one\nline two\n',
  tab: 'a\tb',
  cr: 'x\ry',
  backslash: 'C:\\dir\\',
  nul: bytes(0x61, 0, 0x62, 0),
  low: bytes(1, 2, 3, 7, 8, 0x1b, 0x1f),
  high: bytes(0x7e, 0x7f, 0x80, 0xc3, 0xa9, 0xff),
  quote: 'say "hi"',
  empty: '',
};

withUtils('xenstore-read prints every value as Xen\'s does, alone, several at once, with -p and -R', async (t) => {
  for (const [k, v] of Object.entries(VALUES)) await rig.dom0.write(`/cli/r/${k}`, v);
  const paths = Object.keys(VALUES).map((k) => `/cli/r/${k}`);
  for (const p of paths) await same(t, 'xenstore-read', p);
  await same(t, 'xenstore-read', ...paths);
  await same(t, 'xenstore-read', '-p', ...paths);
  await same(t, 'xenstore-read', '-R', '/cli/r/nul');
  await same(t, 'xenstore-read', '-R', '/cli/r/high');
  await same(t, 'xenstore-read', '-s', '/cli/r/plain');
  const missing = await same(t, 'xenstore-read', '/cli/r/plain', '/cli/r/nope', '/cli/r/tab');
  t.is(missing.code, 1);
  t.is((await ours('xenstore-read', '/cli/r/nope')).stderr, 'ringvisor xenstore-read: couldn\'t read path /cli/r/nope\n');
});

withUtils('xenstore-write unescapes as Xen\'s does, C\'s sscanf quirks included; -R stores the argument as it is', async (t) => {
  const args = [
    'x\\ny', '\\t\\r\\\\', '\\000', '\\0', '\\012x', '\\7777', '\\8', '\\q', '\\x7f', '\\xff\\xFe', '\\x4', '\\x4g',
    '\\xg', '\\x', '\\x 41', '\\x+4', '\\x-1', '\\x0x1', '\\x+', 'end\\', 'caf\u00e9', 'a "quoted" \\"',
  ];
  for (let i = 0; i < args.length; i++) {
    t.is((await xen('xenstore-write', `/cli/w/xen/${i}`, args[i]!)).code, 0);
    t.is((await ours('xenstore-write', `/cli/w/ours/${i}`, args[i]!)).code, 0);
    t.deepEqual(await rig.dom0.readBytes(`/cli/w/ours/${i}`), await rig.dom0.readBytes(`/cli/w/xen/${i}`), `argument ${JSON.stringify(args[i])}`);
  }
  t.deepEqual(await rig.dom0.readBytes('/cli/w/ours/0'), new TextEncoder().encode('x\ny'));
  await xen('xenstore-write', '-R', '/cli/w/xen/raw', 'x\\ny');
  await ours('xenstore-write', '-R', '/cli/w/ours/raw', 'x\\ny');
  t.is(await rig.dom0.read('/cli/w/ours/raw'), 'x\\ny');
  t.is(await rig.dom0.read('/cli/w/xen/raw'), 'x\\ny');
  // Several pairs at once, in one transaction.
  await ours('xenstore-write', '/cli/w/pair/a', '1', '/cli/w/pair/b', '2\\t');
  t.is(await rig.dom0.read('/cli/w/pair/b'), '2\t');
  t.is((await ours('xenstore-write', '/cli/w/odd', '1', '/cli/w/odd2')).code, 2, 'an odd number of arguments is a usage error');
});

withUtils('xenstore-ls matches Xen\'s: escaping, values cut at 80 columns when piped, long names, -f, -p', async (t) => {
  for (const [k, v] of Object.entries(VALUES)) await rig.dom0.write(`/cli/ls/${k}`, v);
  await rig.dom0.write('/cli/ls/long', 'v'.repeat(100));
  await rig.dom0.write('/cli/ls/just-fits', 'w'.repeat(80 - 8 - 'just-fits'.length));
  await rig.dom0.write('/cli/ls/one-over', 'w'.repeat(80 - 8 - 'one-over'.length + 1));
  await rig.dom0.write('/cli/ls/escaped-long', new Uint8Array(60).fill(0x0a));
  await rig.dom0.write(`/cli/ls/${'n'.repeat(75)}`, 'name longer than the line');
  await rig.dom0.write('/cli/ls/deep/er/and/deeper/still', 'x'.repeat(70));
  await rig.dom0.setPerms('/cli/ls/plain', [{ id: 0, perms: 0 }, { id: 5, perms: 1 }, { id: 7, perms: 3 }]);
  await same(t, 'xenstore-ls', '/cli/ls');
  await same(t, 'xenstore-ls', '-p', '/cli/ls');
  await same(t, 'xenstore-ls', '-f', '/cli/ls');
  await same(t, 'xenstore-ls', '-f', '-p', '/cli/ls');
  await same(t, 'xenstore-ls', '/cli/ls/deep', '/cli/r');
  const cut = (await ours('xenstore-ls', '/cli/ls')).stdout.toString();
  t.regex(cut, /^long = "v{68}\\\.\.\."$/m, 'cut at the width with \\...');
  const missing = await same(t, 'xenstore-ls', '/cli/nowhere');
  t.is(missing.code, 1);
});

withUtils('xenstore-list, -exists, -rm -t and -chmod -u -r do what Xen\'s do', async (t) => {
  await rig.dom0.write('/cli/m/a/b/c', 'x');
  await rig.dom0.write('/cli/m/keep', 'v');
  await same(t, 'xenstore-list', '/cli/m');
  await same(t, 'xenstore-list', '-p', '/cli/m', '/cli/m/a');
  t.is((await same(t, 'xenstore-list', '/cli/m/none')).code, 1);
  t.is((await same(t, 'xenstore-exists', '/cli/m/keep')).code, 0);
  t.is((await same(t, 'xenstore-exists', '/cli/m/keep', '/cli/m/none')).code, 1);
  await ours('xenstore-rm', '-t', '/cli/m/a/b/c');
  t.is(await rig.dom0.tryRead('/cli/m/a'), null, '-t removed the emptied parents');
  t.is(await rig.dom0.read('/cli/m/keep'), 'v', 'and stopped at a parent with other children');
  await rig.dom0.write('/cli/m/p/q/r', '');
  await ours('xenstore-chmod', '-u', '-r', '/cli/m/p/q', 'r3', 'b4');
  for (const p of ['/cli/m/p', '/cli/m/p/q', '/cli/m/p/q/r', '/cli']) {
    t.deepEqual(await rig.dom0.getPerms(p), [{ id: 3, perms: 1 }, { id: 4, perms: 3 }], p);
  }
  t.is((await ours('xenstore-chmod', '/cli/m/keep', 'z1')).code, 1, 'an unknown letter is refused');
});

withUtils('xenstore-watch -n prints the same events as Xen\'s, then exits', async (t) => {
  await rig.dom0.mkdir('/cli/watched');
  const before = rig.xenstored.watchIndex.size;
  const theirs = xen('xenstore-watch', '-n', '3', '/cli/watched');
  const mine = ours('xenstore-watch', '-n', '3', '/cli/watched');
  // Both watches in place (each has fired its first event): now change something below.
  await until(async () => { await settle(); return rig.xenstored.watchIndex.size >= before + 2; }, 'both xenstore-watch processes to set their watch', { everyMs: 0 });
  await rig.dom0.write('/cli/watched/x', '1');
  await rig.dom0.rm('/cli/watched/x');
  const [x, o] = await Promise.all([theirs, mine]);
  t.is(x.code, 0);
  t.is(o.code, 0);
  t.is(o.stdout.toString(), '/cli/watched\n/cli/watched/x\n/cli/watched/x\n');
  t.is(o.stdout.toString(), x.stdout.toString());
});

/** xenstore-control, Xen's own, against our xenstored. */
async function ctl(...args: string[]): Promise<Ran> {
  return xen('xenstore-control', ...args);
}

withControl('xenstore-control: help, quota, quota set, quota <domid>, quota-soft, and refusals', async (t) => {
  const help = await ctl('help');
  t.is(help.code, 0);
  t.is(help.stdout.toString(), 'check\t\nlog\ton|off\nlogfile\t<file>\nmemreport\t[<file>]\nprint\t<string>\n' +
    'quota\t[set <name> <val>|<domid>]\nquota-soft\t[set <name> <val>]\nhelp\t\n\n');
  const quota = await ctl('quota');
  t.is(quota.code, 0);
  t.regex(quota.stdout.toString(), /^Quota settings:\nnodes {12}: {5}1000 Nodes per domain\nwatches {10}: {6}128 Watches per domain\n/);
  t.is((await ctl('quota', 'set', 'nodes', '5')).stdout.toString(), 'OK\n');
  t.regex((await ctl('quota')).stdout.toString(), /^nodes {12}: {8}5 Nodes per domain$/m);
  t.is((await ctl('quota', 'set', 'nodes', '1000')).code, 0);
  await rig.addGuest(4);
  t.regex((await ctl('quota', '4')).stdout.toString(), /^Domain 4:\nnodes {11}: +\d+\nwatches {9}: {8}0\ntransactions {4}: {8}0\noutstanding {5}: {8}0\nmemory {10}: +\d+\n\n$/);
  const none = await ctl('quota', '99');
  t.is(none.code, 3);
  t.is(none.stderr, 'Error 2 when trying to execute command.\n', 'ENOENT');
  t.regex((await ctl('quota-soft')).stdout.toString(), /^Quota settings:\nmemory {11}: {2}2097152 Total Xenstore memory per domain \(warning level\)\n/);
  t.is((await ctl('quota-soft', 'set', 'memory', '3000000')).code, 0);
  const bad = await ctl('frobnicate');
  t.is(bad.code, 3);
  t.is(bad.stderr, `Command not supported. Valid commands are:\n${help.stdout.toString().slice(0, -1)}\n`);
  t.is((await ctl('quota', 'set', 'nodes', 'zero')).code, 3);
});

withControl('xenstore-control: check, logfile, log, print, memreport', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'rv-xsctl-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  t.is((await ctl('check')).stdout.toString(), 'OK\n');
  t.true(rig.log.some((l) => l.includes('Checking store complete.')));
  const trace = join(dir, 'trace');
  t.is((await ctl('logfile', trace)).stdout.toString(), 'OK\n');
  t.is((await ctl('print', 'from xenstore-control')).stdout.toString(), 'OK\n');
  t.is((await ctl('memreport')).stdout.toString(), 'OK\n');
  t.is((await ctl('log', 'off')).stdout.toString(), 'OK\n');
  t.is((await ctl('log', 'on')).stdout.toString(), 'OK\n');
  t.is((await ctl('memreport', join(dir, 'mem'))).stdout.toString(), 'OK\n');
  t.is((await ctl('log', 'off')).code, 0);
  const text = readFileSync(trace, 'utf8');
  t.regex(text, /^IN 0x[0-9a-f]+ \d{8} [\d:]{8} CONTROL \(print from xenstore-control \)$/m);
  t.regex(text, /control: from xenstore-control/);
  t.regex(text, /xenstored memory report/);
  t.regex(readFileSync(join(dir, 'mem'), 'utf8'), /socket connection: /);
  t.is((await ctl('log', 'sideways')).code, 3);
});
