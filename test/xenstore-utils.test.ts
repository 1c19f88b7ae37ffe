/*
 * Interoperability: Debian's xenstore-utils (Xen's own xenstore-write, -read, -ls, -list, -rm,
 * -chmod, -watch, built on libxenstore) drive ringvisor's xenstored over its Unix socket,
 * unmodified, pointed at it with XENSTORED_PATH. Passing means the wire format is Xen's, not
 * merely self-consistent: every request here is framed and answered by code ringvisor did not
 * write. (.ci/run installs the package; where it is absent these tests are skipped, not faked.)
 */
import test from 'ava';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { bootDom0, type Dom0Harness } from '../scenarios/xenstore/harness.ts';

const BIN = ['/usr/bin', '/usr/sbin', '/usr/local/bin'];
const tool = (name: string) => BIN.map((d) => `${d}/${name}`).find((p) => existsSync(p)) ?? null;
const TOOLS = ['xenstore-write', 'xenstore-read', 'xenstore-ls', 'xenstore-list', 'xenstore-rm', 'xenstore-chmod', 'xenstore-watch'];
const have = TOOLS.every((n) => tool(n) !== null);
const maybe = have ? test.serial : test.serial.skip;
if (!have) console.log('xenstore-utils not installed (apt-get install xenstore-utils): skipping the interoperability tests');

let h: Dom0Harness;

test.before(async () => {
  if (have) h = await bootDom0();
});

test.after.always(async () => {
  await h?.close();
});

function run(name: string, ...args: string[]): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(tool(name)!, args, { env: { ...process.env, XENSTORED_PATH: h.socket }, encoding: 'utf8' });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

maybe('xenstore-write then xenstore-read and xenstore-list see the values', (t) => {
  t.is(run('xenstore-write', '/interop/a', 'hello', '/interop/b/c', 'x y').status, 0);
  const r = run('xenstore-read', '/interop/a', '/interop/b/c');
  t.is(r.status, 0, r.stderr);
  t.is(r.stdout, 'hello\nx y\n');
  t.is(run('xenstore-list', '/interop').stdout, 'a\nb\n');
});

maybe('xenstore-ls prints the tree as Xen formats it, flat and with permissions', async (t) => {
  t.is(run('xenstore-write', '/interop/ls/x', '1', '/interop/ls/y/z', 'two words').status, 0);
  t.is(run('xenstore-ls', '/interop/ls').stdout, 'x = "1"\ny = ""\n z = "two words"\n');
  t.is(run('xenstore-ls', '-f', '/interop/ls').stdout, '/interop/ls/x = "1"\n/interop/ls/y = ""\n/interop/ls/y/z = "two words"\n');
  // Our own client sees what the tool wrote.
  t.is(await h.xs.read('/interop/ls/y/z'), 'two words');
});

maybe('xenstore-chmod sets permissions that xenstore-ls -p and GET_PERMS report', async (t) => {
  t.is(run('xenstore-write', '/interop/perm', 'v').status, 0);
  t.is(run('xenstore-chmod', '/interop/perm', 'b5', 'r7').status, 0);
  t.deepEqual(await h.xs.getPerms('/interop/perm'), [{ id: 5, perms: 3 }, { id: 7, perms: 1 }]);
  t.regex(run('xenstore-ls', '-p', '/interop').stdout, /perm = "v" [ .]*\(b5,r7\)/);
});

maybe('xenstore-rm removes a subtree; reading it then fails with the not-found error', (t) => {
  t.is(run('xenstore-write', '/interop/gone/deep/er', 'x').status, 0);
  t.is(run('xenstore-rm', '/interop/gone').status, 0);
  const r = run('xenstore-read', '/interop/gone/deep/er');
  t.is(r.status, 1);
  t.regex(r.stderr, /couldn't read path \/interop\/gone\/deep\/er/);
  t.is(run('xenstore-list', '/interop/gone').status, 1);
});

maybe('xenstore-list of a directory too big for one reply falls back to DIRECTORY_PART, as libxenstore does', async (t) => {
  const names = Array.from({ length: 300 }, (_, i) => `entry-with-a-fairly-long-name-${String(i).padStart(3, '0')}`);
  await h.xs.transaction(async (tx) => { for (const n of names) await h.xs.write(`/interop/big/${n}`, '', tx); });
  const r = run('xenstore-list', '/interop/big');
  t.is(r.status, 0, r.stderr);
  t.is(r.stdout, names.map((n) => `${n}\n`).join(''));
});

maybe('xenstore-watch reports the watch firing when set, then each change below it', async (t) => {
  await h.xs.mkdir('/interop/w');
  const child = spawn(tool('xenstore-watch')!, ['-n', '3', '/interop/w'], { env: { ...process.env, XENSTORED_PATH: h.socket } });
  let out = '';
  let lines = 0;
  let onLine: (() => void) | null = null;
  child.stdout.setEncoding('utf8');
  child.stdout.on('data', (s: string) => {
    out += s;
    lines = out.split('\n').length - 1;
    onLine?.();
  });
  const untilLines = (n: number) => new Promise<void>((r) => {
    onLine = () => { if (lines >= n) r(); };
    onLine();
  });
  // 'close', not 'exit': only then has all of the child's output been read.
  const exited = new Promise<number | null>((r) => child.on('close', (code) => r(code)));
  await untilLines(1); // the event every watch fires when it is set: the watch is in place
  t.is(run('xenstore-write', '/interop/w/child', 'v').status, 0);
  await untilLines(2);
  t.is(run('xenstore-rm', '/interop/w/child').status, 0);
  t.is(await exited, 0);
  t.is(out, '/interop/w\n/interop/w/child\n/interop/w/child\n');
});
