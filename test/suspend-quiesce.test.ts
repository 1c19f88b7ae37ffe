/*
 * The guest's suspend, Linux's way (domu/kernel.ts suspend(), domu/blkfront/blkfront.ts quiesce):
 * no frontend is closed, no xenstore request is made; blkfront stops issuing and lets the requests
 * on its rings finish; the backends stay Connected. Then the two ways out:
 *   - the suspend is cancelled (the receiver dies after the stop-and-copy): the toolstack makes the
 *     source's backends let go of the suspended kernel's rings before the in-place resume
 *     (dom0/toolstack/resume-reset.ts), and the resumed guest reconnects, answers its network peer
 *     with checksummed answers again and writes and verifies its disk; every write it saw
 *     acknowledged before the suspend is in the image;
 *   - the migration completes: the source's copy, whose frontends never closed, is destroyed as a
 *     crashed guest's would be, and the source host is back to what it held before.
 * Either way the host's usage (frames, grants, mappings, ports, threads) comes back to its baseline.
 */
import test from 'ava';
import { closeSync, mkdirSync, openSync, readFileSync, readSync, writeFileSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import { join } from 'node:path';
import { XlClient } from '../cli/client.ts';
import type { RunningHost } from '../cli/host.ts';
import { CONSOLE_LOG } from '../dom0/toolstack/config/vm-layout.ts';
import { MIGRATE_RECEIVER_BANNER, MIGRATE_RECEIVER_BUILT } from '../dom0/toolstack/migration/migrate.ts';
import { StreamFramer } from '../dom0/toolstack/migration/stream-framer.ts';
import type { CreateResult, ListedDomain } from '../dom0/toolstack/protocol.ts';
import { blockPattern } from '../domu/workloads/disk-check.ts';
import { WRITE_LOG_ACKED } from '../domu/workloads/write-log.ts';
import type { HostUsage } from '../hypervisor/host-usage.ts';
import { consoleMatch, consoleUntil } from '../scenarios/lib/console.ts';
import { twoHosts } from './helpers/two-hosts.ts';

const H = twoHosts(test, 'rv-susq-', 160);
const BS = 512;
const SEED = 5;
const IMAGE_MIB = 64;

/** A guest writing its disk in order, 16 writes in flight, serving udp-rr on port 7000 beside it. */
function writer(name: string, n: number): string {
  const d = join(H.dir, name);
  mkdirSync(d);
  writeFileSync(join(d, 'vm.cfg'), `name = "${name}"\nmemory = 32\ncreate_images = [ "disk.img=${IMAGE_MIB}" ]\non_crash = "preserve"\n` +
    `disk = [ 'disk.img,raw,xvda,rw' ]\nvif = [ 'mac=00:16:3e:00:0a:0${n},ip=10.0.10.${n}' ]\nworkload = "write-log"\n` +
    `workload_args = [ "bs=${BS}", "iodepth=16", "flush_every=64", "report_every=64", "seed=${SEED}", "serve=7000" ]\n`);
  return d;
}

function peer(name: string, target: string): string {
  const d = join(H.dir, name);
  mkdirSync(d);
  writeFileSync(join(d, 'vm.cfg'), `name = "${name}"\nmemory = 16\nvif = [ 'mac=00:16:3e:00:0a:09,ip=10.0.10.9' ]\n` +
    `workload = "udp-probe"\nworkload_args = [ "target=${target}", "port=7000", "retry=20", "report=50" ]\n`);
  return d;
}

async function usage(rh: RunningHost): Promise<HostUsage> {
  await rh.host.sparesSettled(); // the spare vCPU thread is part of the host, not of a guest
  return rh.host.usage();
}

/** The host's usage, once it has come back to `base` (a destroy's last steps finish after the call returns), or as it is then. */
async function usageBackTo(rh: RunningHost, base: HostUsage): Promise<HostUsage> {
  let u = await usage(rh);
  for (let i = 0; i < 100 && JSON.stringify(u) !== JSON.stringify(base); i++) {
    await new Promise((r) => setTimeout(r, 50)); // waiting for teardown to finish, not shaping a measurement
    u = await usage(rh);
  }
  return u;
}

/** The suspend line: xenstore requests and round trips in the quiesce, disk requests let finish. */
const SUSPEND_LINE = /suspend: resume record at gfn \d+;[^\n]*xenstore (\d+) requests in (\d+) round trips[^\n]*; (\d+) disk request\(s\) were in flight/;

/** The highest "acknowledged N" the guest printed. */
function ackedIn(log: string): number {
  return Math.max(0, ...[...log.matchAll(new RegExp(`${WRITE_LOG_ACKED}(\\d+)`, 'g'))].map((m) => Number(m[1])));
}

/** Blocks below `acked` read back from the image as write-log wrote them: the problems (none: empty). */
function checkImage(image: string, acked: number): string[] {
  const fd = openSync(image, 'r');
  const got = new Uint8Array(BS);
  const want = new Uint8Array(BS);
  const problems: string[] = [];
  try {
    for (let b = 0; b < acked && problems.length < 5; b++) {
      if (readSync(fd, got, 0, BS, b * BS) !== BS) { problems.push(`block ${b}: short read`); break; }
      blockPattern(want, SEED, b);
      const at = got.findIndex((x, i) => x !== want[i]);
      if (at >= 0) problems.push(`acknowledged block ${b} differs at byte ${at}`);
    }
  } finally {
    closeSync(fd);
  }
  return problems;
}

/** A receiver that takes the whole stream (the guest has suspended and the stop-and-copy gone out), then dies. */
async function dyingReceiver(): Promise<{ server: Server; port: number }> {
  const server = createServer((sock: Socket) => {
    server.close();
    sock.write(MIGRATE_RECEIVER_BANNER);
    sock.write(MIGRATE_RECEIVER_BUILT);
    const f = new StreamFramer();
    sock.on('data', (d: Buffer) => {
      f.push(d);
      if (f.complete !== null) sock.destroy();
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return { server, port: (server.address() as { port: number }).port };
}

/** The peer's progress: answers so far and the most bad answers it reported, once it has more than `n`. */
function answeredBeyond(rh: RunningHost, name: string, n: number): Promise<{ answered: number; bad: number }> {
  const re = /udp-probe: (\d+) answered, \d+ re-sent, (\d+) bad/g;
  return consoleUntil(rh.runDir, name, (seen) => {
    let bad = 0;
    let answered = 0;
    for (const m of seen.matchAll(re)) { answered = Number(m[1]); bad = Math.max(bad, Number(m[2])); }
    return answered > n ? { answered, bad } : undefined;
  }, `more than ${n} answers`);
}

/** Type a command at the guest's console and wait for `re`. */
async function typed(rh: RunningHost, domain: string, cmd: string, re: RegExp): Promise<RegExpMatchArray> {
  const c = await XlClient.open(rh.runDir);
  try {
    const s = await c.console(domain, () => undefined, () => undefined);
    const seen = consoleMatch(rh.runDir, domain, re);
    s.send(new TextEncoder().encode(`${cmd}\n`));
    return await seen;
  } finally {
    c.close();
  }
}

test.serial('a suspend with disk writes in flight, cancelled: no xenstore request in it, every acknowledged write kept, the resumed guest answers its peer and its disk', async (t) => {
  const base = await usage(H.a);
  await H.xa.call<CreateResult>({ verb: 'create', path: peer('sq-peer', '10.0.10.1') });
  const created = await H.xa.call<CreateResult>({ verb: 'create', path: writer('sq-cancel', 1) });
  await consoleMatch(H.a.runDir, 'sq-cancel', new RegExp(`${WRITE_LOG_ACKED}\\d{4,}`));
  const before = await answeredBeyond(H.a, 'sq-peer', 50);
  t.is(before.bad, 0);
  const running = await usage(H.a);

  const { port } = await dyingReceiver();
  await t.throwsAsync(H.xa.call({ verb: 'migrate', domain: 'sq-cancel', host: '127.0.0.1', port }), { message: /the guest was resumed on this host/ });
  const d = (await H.xa.call<ListedDomain[]>({ verb: 'list' })).find((x) => x.name === 'sq-cancel');
  t.is(d?.domid, created.domid, 'resumed in place');

  const log = readFileSync(join(H.dir, 'sq-cancel', CONSOLE_LOG), 'utf8');
  const s = SUSPEND_LINE.exec(log);
  t.truthy(s, 'the suspend line');
  t.is(Number(s![1]), 0, 'the suspend made no xenstore request (no frontend closed)');
  t.is(Number(s![2]), 0, 'and no xenstore round trip');
  t.true(Number(s![3]) > 0, 'disk writes were in flight when it began');

  // The resumed kernel reconnected through the backends' reset (Closed, InitWait, a new handshake).
  await consoleMatch(H.a.runDir, 'sq-cancel', /resume: [\s\S]*blkfront: xvda connected[\s\S]*disks: xvda/);
  // write-log does not carry on after a resume (its progress was on the heap): the image is still.
  const acked = ackedIn(readFileSync(join(H.dir, 'sq-cancel', CONSOLE_LOG), 'utf8'));
  t.true(acked >= 1024);
  t.deepEqual(checkImage(join(H.dir, 'sq-cancel', 'disk.img'), acked), [], `each of the ${acked} writes acknowledged before the suspend is in the image`);

  // Network: its udp-rr server is back and answers the peer, every answer checked.
  const atResume = await answeredBeyond(H.a, 'sq-peer', 0);
  const after = await answeredBeyond(H.a, 'sq-peer', atResume.answered + 100);
  t.is(after.bad, 0, 'every answer, before and after, checksummed and right');
  // Disk: written and read back through the reconnected blkfront and the reset blkback.
  t.truthy(await typed(H.a, 'sq-cancel', 'disk-check 256', /disk-check on xvda: OK, 1048576 bytes written and read back/));
  // The cancel itself leaked nothing: the old rings' ports were unbound on both sides, the new ones
  // bound (as many); the same threads run. (Grants differ: blkback's persistent set follows the I/O.)
  const resumed = await usage(H.a);
  t.is(resumed.portsBound, running.portsBound, 'as many ports bound as before the suspend');
  t.is(resumed.threadsAlive, running.threadsAlive);
  t.is(resumed.domains, running.domains);

  await H.xa.call({ verb: 'destroy', domain: 'sq-cancel' });
  await H.xa.call({ verb: 'destroy', domain: 'sq-peer' });
  t.deepEqual(await usageBackTo(H.a, base), base, 'no frame, grant, mapping, port or thread left behind');
});

test.serial('a migration with disk writes in flight: the source copy, its frontends never closed, is destroyed with nothing left; the target writes and verifies', async (t) => {
  const baseA = await usage(H.a);
  const baseB = await usage(H.b);
  await H.xa.call<CreateResult>({ verb: 'create', path: writer('sq-move', 2) });
  await consoleMatch(H.a.runDir, 'sq-move', new RegExp(`${WRITE_LOG_ACKED}\\d{4,}`));
  const { port } = await H.xb.call<{ port: number }>({ verb: 'migrate-receive', port: 0 });
  await H.xa.call({ verb: 'migrate', domain: 'sq-move', host: '127.0.0.1', port });
  t.false((await H.xa.call<ListedDomain[]>({ verb: 'list' })).some((x) => x.name === 'sq-move'), 'the source destroyed its copy');
  t.deepEqual(await usageBackTo(H.a, baseA), baseA, 'the source host holds nothing of it: no grant mapped, no port bound');

  const s = SUSPEND_LINE.exec(readFileSync(join(H.dir, 'sq-move', CONSOLE_LOG), 'utf8'));
  t.is(Number(s![1]), 0, 'no xenstore request in the suspend');
  t.true(Number(s![3]) > 0, 'disk writes were in flight when it began');
  await consoleMatch(H.b.runDir, 'sq-move', /resume: [\s\S]*blkfront: xvda connected[\s\S]*disks: xvda/);
  const acked = ackedIn(readFileSync(join(H.dir, 'sq-move', CONSOLE_LOG), 'utf8'));
  t.deepEqual(checkImage(join(H.dir, 'sq-move', 'disk.img'), acked), [], `each of the ${acked} writes acknowledged before the suspend is in the image`);
  t.truthy(await typed(H.b, 'sq-move', 'disk-check 256', /disk-check on xvda: OK, 1048576 bytes written and read back/));
  await H.xb.call({ verb: 'destroy', domain: 'sq-move' });
  t.deepEqual(await usageBackTo(H.b, baseB), baseB, 'and the target, once it is destroyed there');
});
