/*
 * The toolstack's lifecycle of a VM, as libxl and xl run it: reboot through control/shutdown (PV:
 * SCHEDOP_shutdown; HVM: the reset register) with the devices and the device model built again;
 * a crash kept for inspection by on_crash = "preserve"; a guest without PV control refused unless
 * forced (-F); and a domain destroyed behind the toolstack's back, which it learns of through
 * VIRQ_DOM_EXC and cleans up after. The host runs in this process; the toolstack is driven over
 * its control socket (cli/client.ts), as the command line does.
 */
import test from 'ava';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { XlClient } from '../cli/client.ts';
import { startHost, type RunningHost } from '../cli/host.ts';
import { xsOpen } from '../dom0/lib/libxenstore.ts';
import type { BlockListRow, CreateResult, ListedDomain } from '../dom0/toolstack/protocol.ts';
import type { XenbusClient } from '../shared/kernel/xenbus/client.ts';
import { consoleText } from '../scenarios/lib/console.ts';
import { bounded } from '../scenarios/lib/hang.ts';
import { LineLog } from '../scenarios/lib/line-log.ts';

let dir = '';
let rh: RunningHost;
let xl: XlClient;
let xs: XenbusClient;
const log = new LineLog('the host\'s log');

test.before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'rv-life-'));
  rh = await startHost({
    runDir: join(dir, 'run'), memoryMiB: 160,
    log: log.add,
  });
  xl = await XlClient.open(rh.runDir);
  xs = await xsOpen(rh.xenstoredSocket);
});
test.after.always(async () => {
  xs?.close();
  xl?.close();
  await rh?.close();
  rmSync(dir, { recursive: true, force: true });
});

async function logLine(re: RegExp): Promise<void> {
  await log.waitFor(re);
}

/** A VM directory with this config body (plus name and a 4 MiB disk created on first start). */
function vm(name: string, body: string): string {
  const d = join(dir, name);
  mkdirSync(d);
  writeFileSync(join(d, 'vm.cfg'), `name = "${name}"\nmemory = 16\ncreate_images = [ "disk.img=4" ]\non_crash = "preserve"\n${body}\n`);
  return d;
}

const list = () => xl.call<ListedDomain[]>({ verb: 'list' });

/** Wait until the domain's console (its output so far, then live) matches `re`. */
async function consoleSays(domain: string, re: RegExp): Promise<void> {
  await consoleText(rh.runDir, domain, re);
}

/** Wait (on a XenStore watch) until `path` holds `value`. */
async function nodeIs(path: string, value: string): Promise<void> {
  let done!: () => void;
  const reached = new Promise<void>((r) => { done = r; });
  let last: string | null = null;
  const w = await xs.watch(path, async () => { if ((last = await xs.tryRead(path)) === value) done(); });
  try {
    await bounded(reached, () => `waiting for XenStore ${path} to hold ${value}; it holds ${last ?? 'nothing'}`);
  } finally {
    await w.unwatch();
  }
}

test.serial('reboot: a PV guest restarts itself through control/shutdown, and comes back with its disk', async (t) => {
  const d = vm('pv-reboot', `disk = [ 'disk.img,raw,xvda,rw' ]\nworkload = "idle"`);
  const first = await xl.call<CreateResult>({ verb: 'create', path: d });
  await xl.call({ verb: 'shutdown', domain: 'pv-reboot', kind: 'reboot' });
  await xl.call({ verb: 'wait', domain: String(first.domid) });
  await logLine(/xl: pv-reboot restarted as domain \d+/);
  const again = (await list()).find((x) => x.name === 'pv-reboot')!;
  t.not(again.domid, first.domid, 'a restart is a new domain');
  await consoleSays(String(again.domid), /workload idle/);
  const rows = await xl.call<BlockListRow[]>({ verb: 'block-list', domain: 'pv-reboot' });
  t.is(rows.length, 1);
  t.is(rows[0]!.backendPath, `/local/domain/0/backend/vbd/${again.domid}/51712`);
  t.is(await xs.tryRead(`/local/domain/0/backend/vbd/${first.domid}`), null, 'the old backend is gone');
  const consoleLog = readFileSync(join(d, 'console.log'), 'utf8');
  t.regex(consoleLog, /control\/shutdown says reboot[\s\S]*Restarting system[\s\S]*ringvisor DomU kernel: pv-reboot/);
  await xl.call({ verb: 'destroy', domain: 'pv-reboot' });
});

