/*
 * The command line as a new user meets it: `ringvisor host` in the background on a fresh run
 * directory, then new-vm, create, list, xenstore-ls, block-list, console (attach, see the guest,
 * type at it, detach with Ctrl-]), shutdown, destroy, each as its own process, checked by its
 * output and exit code; then the host stops on SIGTERM and leaves the VM directory tidy.
 */
import test from 'ava';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CliProcess, rv } from './helpers/cli.ts';

const TEMPLATE = new URL('../examples/templates/small-guest', import.meta.url).pathname;

test('host, new-vm, create, list, xenstore-ls, block-list, console, shutdown, destroy: a session through the bin', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'rv-cli-'));
  const runDir = join(dir, 'run');
  const host = new CliProcess(['host', '--run-dir', runDir]);
  try {
    await host.waitFor(/ringvisor host up/);
    const at = ['--run-dir', runDir];

    const nv = await rv(['new-vm', '--from', TEMPLATE, '--name', 'web1', join(dir, 'web1')]);
    t.is(nv.code, 0, nv.stderr);
    t.regex(nv.stdout, /Created VM web1 .* uuid [0-9a-f-]{36}, mac 00:16:3e:/);

    const created = await rv([...at, 'create', join(dir, 'web1')]);
    t.is(created.code, 0, created.stderr);
    t.regex(created.stdout, /Started domain web1 \(id=(\d+)\)/);
    const domid = /id=(\d+)/.exec(created.stdout)![1]!;
    t.regex(created.stderr, /created disk image .*disk\.img/, 'the image is made on first start');
    t.true(existsSync(join(dir, 'web1', 'run', 'domain.json')), 'a run-time state file in the VM directory');

    const list = await rv([...at, 'list']);
    t.is(list.code, 0);
    t.regex(list.stdout, /^Name {40}ID {3}Mem VCPUs\tState\tTime\(s\)$/m);
    t.regex(list.stdout, /^Domain-0 +0 +64 +1 +[r-][b-]----/m);
    t.regex(list.stdout, new RegExp(`^web1 +${domid} +32 +1 +[r-][b-]----`, 'm'));

    // create returns once the domain is built and unpaused, not once its kernel has booted: ask
    // until the guest has written its control features and its disk is connected (bounded).
    let ls = await rv([...at, 'xenstore-ls', `/local/domain/${domid}`]);
    for (let i = 0; i < 200 && ls.code === 0 && !(/^ feature-poweroff = "1"$/m.test(ls.stdout) && /^ {3}state = "4"$/m.test(ls.stdout)); i++) {
      await new Promise((r) => setTimeout(r, 50));
      ls = await rv([...at, 'xenstore-ls', `/local/domain/${domid}`]);
    }
    t.is(ls.code, 0);
    t.regex(ls.stdout, /^name = "web1"$/m);
    t.regex(ls.stdout, /^ vbd = ""$/m);
    t.regex(ls.stdout, /^ feature-poweroff = "1"$/m, 'the guest answers control/shutdown');

    const bl = await rv([...at, 'block-list', 'web1']);
    t.is(bl.code, 0);
    t.regex(bl.stdout, new RegExp(`^51712 0   ${domid} +4 +\\d+ +\\d+ +/local/domain/0/backend/vbd/${domid}/51712`, 'm'));

    // Attach: what the guest printed so far arrives, typing reaches it, Ctrl-] detaches and leaves it running.
    const cons = new CliProcess([...at, 'console', 'web1']);
    await cons.waitFor(/workload idle/);
    cons.write('disks\r');
    await cons.waitFor(/xvda: pv, 32768 sectors/);
    cons.write('\x1d');
    t.is(await cons.exited, 0);
    t.regex(readFileSync(join(dir, 'web1', 'console.log'), 'utf8'), /xvda: pv, 32768 sectors/, 'xenconsoled logged it too');
    t.regex((await rv([...at, 'list', 'web1'])).stdout, /^web1 /m, 'still running after detach');

    // A cooperative shutdown: the guest reads control/shutdown and powers off; on_poweroff destroys it.
    const sd = await rv([...at, 'shutdown', '-w', 'web1']);
    t.is(sd.code, 0, sd.stderr);
    const gone = await rv([...at, 'list', 'web1']);
    t.is(gone.code, 1);
    t.regex(gone.stderr, /web1 is an invalid domain identifier/);
    t.false(existsSync(join(dir, 'web1', 'run', 'domain.json')), 'the state file goes with the domain');
    t.regex(readFileSync(join(dir, 'web1', 'console.log'), 'utf8'), /control\/shutdown says poweroff[\s\S]*Power down/);

    // destroy, the forced way.
    t.is((await rv([...at, 'create', join(dir, 'web1')])).code, 0);
    const d = await rv([...at, 'destroy', 'web1']);
    t.is(d.code, 0, d.stderr);
    t.notRegex((await rv([...at, 'list'])).stdout, /web1/);
    t.is((await rv([...at, 'destroy', 'web1'])).code, 1, 'destroying what is not there fails');
  } finally {
    host.child.kill('SIGTERM');
    t.is(await host.exited, 0);
    t.regex(host.stdout, /host stopped/);
    rmSync(dir, { recursive: true, force: true });
  }
});
