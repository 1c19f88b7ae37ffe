/*
 * A host's life as an administrator meets it (issue 11, items 7, 8, 10, 11, 12): one default run
 * directory per user, found from anywhere; a VM running on one host cannot be booted by another,
 * by its config file or through its disk image; `kill -9` of a host leaves a console that exits
 * 1, a `list` that says the host died, and leftovers the next host cleans and reports; `shutdown
 * -w` of a paused domain says why it waits; `host --memory` out of range says the range; `create`
 * of a template points at `new-vm`, which rewrites the template's header. Hosts run both in this
 * process and as the bin in child processes; every verb is the bin.
 */
import test from 'ava';
import { execFile } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { startHost, type RunningHost } from '../cli/host.ts';
import { CliProcess, rv } from './helpers/cli.ts';

const ROOT = new URL('..', import.meta.url).pathname;
const TEMPLATE = join(ROOT, 'examples', 'templates', 'small-guest');

let dir = '';
let h1: RunningHost;
const h1Log: string[] = [];
test.before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'rv-hostlife-'));
  h1 = await startHost({ runDir: join(dir, 'run1'), memoryMiB: 128, log: (l) => h1Log.push(l) });
});
test.after.always(async () => {
  await h1?.close();
  rmSync(dir, { recursive: true, force: true });
});

function vmFile(sub: string, name: string, disk: string): string {
  mkdirSync(join(dir, sub), { recursive: true });
  const img = join(dir, sub, disk);
  if (!existsSync(img)) { writeFileSync(img, ''); truncateSync(img, 4 << 20); }
  const p = join(dir, sub, `${name}.cfg`);
  writeFileSync(p, `name = "${name}"\nmemory = 16\ndisk = [ '${disk},raw,xvda,rw' ]\n`);
  return p;
}

test.serial('items 7, 8, 11, 12: the per-user run directory, a second host\'s refusals, and kill -9 cleaned up after', async (t) => {
  // A host started from one directory with no --run-dir: its run directory is the user's default.
  const xdg = join(dir, 'xdg');
  mkdirSync(xdg);
  const env = { XDG_RUNTIME_DIR: xdg, RINGVISOR_RUN_DIR: undefined };
  const runDir = join(xdg, 'ringvisor');
  mkdirSync(join(dir, 'elsewhere'));
  const h2 = new CliProcess(['host', '--memory', '128'], { cwd: dir, env });
  await h2.waitFor(/Try: ringvisor list/);
  t.true(h2.stdout.includes(`run directory ${runDir}`), h2.stdout);
  const at = { cwd: join(dir, 'elsewhere'), env };
  t.regex((await rv(['list'], at)).stdout, /^Domain-0 /m, 'found from another directory');

  // VM a runs on the in-process host; the second host refuses its config, and its image.
  const a = vmFile('vms', 'a', 'a.img');
  t.is((await rv(['--run-dir', h1.runDir, 'create', a])).code, 0);
  const again = await rv(['create', a], at);
  t.is(again.code, 1);
  t.regex(again.stderr, new RegExp(`this VM is running on another host already: .*/vms/run/a\\.json names domain \\d+ of the host process ${process.pid}`));
  const thief = vmFile('vms', 'thief', 'a.img');
  const stolen = await rv(['create', thief], at);
  t.is(stolen.code, 1);
  t.regex(stolen.stderr, new RegExp(`image .*/vms/a\\.img is in use read-write by a \\(host pid ${process.pid}`));

  // VM b runs on the second host, with a console attached; then the host is killed.
  const b = vmFile('vms', 'b', 'b.img');
  t.is((await rv(['create', b], at)).code, 0);
  const stateB = join(dir, 'vms', 'run', 'b.json');
  t.true(existsSync(stateB));
  const console = new CliProcess(['console', 'b'], at);
  await console.waitFor(/ringvisor DomU kernel: b/);
  const hostPid = JSON.parse(readFileSync(join(runDir, 'host.json'), 'utf8')).pid as number;
  h2.child.kill('SIGKILL');
  await h2.exited;
  t.is(await console.exited, 1, 'an attached console fails when its host dies');
  t.regex(console.stderr, /the host closed the connection/);

  // Nothing answers; `list` says the last host died; its leftovers are still there.
  const dead = await rv(['list'], at);
  t.is(dead.code, 1);
  t.regex(dead.stderr, new RegExp(`the last host there \\(pid ${hostPid}, up since .*\\) died without stopping`));
  t.true(existsSync(join(runDir, 'xl', 'socket')), 'a stale socket');
  t.is(JSON.parse(readFileSync(stateB, 'utf8')).pid, hostPid, 'a state file still saying "running"');

  // The next host on that run directory cleans them and says so.
  const log: string[] = [];
  const h3 = await startHost({ runDir, memoryMiB: 128, log: (l) => log.push(l) });
  try {
    t.like(h3.cleanedUp?.host, { pid: hostPid });
    t.deepEqual(h3.cleanedUp?.vms, [`b (domain 1): ${stateB}`]);
    t.is(h3.cleanedUp?.sockets.length, 2);
    t.false(existsSync(stateB));
    t.true(log.some((l) => l.includes(`(pid ${hostPid}, up since`) && l.includes('died without stopping') && l.includes('removed 2 stale socket(s)')), log.join('\n'));
    // b's image was locked by the dead host: stale now, so b boots on the new host.
    const r = await rv(['--run-dir', runDir, 'create', b]);
    t.is(r.code, 0, r.stderr);
  } finally {
    await h3.close();
  }
  t.false(existsSync(join(runDir, 'host.json')), 'a clean stop leaves nothing to clean');
  t.is((await rv(['--run-dir', h1.runDir, 'destroy', 'a'])).code, 0);
});

