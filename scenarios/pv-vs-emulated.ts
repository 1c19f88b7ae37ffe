/*
 * Scenario "pv-vs-emulated" (the default): the same workload on a paravirtual disk and on an
 * emulated one, booted from the shipped VM directories by the toolstack, narrated as it happens.
 *
 * What it shows, in the order it happens: a host boots (hypervisor, Dom0 with xenstored,
 * xenconsoled, blkback and the xl daemon); the two example VMs (examples/vms, copied to a
 * temporary directory so the repository stays as it is) are created through the toolstack's
 * control socket, as `ringvisor create` does; the XenStore handshake of the PV disk is watched
 * live from xenstored's socket; each guest's console streams in; each runs disk-check (a 16 MiB
 * pattern written sequentially, then read back sequentially and compared, 4 KiB requests, 8 in
 * flight), powers itself off, and the toolstack tears it down. The summary puts the two paths
 * side by side, with the hypervisor's counters that explain the difference.
 *
 * Everything printed is measured in this run; nothing is a stored figure.
 */
import { cpSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { xsOpen } from '../dom0/lib/libxenstore.ts';
import type { CreateResult } from '../dom0/toolstack/protocol.ts';
import { XlClient } from '../cli/client.ts';
import { startHost } from '../cli/host.ts';
import type { Host, ShutdownEvent } from '../hypervisor/host.ts';
import { RESULT_PREFIX } from '../domu/workloads/run.ts';
import { xenbusStateName } from '../shared/public/io/xenbus.ts';
import { DEFAULT_WAIT_POLICY, type WaitPolicy } from '../shared/wait.ts';
import type { ScenarioOptions } from './registry.ts';
import { SCENARIO_BOUND_S, bounded, lastLines } from './lib/hang.ts';
import { LineLog } from './lib/line-log.ts';

const WAIT_WORDS: Record<WaitPolicy, string> = {
  irq: 'every waiter sleeps on its event, as Linux\'s drivers take an interrupt',
  poll: 'every waiter spins up to 200 µs before sleeping, as blk-mq\'s polled I/O',
};

const EXAMPLES = new URL('../examples/vms/', import.meta.url);

/* One request's way to the disk on each path: what the counters in the summary count. */
const PATHS: Readonly<Record<string, readonly string[]>> = {
  'guest-pv': [
    'A request\'s path: blkfront puts a blkif_request (sector, grant refs of the data pages) in a free slot of the',
    'shared ring and publishes req_prod; it sends an event to Dom0 only if blkback asked to be woken (req_event).',
    'blkback copies the slot out, maps the grants (once: they are persistent), does the I/O on disk.img, puts the',
    'response in the ring, and sends an event back only if blkfront is asleep.',
  ],
  'guest-hvm': [
    'A request\'s path: the IDE driver writes a PRD table (where the data is in its RAM), then programs the controller:',
    'about a dozen port reads and writes, and each one traps. The hypervisor puts an ioreq in the vCPU\'s slot, sends an',
    'event to the device model in Dom0 and blocks the vCPU until the model answers. On START DMA the model walks the',
    'PRD table through foreign mappings of the guest\'s RAM (its mapcache), does the I/O on disk.img, and raises IRQ 14:',
    'an event to the guest, whose driver reads the status register (one more trap) to finish the command.',
  ],
};

interface GuestRun {
  name: string;
  path: 'pv' | 'emu-dma';
  domid: number;
  result: Record<string, unknown> & { device: Record<string, number> };
  domU: Record<string, number>;
  dom0: Record<string, number>;
  reason: string;
}

export async function pvVsEmulated(say: (line: string) => void, opts: ScenarioOptions = { wait: DEFAULT_WAIT_POLICY }): Promise<void> {
  const work = mkdtempSync(join(tmpdir(), 'rv-'));
  const t0 = performance.now();
  say('ringvisor: one workload, two ways to a disk');
  say('  a PV guest reaches its disk through a split driver (blkfront → shared ring + grants + events → blkback);');
  say('  an HVM guest drives an emulated IDE controller, and every register access traps to the hypervisor,');
  say('  which hands it to a device model in Dom0 (QEMU\'s job in Xen).');
  say(`  Waiting policy: ${opts.wait} (${WAIT_WORDS[opts.wait]}), the same for both paths: blkfront, blkback, the IDE driver,`);
  say('  the device model and the trapping vCPU (shared/wait.ts; `npm start -- --wait irq|poll`).');
  say('');
  let echoDom0 = false;
  const dom0 = new LineLog('Dom0\'s log', SCENARIO_BOUND_S);
  const rh = await startHost({
    runDir: join(work, 'run'), memoryMiB: 160, wait: opts.wait,
    log: (l) => {
      if (echoDom0 && /\(d0\) xl: /.test(l)) say(`     dom0 | ${l.replace(/^\(d0\) /, '')}`);
      dom0.add(l);
    },
  });
  say('1. The host is up: its main thread is the hypervisor\'s control thread; Dom0 (domain 0) runs xenstored, xenconsoled,');
  say('   blkback and the toolstack daemon (libxl\'s part of xl), which listens on a Unix socket in the run directory.');
  echoDom0 = true;
  const xl = await XlClient.open(rh.runDir);
  const xs = await xsOpen(rh.xenstoredSocket);
  try {
    cpSync(EXAMPLES, join(work, 'vms'), { recursive: true });
    say(`2. The example VMs are copied to ${join(work, 'vms')} (a VM is a directory: vm.cfg + its disk image).`);
    say('   Their images are not shipped: the toolstack creates each one, sparse, the first time the VM starts.');
    // The handshake, as a XenStore watcher sees it: every state key under the domains' homes.
    const seen = new Map<string, string>();
    await xs.watch('/local/domain', async (path) => {
      const m = /^\/local\/domain\/(\d+)\/(?:device\/vbd\/(\d+)|backend\/vbd\/(\d+)\/(\d+))\/state$/.exec(path);
      if (!m) return;
      const v = await xs.tryRead(path);
      const front = m[2] !== undefined;
      const who = front ? `frontend (d${m[1]} blkfront)` : `backend  (d0 blkback) `;
      if (v === null) {
        if (!seen.has(path) || seen.get(path) === 'gone') return;
        seen.set(path, 'gone');
        say(`     xenstore | ${who} ${path.replace(/\/state$/, '')}: removed ` +
          `(${front ? 'xenstored released the dead domain\'s nodes' : 'the toolstack removed the backend'})`);
        return;
      }
      if (seen.get(path) === v) return;
      seen.set(path, v);
      say(`     xenstore | ${who} ${path.replace(/\/state$/, '')}: ${xenbusStateName(Number(v))}`);
    });

    const runs: GuestRun[] = [];
    for (const [i, name] of ['guest-pv', 'guest-hvm'].entries()) {
      say('');
      say(`${3 + i}. ringvisor create ${name}   (${name === 'guest-pv' ? 'type = "pv", disk xvda: a PV block device' : 'type = "hvm", disk hda: the emulated IDE disk'})`);
      for (const line of PATHS[name]!) say(`   ${line}`);
      runs.push(await runGuest(xl, rh.host, dom0, join(work, 'vms', name), name, say));
    }
    say('');
    summary(runs, say, opts.wait);
    say('');
    say(`Done in ${((performance.now() - t0) / 1000).toFixed(1)} s. Next: \`npx ringvisor host\` and the xl-like verbs (README.md),`);
    say('`npm start -- ring-tour` for the ring alone, `npm run bench` for the full comparison.');
  } finally {
    echoDom0 = false;
    xs.close();
    xl.close();
    await rh.close();
    rmSync(work, { recursive: true, force: true });
  }
}

/* Create one VM through the toolstack, stream its console, and collect what it and the hypervisor counted. */
async function runGuest(xl: XlClient, host: Host, dom0Log: LineLog, dir: string, name: string,
  say: (line: string) => void): Promise<GuestRun> {
  const dom0Before = host.counters(0);
  let shutdownAt: { domU: Record<string, number>; dom0: Record<string, number>; reason: string } | null = null;
  let domid = -1;
  const stopped = new Promise<void>((resolve) => {
    const onShutdown = (e: ShutdownEvent) => {
      if (e.name !== name) return;
      // Taken as the guest stops, before Dom0 destroys it: the counters of its whole life.
      shutdownAt = { domU: host.counters(e.domid), dom0: host.counters(0), reason: e.reason };
      host.off('shutdown', onShutdown);
      // The lecture's Ring 0 point: the guest "switches the machine off"; only its domain stops.
      say(`     hypervisor | domain ${e.domid} stopped (${e.reason}) by ${e.detail}; only it stops, and VIRQ_DOM_EXC goes to Dom0`);
    };
    const onDestroyed = (e: { domid: number; name: string }) => {
      if (e.name !== name || shutdownAt === null) return;
      host.off('destroyed', onDestroyed);
      resolve();
    };
    host.on('shutdown', onShutdown);
    host.on('destroyed', onDestroyed);
  });
  const created = await xl.call<CreateResult>({ verb: 'create', path: dir });
  domid = created.domid;
  for (const img of created.imagesCreated) say(`     toolstack: created ${img} (sparse)`);
  say(`     toolstack: domain ${domid} built paused, XenStore home written, ${name === 'guest-pv'
    ? 'vbd 51712 (xvda) added for blkback' : 'IDE device model started in Dom0 (ports 0x1f0-0x1f7, 0x3f6, bus master)'}, unpaused`);
  let result: GuestRun['result'] | null = null;
  let partial = '';
  const consoleClosed = new Promise<void>((resolve) => {
    void xl.console(String(domid), (bytes) => {
      partial += Buffer.from(bytes).toString('utf8');
      let nl: number;
      while ((nl = partial.indexOf('\n')) >= 0) {
        const line = partial.slice(0, nl).replace(/\r$/, '');
        partial = partial.slice(nl + 1);
        if (line.startsWith(RESULT_PREFIX)) result = JSON.parse(line.slice(RESULT_PREFIX.length)) as GuestRun['result'];
        else say(`  ${name.padStart(9)} | ${line}`);
      }
    }, () => resolve());
  });
  // A guest that never powers off (a driver that hangs) fails the scenario, with what it said last.
  await bounded(stopped, () => `waiting for ${name} (d${domid}) to power off; Dom0's last lines:\n${lastLines(dom0Log.lines)}\n` +
    `and it printed last: ${partial || '(a whole line)'}`, SCENARIO_BOUND_S);
  await consoleClosed;
  // The toolstack's cleanup (backends, XenStore, state file) ends with this line in Dom0's log.
  await dom0Log.waitFor(new RegExp(`xl: domain ${domid} \\(${name}\\) destroyed`));
  if (result === null || shutdownAt === null) throw new Error(`${name} stopped without a result:\n${partial}`);
  const at = shutdownAt as { domU: Record<string, number>; dom0: Record<string, number>; reason: string };
  if (at.reason !== 'poweroff') throw new Error(`${name} stopped for ${at.reason}, not a power-off`);
  const r = result as GuestRun['result'];
  const dom0 = Object.fromEntries(Object.entries(at.dom0).map(([k, v]) => [k, v - (dom0Before[k] ?? 0)]));
  return { name, path: r.path as GuestRun['path'], domid, result: r, domU: at.domU, dom0, reason: at.reason };
}

function summary(runs: readonly GuestRun[], say: (line: string) => void, wait: WaitPolicy): void {
  say(`Summary: disk-check, 16 MiB written then read back and compared, 4 KiB requests, 8 in flight, wait=${wait}`);
  const rows: [string, (g: GuestRun) => string][] = [
    ['path', (g) => (g.path === 'pv' ? 'PV (blkfront/blkback)' : 'emulated IDE, DMA')],
    ['read MB/s', (g) => (g.result.readMBps as number).toFixed(1)],
    ['write MB/s', (g) => (g.result.writeMBps as number).toFixed(1)],
    ['data check', (g) => (g.result.verified ? 'every byte OK' : 'MISMATCH')],
    ['requests', (g) => String(g.result.requests)],
    ['traps per request', (g) => per(g.domU.traps, g)],
    ['ioreqs per request', (g) => per(g.domU.ioreqs, g)],
    ['notifications per request', (g) => `${per(g.domU.notifications, g)} → Dom0, ${per(g.dom0.notifications, g)} ← Dom0`],
    ['grant maps per request', (g) => per(g.dom0.grant_maps, g)],
    ['foreign maps per request', (g) => per(g.dom0.foreign_maps, g)],
    ['hypercalls per request', (g) => `${per(g.domU.hypercalls, g)} guest, ${per(g.dom0.hypercalls, g)} Dom0`],
  ];
  const w = Math.max(...rows.map(([k]) => k.length));
  const col = Math.max(24, ...runs.flatMap((g) => rows.map(([, f]) => f(g).length)));
  say(`  ${''.padEnd(w)}  ${runs.map((g) => g.name.padEnd(col)).join('  ')}`);
  for (const [k, f] of rows) say(`  ${k.padEnd(w)}  ${runs.map((g) => f(g).padEnd(col)).join('  ')}`);
  const [pv, emu] = runs;
  if (pv && emu) {
    const ratio = (pv.result.readMBps as number) / (emu.result.readMBps as number);
    say(`  PV read ${ratio.toFixed(1)}× the emulated disk's, in this one run (one run is noisy: \`npm run bench\` takes medians).`);
    say('  The counters are the hypervisor\'s (traps, ioreqs, notifications, grant and foreign maps, hypercalls), over each');
    say('  guest\'s whole life: boot, handshake and console included.');
    say('  Why: a PV request is one ring slot; blkfront grants its pages once and keeps them (persistent grants), and');
    say(wait === 'poll'
      ? '  both ends spin before they sleep (wait=poll), so most requests need no notification at all. An emulated request is a'
      : '  one event each way covers every request either end finds on the ring when it wakes (wait=irq). An emulated request is a');
    say(`  dozen register accesses (${per(emu.domU.traps, emu)} traps per request here), each a round trip through the hypervisor to`);
    say('  the device model and back, plus an interrupt.');
  }
}

function per(n: number | undefined, g: GuestRun): string {
  return ((n ?? 0) / (g.result.requests as number)).toFixed(3);
}