test.serial('reboot of an HVM guest: its reset register traps, and the device model starts again for the new domain', async (t) => {
  const d = vm('hvm-reboot', `type = "hvm"\ndisk = [ 'disk.img,raw,hda,rw' ]\nworkload = "idle"`);
  const first = await xl.call<CreateResult>({ verb: 'create', path: d });
  await nodeIs(`/local/domain/${first.domid}/control/feature-reboot`, '1'); // an HVM guest is asked once its PV drivers are up
  await xl.call({ verb: 'shutdown', domain: 'hvm-reboot', kind: 'reboot' });
  await xl.call({ verb: 'wait', domain: String(first.domid) });
  await logLine(/xl: hvm-reboot restarted as domain \d+/);
  t.true(log.lines.some((l) => /domain \d+ \(hvm-reboot\) has shut down, reason reboot/.test(l)));
  const again = (await list()).find((x) => x.name === 'hvm-reboot')!;
  t.not(again.domid, first.domid);
  await nodeIs(`/local/domain/${again.domid}/control/feature-poweroff`, '1');
  // Power it off (ACPI S5 this time) and look at both boots in its log.
  await xl.call({ verb: 'shutdown', domain: String(again.domid), kind: 'poweroff' });
  await xl.call({ verb: 'wait', domain: String(again.domid) });
  await logLine(new RegExp(`xl: domain ${again.domid} \\(hvm-reboot\\) destroyed`));
  const consoleLog = readFileSync(join(d, 'console.log'), 'utf8');
  t.is(consoleLog.match(/ata_piix: hda:/g)?.length, 2, 'the second boot found its disk: a fresh device model served it');
  t.regex(consoleLog, /Restarting system[\s\S]*Power down/);
  t.falsy((await list()).find((l) => l.name === 'hvm-reboot'));
});

test.serial('on_crash = "preserve": a crashed guest stays, stopped, for inspection, until destroyed', async (t) => {
  const d = vm('crasher', `disk = [ 'disk.img,raw,xvda,rw' ]\nworkload = "idle"`);
  const c = await xl.call<CreateResult>({ verb: 'create', path: d });
  const con = await XlClient.open(rh.runDir);
  let seen = '';
  let ready!: () => void;
  const booted = new Promise<void>((r) => { ready = r; });
  const session = await con.console('crasher', (b) => {
    seen += Buffer.from(b).toString();
    if (seen.includes('workload idle')) ready();
  }, () => undefined);
  await booted;
  session.send(new TextEncoder().encode('crash\r'));
  await logLine(/domain \d+ \(crasher\) has shut down, reason crash; on_crash = preserve/);
  con.close();
  const kept = (await list()).find((x) => x.domid === c.domid)!;
  t.true(kept.shutdown);
  t.is(kept.shutdownReason, 'crash');
  t.true(kept.memMiB > 0, 'its memory is kept');
  const state = JSON.parse(readFileSync(join(d, 'run', 'domain.json'), 'utf8')) as { state: string; shutdownReason: string };
  t.deepEqual([state.state, state.shutdownReason], ['shutdown', 'crash']);
  await xl.call({ verb: 'destroy', domain: 'crasher' });
  t.falsy((await list()).find((x) => x.name === 'crasher'));
  t.is(await xs.tryRead(`/local/domain/${c.domid}/name`), null);
  t.false(existsSync(join(d, 'run', 'domain.json')));
});

test.serial('shutdown of an HVM guest without PV control is refused unless forced (-F), which stops it from outside', async (t) => {
  const d = vm('mute', `type = "hvm"\ndisk = [ 'disk.img,raw,hda,rw' ]\nworkload = "idle"`);
  // Paused at creation, the guest has not said it answers control/shutdown.
  const c = await xl.call<CreateResult>({ verb: 'create', path: d, paused: true });
  const refused = await t.throwsAsync(xl.call({ verb: 'shutdown', domain: 'mute', kind: 'poweroff' }));
  t.regex(refused!.message, /HVM guest whose PV drivers have not enabled PV control .* use -F/);
  t.is(await xl.call<string>({ verb: 'shutdown', domain: 'mute', kind: 'poweroff', force: true }), 'forced');
  await xl.call({ verb: 'wait', domain: String(c.domid) }).catch(() => undefined); // may be gone already
  await logLine(new RegExp(`xl: domain ${c.domid} \\(mute\\) destroyed`));
  t.falsy((await list()).find((x) => x.name === 'mute'));
});

test.serial('VIRQ_DOM_EXC: a domain destroyed behind the toolstack\'s back is cleaned up after', async (t) => {
  const d = vm('orphan', `disk = [ 'disk.img,raw,xvda,rw' ]\nworkload = "idle"`);
  const mappings = rh.host.usage().grantMappings;
  const c = await xl.call<CreateResult>({ verb: 'create', path: d });
  await nodeIs(`/local/domain/0/backend/vbd/${c.domid}/51712/state`, '4'); // Connected: rings mapped
  t.not(await xs.tryRead(`/local/domain/0/backend/vbd/${c.domid}/51712/state`), null);
  await rh.host.destroy(c.domid); // the hypervisor's own destroy: nobody tells Dom0 but the virq
  await logLine(new RegExp(`xl: domain ${c.domid} \\(orphan\\) is gone; cleaning up after it`));
  await logLine(new RegExp(`xl: domain ${c.domid} \\(orphan\\) destroyed`));
  t.is(await xs.tryRead(`/local/domain/${c.domid}/name`), null, 'its XenStore home');
  t.is(await xs.tryRead(`/local/domain/0/backend/vbd/${c.domid}`), null, 'its backend directory');
  t.false(existsSync(join(d, 'run', 'domain.json')), 'its state file');
  t.is(rh.host.usage().grantMappings, mappings, 'blkback let go of its rings and grants before its directory went');
});
