/*
 * A live migration whose receiver fails, and the names a guest carries while it moves (xl's rules,
 * dom0/toolstack/migration/sender-recovery.ts):
 *   - the receiver dies after the guest suspended (the stop-and-copy has gone out): the source
 *     resumes it in place (same domain id), its disk and vif reconnect to the source's backends,
 *     and its verified workload carries on from where it stopped;
 *   - the receiver is told "go" and then reports that its copy could not start: the source guest,
 *     seen as NAME--migratedaway meanwhile, gets its name back and is resumed;
 *   - on the receiving side the guest is NAME--incoming until the sender says "go".
 * The fake ends speak the real handshake lines and carry a real stream.
 */
import test from 'ava';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { connect, createServer, type Server, type Socket } from 'node:net';
import { join } from 'node:path';
import { XlClient } from '../cli/client.ts';
import type { RunningHost } from '../cli/host.ts';
import { twoHosts } from './helpers/two-hosts.ts';
import {
  MIGRATE_PERMISSION, MIGRATE_RECEIVER_BANNER, MIGRATE_RECEIVER_BUILT, MIGRATE_RECEIVER_READY, MIGRATE_REPORT,
} from '../dom0/toolstack/migration/migrate.ts';
import { StreamFramer } from '../dom0/toolstack/migration/stream-framer.ts';
import type { CreateResult, ListedDomain } from '../dom0/toolstack/protocol.ts';
import { consoleMatch } from '../scenarios/lib/console.ts';

const hostLog: string[] = [];
const H = twoHosts(test, 'rv-migfail-', 128, { log: (l) => { hostLog.push(l); } });

function vm(name: string, n: number): string {
  const d = join(H.dir, name);
  mkdirSync(d);
  writeFileSync(join(d, 'vm.cfg'), `name = "${name}"\nmemory = 32\ncreate_images = [ "disk.img=4" ]\non_crash = "preserve"\n` +
    `disk = [ 'disk.img,raw,xvda,rw' ]\nvif = [ 'mac=00:16:3e:00:07:0${n},ip=10.0.7.${n}' ]\n` +
    `workload = "mem-touch"\nworkload_args = [ "wss=2" ]\n`);
  return d;
}

/** The domain's console (history, then live) until `re` matches. */
async function consoleSays(rh: RunningHost, domain: string, re: RegExp): Promise<RegExpMatchArray> {
  return await consoleMatch(rh.runDir, domain, re);
}

/**
 * After the suspend: the kernel booted again in resume mode, its disk and vif reconnected, mem-touch went on from where it
 * stopped and finished that pass, checking every page. mem-touch carries on before the devices are back (user space is
 * thawed first, domu/kernel.ts), so only the suspend comes first; the rest may come in any order.
 */
const RESUMED_AND_VERIFIED = new RegExp('suspend: resume record[^\\n]*\\n(?=[\\s\\S]*resume: )(?=[\\s\\S]*blkfront: xvda connected)(?=[\\s\\S]*netfront: eth0 connected)' +
  '[\\s\\S]*mem-touch: resumed at pass (\\d+), page \\d+[^\\n]*\\n[\\s\\S]*mem-touch: pass \\1 done');

async function listed(x: XlClient, name: string): Promise<ListedDomain | undefined> {
  return (await x.call<ListedDomain[]>({ verb: 'list' })).find((d) => d.name === name);
}

/**
 * A receiver that takes the whole stream (so the source has suspended its guest and sent the
 * stop-and-copy), then does what `then` says with the socket.
 */
