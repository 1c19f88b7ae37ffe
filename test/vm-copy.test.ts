/*
 * "Copying the directory copies the server" (DESIGN.md section 9; the lecture's VM files): a VM
 * directory copied by hand is the same server, so the host refuses to run it beside the original
 * (same name, UUID and MAC, each named at its file:line); once provisioned it is a second server
 * with its own identity, and both run side by side, each with its own disk image, XenStore entry
 * and MAC.
 */
import test from 'ava';
import { cpSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startHost } from '../cli/host.ts';
import { xsOpen } from '../dom0/lib/libxenstore.ts';
import { loadVmDir, provisionInPlace } from '../dom0/toolstack/config/vmdir.ts';
import { rv } from './helpers/cli.ts';

const TEMPLATE = new URL('../examples/templates/small-guest', import.meta.url).pathname;

test('a copied VM boots as a second server only once provisioned; then both run side by side', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'rv-copy-'));
  const rh = await startHost({ runDir: join(dir, 'run'), memoryMiB: 160, log: () => undefined });
  const xs = await xsOpen(rh.xenstoredSocket);
  const at = ['--run-dir', rh.runDir];
  try {
    const a = join(dir, 'vms', 'alpha');
    t.is((await rv(['new-vm', '--from', TEMPLATE, a])).code, 0);
    t.is((await rv([...at, 'create', a])).code, 0);

    // By hand, while alpha runs: config, disk image, even its run-time files.
    const b = join(dir, 'vms', 'beta');
    cpSync(a, b, { recursive: true });
    const refused = await rv([...at, 'create', b]);
    t.is(refused.code, 1);
    for (const what of ['name "alpha"', 'uuid \\S+', 'mac \\S+']) {
      t.regex(refused.stderr, new RegExp(`${b}/vm\\.cfg:\\d+: ${what} is also used by ${a}/vm\\.cfg:\\d+`));
    }
    t.regex(refused.stderr, /nothing was started/);

    provisionInPlace(b); // the lecture's "few configuration changes": name, UUID, MAC
    t.is(loadVmDir(b).config.name, 'beta', 'named after its directory');
    const started = await rv([...at, 'create', b]);
    t.is(started.code, 0, started.stderr);

    // And a third through the command line: copy + provision in one step.
    const c = join(dir, 'vms', 'gamma');
    t.is((await rv(['new-vm', '--from', a, c])).code, 0);
    t.is((await rv([...at, 'create', c])).code, 0);

    const vms = [a, b, c].map((d) => loadVmDir(d).config);
    t.deepEqual(vms.map((v) => v.name), ['alpha', 'beta', 'gamma']);
    t.is(new Set(vms.map((v) => v.uuid)).size, 3);
    t.is(new Set(vms.map((v) => v.vifs[0]!.mac)).size, 3);
    t.true(vms.every((v) => /^00:16:3e:/.test(v.vifs[0]!.mac!)), 'MACs in Xen\'s OUI');
    t.is(new Set(vms.map((v) => v.disks[0]!.path)).size, 3, 'each its own disk image');

    const list = (await rv([...at, 'list'])).stdout;
    for (const v of vms) {
      const m = new RegExp(`^${v.name} +(\\d+) +32 +1 +[r-][b-]----`, 'm').exec(list);
      t.truthy(m, list);
      const domid = m![1];
      t.is(await xs.read(`/local/domain/${domid}/vm`), `/vm/${v.uuid}`);
      t.is(await xs.read(`/vm/${v.uuid}/name`), v.name);
    }
  } finally {
    xs.close();
    await rh.close();
    rmSync(dir, { recursive: true, force: true });
  }
});
