/*
 * Live migration between two hosts on this machine (dom0/toolstack/migration/migrate.ts): a guest
 * rewriting a 4 MiB working set (mem-touch) moves over a loopback TCP connection with precopy
 * rounds under log-dirty; the target's memory equals the source's at the suspend (checksums), and
 * the workload carries on there, verifying every page written before the move. A receiver that
 * dies mid-stream leaves the source guest running.
 */
import test from 'ava';
import { createHash } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { createServer, type Socket } from 'node:net';
import { join } from 'node:path';
import type { RunningHost } from '../cli/host.ts';
import { twoHosts } from './helpers/two-hosts.ts';
import { MIGRATE_RECEIVER_BANNER, type MigrateResult } from '../dom0/toolstack/migration/migrate.ts';
import type { CreateResult, ListedDomain } from '../dom0/toolstack/protocol.ts';
import { MAX_GUEST_PAGES, P2M_MFN_MASK, P2M_PRESENT } from '../hypervisor/state.ts';
import { PAGE_SIZE } from '../shared/public/xen.ts';
import { consoleMatch } from '../scenarios/lib/console.ts';

const H = twoHosts(test, 'rv-mig-', 96);
const MEM_PAGES = 32 * 256;

function vm(name: string): string {
  const d = join(H.dir, name);
  mkdirSync(d);
  writeFileSync(join(d, 'vm.cfg'), `name = "${name}"\nmemory = 32\ncreate_images = [ "disk.img=4" ]\non_crash = "preserve"\n` +
    `disk = [ 'disk.img,raw,xvda,rw' ]\nworkload = "mem-touch"\nworkload_args = [ "wss=4" ]\n`);
  return d;
}

async function consoleSays(rh: RunningHost, domain: string, re: RegExp): Promise<RegExpMatchArray> {
  return await consoleMatch(rh.runDir, domain, re);
}

/** sha256 of every RAM page but the builder's last three, read through the domain's P2M. */
function memorySums(rh: RunningHost, domid: number): string[] {
  const hv = rh.host.hv;
  const out: string[] = [];
  for (let g = 0; g < MEM_PAGES - 3; g++) {
    const e = hv.p2m[domid * MAX_GUEST_PAGES + g];
    if ((e & P2M_PRESENT) === 0) { out.push('absent'); continue; }
    const at = (e & P2M_MFN_MASK) * PAGE_SIZE;
    out.push(createHash('sha256').update(hv.mem8.subarray(at, at + PAGE_SIZE)).digest('hex'));
  }
  return out;
}

test.serial('a guest writing its working set moves to the other host: same memory, and its workload carries on', async (t) => {
  const created = await H.xa.call<CreateResult>({ verb: 'create', path: vm('mover') });
  await consoleSays(H.a, 'mover', /mem-touch: pass 1 done/);

  // The source's memory at the moment it suspends (its vCPUs have stopped; nothing writes it any more).
  let atSuspend: string[] = [];
  H.a.host.once('shutdown', (e: { domid: number; reason: string }) => {
    if (e.domid === created.domid && e.reason === 'suspend') atSuspend = memorySums(H.a, created.domid);
  });
  const { port } = await H.xb.call<{ port: number }>({ verb: 'migrate-receive', port: 0, paused: true });
  const r = await H.xa.call<MigrateResult>({ verb: 'migrate', domain: 'mover', host: '127.0.0.1', port });
  t.log(`rounds ${r.rounds} (${r.pagesPerRound.join(', ')}; carried after each: ${r.carriedPerRound.join(', ')}), stop-and-copy ${r.finalPages} pages, ${r.pagesSent} in all; ` +
    `downtime ${r.downtimeMs.toFixed(1)} ms, total ${r.totalMs.toFixed(0)} ms (a loaded machine)`);
  // Round 1 looks at every page: it sends it, or leaves it for the next round when the log says it
  // was written again before its batch (legacy libxc's to_skip, in round 1 too).
  t.is(r.pagesPerRound[0] + r.skippedPerRound[0], MEM_PAGES, 'round 1 sends every page, or leaves it for the next round');
  t.true(r.rounds >= 1 && r.rounds <= 5, 'the default policy: at most 5 rounds');
  t.deepEqual(r.blackout.map((p) => p.phase.replace(/ \(.*$/, '')), [
    'suspend', 'log-dirty CLEAN', 'last PAGE_DATA records written', 'vCPU context, END', 'target: last pages in, vCPU context set', 'target: renamed and unpaused',
  ], 'the downtime, phase by phase');
  t.true(r.finalPages > 0, 'the working set was being written: the stop-and-copy had pages to send');
  t.false((await H.xa.call<ListedDomain[]>({ verb: 'list' })).some((d) => d.name === 'mover'), 'the source destroyed its copy');

  const there = (await H.xb.call<ListedDomain[]>({ verb: 'list' })).find((d) => d.name === 'mover');
  t.truthy(there, 'the guest is on the target');
  t.is(atSuspend.length, MEM_PAGES - 3);
  const sums = memorySums(H.b, there!.domid);
  const differ = sums.map((s, g) => (s === atSuspend[g] ? -1 : g)).filter((g) => g >= 0);
  t.deepEqual(differ, [], 'every page on the target equals the source\'s at the suspend');

  await H.xb.call({ verb: 'unpause', domain: 'mover' });
  const m = await consoleSays(H.b, 'mover', /mem-touch: resumed at pass (\d+)/);
  await consoleSays(H.b, 'mover', new RegExp(`mem-touch: pass ${m[1]} done`));
  await H.xb.call({ verb: 'destroy', domain: 'mover' });
});

test.serial('a receiver that dies mid-stream leaves the source guest running', async (t) => {
  await H.xa.call<CreateResult>({ verb: 'create', path: vm('stayer') });
  await consoleSays(H.a, 'stayer', /mem-touch: pass 0 done/);
  // A receiver that says it is ready, takes 1 MiB of the stream, and goes away.
  const server = createServer((sock: Socket) => {
    sock.write(MIGRATE_RECEIVER_BANNER);
    let got = 0;
    sock.on('data', (d) => { got += d.length; if (got > 1 << 20) sock.destroy(); });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as { port: number }).port;
  await t.throwsAsync(H.xa.call({ verb: 'migrate', domain: 'stayer', host: '127.0.0.1', port }), { message: /keeps running on this host/ });
  server.close();
  const d = (await H.xa.call<ListedDomain[]>({ verb: 'list' })).find((x) => x.name === 'stayer');
  t.truthy(d);
  t.false(d!.shutdown, 'not suspended, not shut down');
  // Still running and still verifying: pass 100 (the next one the workload reports) completes.
  await consoleSays(H.a, 'stayer', /mem-touch: pass 100 done/);
  await H.xa.call({ verb: 'destroy', domain: 'stayer' });
});