async function fakeReceiver(then: (sock: Socket, input: AsyncIterator<Buffer>) => Promise<void>): Promise<{ server: Server; port: number }> {
  const server = createServer((sock: Socket) => {
    server.close();
    sock.write(MIGRATE_RECEIVER_BANNER);
    sock.write(MIGRATE_RECEIVER_BUILT); // it builds nothing: it only reads
    const f = new StreamFramer();
    const input = sock[Symbol.asyncIterator]() as AsyncIterator<Buffer>;
    void (async () => {
      while (f.complete === null) {
        const { value, done } = await input.next();
        if (done) return;
        f.push(value);
      }
      await then(sock, input);
    })().catch(() => sock.destroy());
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return { server, port: (server.address() as { port: number }).port };
}

/** Exactly `text` from `input`, then `extra` more bytes (returned). Bytes beyond are not expected here. */
async function readLine(input: AsyncIterator<Buffer>, text: string, extra = 0): Promise<Buffer> {
  let got = Buffer.alloc(0);
  while (got.length < text.length + extra) {
    const { value, done } = await input.next();
    if (done) throw new Error(`connection ended before "${text.trim()}"`);
    got = Buffer.concat([got, value]);
  }
  if (got.subarray(0, text.length).toString('latin1') !== text) throw new Error(`expected "${text.trim()}", got "${got.toString('latin1')}"`);
  return got.subarray(text.length);
}

test.serial('a receiver that dies after the guest suspended: the source resumes it in place, devices reconnected, workload verified', async (t) => {
  const created = await H.xa.call<CreateResult>({ verb: 'create', path: vm('phoenix', 1) });
  await consoleSays(H.a, 'phoenix', /mem-touch: pass 1 done/);
  const suspended = new Promise<void>((r) => H.a.host.once('shutdown', (e: { domid: number; reason: string }) => {
    if (e.domid === created.domid && e.reason === 'suspend') r();
  }));
  // It has the whole stream, the stop-and-copy included: the guest is suspended. Then it dies.
  const { port } = await fakeReceiver(async (sock) => { sock.destroy(); });
  const err = await t.throwsAsync(H.xa.call({ verb: 'migrate', domain: 'phoenix', host: '127.0.0.1', port }));
  await suspended;
  t.regex(err!.message, /failed after it was suspended: .*; the guest was resumed on this host/);
  const d = await listed(H.xa, 'phoenix');
  t.truthy(d, 'listed under its own name');
  t.is(d!.domid, created.domid, 'the same domain, resumed in place (xc_domain_resume)');
  t.false(d!.shutdown);
  t.false((await H.xa.call<ListedDomain[]>({ verb: 'list' })).some((x) => /--/.test(x.name)), 'no NAME--migratedaway left');
  // Resumed: its disk and vif reconnect to this host's backends, and mem-touch carries on, verifying.
  t.truthy(await consoleSays(H.a, 'phoenix', RESUMED_AND_VERIFIED));
  // And it can still move for real afterwards.
  const { port: real } = await H.xb.call<{ port: number }>({ verb: 'migrate-receive', port: 0 });
  await H.xa.call({ verb: 'migrate', domain: 'phoenix', host: '127.0.0.1', port: real });
  await consoleSays(H.b, 'phoenix', /mem-touch: resumed at pass \d+/);
  await H.xb.call({ verb: 'destroy', domain: 'phoenix' });
});

test.serial('the source is NAME--migratedaway once the target is ready; a target that cannot start its copy gives it back', async (t) => {
  const created = await H.xa.call<CreateResult>({ verb: 'create', path: vm('boomerang', 2) });
  await consoleSays(H.a, 'boomerang', /mem-touch: pass 0 done/);
  let duringGo: string[] = [];
  const { port } = await fakeReceiver(async (sock, input) => {
    sock.write(MIGRATE_RECEIVER_READY);
    await readLine(input, MIGRATE_PERMISSION);
    duringGo = (await H.xa.call<ListedDomain[]>({ verb: 'list' })).filter((d) => d.domid === created.domid).map((d) => d.name);
    // xl's receiver when its copy does not start: report failure, destroy ours, let the sender resume.
    sock.write(MIGRATE_REPORT);
    sock.write(new Uint8Array([1]));
    sock.end(MIGRATE_PERMISSION);
  });
  const err = await t.throwsAsync(H.xa.call({ verb: 'migrate', domain: 'boomerang', host: '127.0.0.1', port }));
  t.regex(err!.message, /could not start its copy.*resumed on this host/);
  t.deepEqual(duringGo, ['boomerang--migratedaway'], 'renamed away while the target holds the go');
  const d = await listed(H.xa, 'boomerang');
  t.is(d?.domid, created.domid, 'back under its own name, same domain');
  t.false(d!.shutdown);
  t.truthy(await consoleSays(H.a, 'boomerang', RESUMED_AND_VERIFIED));
  await H.xa.call({ verb: 'destroy', domain: 'boomerang' });
});

test.serial('on the target the guest is NAME--incoming until the sender says go', async (t) => {
  await H.xa.call<CreateResult>({ verb: 'create', path: vm('pilgrim', 3) });
  await consoleSays(H.a, 'pilgrim', /mem-touch: pass 0 done/);
  const file = join(H.dir, 'pilgrim.save');
  await H.xa.call({ verb: 'save', domain: 'pilgrim', file }); // a save file is a migration stream with xl's header
  const { port } = await H.xb.call<{ port: number }>({ verb: 'migrate-receive', port: 0 });
  const sock = connect({ host: '127.0.0.1', port });
  const input = sock[Symbol.asyncIterator]() as AsyncIterator<Buffer>;
  await readLine(input, MIGRATE_RECEIVER_BANNER);
  sock.write(readFileSync(file));
  await readLine(input, MIGRATE_RECEIVER_BUILT + MIGRATE_RECEIVER_READY);
  const before = await listed(H.xb, 'pilgrim--incoming');
  t.truthy(before, 'built, filled, paused, and called pilgrim--incoming');
  t.is(await listed(H.xb, 'pilgrim'), undefined);
  sock.write(MIGRATE_PERMISSION);
  const rc = await readLine(input, MIGRATE_REPORT, 1);
  t.is(rc[0], 0, 'the receiver reports its copy running');
  sock.destroy();
  const after = await listed(H.xb, 'pilgrim');
  t.is(after?.domid, before!.domid, 'renamed to pilgrim and unpaused');
  t.is(await listed(H.xb, 'pilgrim--incoming'), undefined);
  await consoleSays(H.b, 'pilgrim', /mem-touch: resumed at pass \d+/);
  // The rename's checks (a domain list through the control thread) were made when the domain was
  // built, not at "ready", so the go waited only for the rename's write and the unpause.
  t.true(hostLog.some((l) => /xl migrate-receive: pilgrim is domain \d+ here: .*the go: its rename checked at the build,/.test(l)),
    hostLog.filter((l) => l.includes('migrate-receive')).join('\n'));
  await H.xb.call({ verb: 'destroy', domain: 'pilgrim' });
});