test.serial('item 10: shutdown -w of a paused domain says it cannot answer until unpaused, and finishes once it is', async (t) => {
  const p = vmFile('ten', 'sleeper', 's.img');
  t.is((await rv(['--run-dir', h1.runDir, 'create', '-p', p])).code, 0);
  const waiting = new CliProcess(['--run-dir', h1.runDir, 'shutdown', '-w', 'sleeper']);
  await waiting.waitFor(/Domain sleeper is paused: it cannot answer the request until it is unpaused \(ringvisor unpause sleeper\)/, 'stderr');
  t.is((await rv(['--run-dir', h1.runDir, 'unpause', 'sleeper'])).code, 0);
  t.is(await waiting.exited, 0);
  t.regex(waiting.stderr, /Domain sleeper is down/);
});

test('item 11: host --memory out of range says the range, and starts nothing', async (t) => {
  const runDir = join(dir, 'never');
  const big = await rv(['--run-dir', runDir, 'host', '--memory', '999999']);
  t.is(big.code, 1);
  t.regex(big.stderr, /--memory 999999: at most \d+ MiB/);
  t.notRegex(big.stderr, /allocation failed/i);
  const small = await rv(['--run-dir', runDir, 'host', '--memory', '1']);
  t.is(small.code, 1);
  t.regex(small.stderr, /--memory 1: a host needs at least 80 MiB \(Dom0 takes 64 MiB/);
  t.false(existsSync(runDir));
});

test.serial('item 11: create of a template points at new-vm; new-vm leaves none of the template\'s words behind', async (t) => {
  const tpl = join(dir, 'tpl');
  cpSync(TEMPLATE, tpl, { recursive: true });
  const r = await rv(['--run-dir', h1.runDir, 'create', tpl]);
  t.is(r.code, 1);
  t.regex(r.stderr, new RegExp(`expected a VM provisioned from it: ringvisor new-vm --from ${tpl} DEST`));
  const made = await rv(['new-vm', '--from', tpl, join(dir, 'web1')]);
  t.is(made.code, 0, made.stderr);
  const text = readFileSync(join(dir, 'web1', 'vm.cfg'), 'utf8');
  t.regex(text, /^# VM web1, provisioned by `ringvisor new-vm` from a template on \d{4}-\d\d-\d\d\.\n/);
  t.notRegex(text, /^template\s*=/m);
  t.notRegex(text, /The marker|cannot be powered on|ringvisor template:/);
  t.notRegex(text, /\n\n\n/, 'no gap left where the marker was');
});

test('item 11: an emulated CD-ROM is refused as the toolstack README says (no ATAPI drive)', async (t) => {
  const readme = readFileSync(join(ROOT, 'dom0', 'toolstack', 'config', 'README.md'), 'utf8');
  t.regex(readme, /no ATAPI CD-ROM drive/);
  mkdirSync(join(dir, 'cd'), { recursive: true });
  writeFileSync(join(dir, 'cd', 'd.iso'), Buffer.alloc(2048));
  const p = join(dir, 'cd', 'hvm.cfg');
  writeFileSync(p, 'name = "cd"\ntype = "hvm"\nmemory = 16\ndisk = [ \'d.iso,raw,hdc,devtype=cdrom\' ]\n');
  const r = await rv(['--run-dir', h1.runDir, 'create', p]);
  t.is(r.code, 1);
  t.true(r.stderr.includes(`${p}:4:`), r.stderr);
  t.regex(r.stderr, /ringvisor emulates no CD-ROM drive/);
});

test('item 11: vms/ and the compiled dist/ are ignored by git', async (t) => {
  const ignored = (p: string) => promisify(execFile)('git', ['check-ignore', '-q', p], { cwd: ROOT }).then(() => true, () => false);
  t.true(await ignored('vms/web1/vm.cfg'));
  t.true(await ignored('dist/cli/main.js'));
  t.false(await ignored('cli/main.ts'), 'the check can fail');
});

test('item 11: the command line compiles to JavaScript that runs without tsx (what npm install\'s prepare builds)', async (t) => {
  const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { scripts: Record<string, string> };
  t.regex(pkg.scripts.prepare ?? '', /tsc -p tsconfig\.build\.json/);
  // Inside the checkout (its git-ignored tmp/), so that the emitted code finds node_modules as dist/ does.
  const out = join(ROOT, 'tmp', `dist-test-${process.pid}`);
  t.teardown(() => rmSync(out, { recursive: true, force: true }));
  await promisify(execFile)(process.execPath, [join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', join(ROOT, 'tsconfig.build.json'), '--outDir', out]);
  const none = join(dir, 'no-host');
  const script = `const { run } = await import(${JSON.stringify(join(out, 'cli', 'main.js'))}); process.exitCode = await run(['--run-dir', ${JSON.stringify(none)}, 'list'], process);`;
  const env = { ...process.env };
  delete env.NODE_OPTIONS; // no tsx loader: plain Node
  const r = await promisify(execFile)(process.execPath, ['--input-type=module', '-e', script], { env }).then(
    () => ({ code: 0, stderr: '' }), (e: { code: number; stderr: string }) => ({ code: e.code, stderr: e.stderr }));
  t.is(r.code, 1);
  t.is(r.stderr.trim(), `no ringvisor host is running at ${none}/xl/socket; start one with \`ringvisor host\``);
});
