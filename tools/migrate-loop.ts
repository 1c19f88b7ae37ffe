/*
 * A reliability loop for live migration: a guest serving udp-rr moves back and forth between hosts
 * A and B, N times, while a guest on a third host C asks it (scenarios/lib/outage-peer.ts); it
 * stops at the first move after which the peer gets no answer within a bound, and keeps
 * everything that could say why.
 *
 *   npx tsx tools/migrate-loop.ts [--moves N] [--mib MiB] [--wss MiB] [--bound-ms MS] [--peer fresh|kept] [--not-live]
 *                                 [--mode moves|bench]
 *
 * The failure it hunts (1 in 42 quiet full runs of `npm run bench -- --suite migrate`): after an
 * untimed move the guest's console said resumed, gratuitous ARP sent, serving, and a peer started
 * on C then got no answer for 30 s. `--peer fresh` (the default) does what the bench did then: a
 * new peer after each move, which must have its first answers (ARP, then udp-rr) within the bound;
 * `--peer kept` keeps one peer through every move, which must get answers again within the bound.
 * `--mode bench` does each time what the bench's odd repeats do before their timed move: a new
 * guest (new name, MAC and IP) created on A, moved to B once as soon as its workload runs, then a
 * new peer on C; then both are destroyed.
 *
 * The evidence, in the run directory (kept, and named, on a failure; removed otherwise): every
 * host's log lines (a.host.log, b.host.log, c.host.log: scenarios/lib/host-logs.ts), the guests'
 * consoles (their VM directories), and for the failing move a capture of every frame that entered
 * each host's xenbr0 (move-K-{a,b,c}.pcap, from just before the move to the failure: read with
 * `tcpdump -enr FILE`), so where the peer's requests and the guest's answers, ARPs and gratuitous
 * ARP went can be read host by host, and each host's `top` sample (every vif's counters and ring
 * indices) twice, a second apart, at the failure (move-K-top-H-{first,then}.json). Captures of a
 * move that went well are deleted.
 *
 * Xen: what one does with `xl migrate` in a loop and tcpdump on each Dom0's bridge.
 */
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { XlClient } from '../cli/client.ts';
import type { MigrateResult } from '../dom0/toolstack/migration/migrate.ts';
import { HostLogs } from '../scenarios/lib/host-logs.ts';
import { OutagePeer, RR_PORT, startUplinkedHost, vifFor } from '../scenarios/lib/outage-peer.ts';
import { consoleMatch } from '../scenarios/lib/console.ts';

const { values: o } = parseArgs({
  options: {
    moves: { type: 'string', default: '50' },
    mib: { type: 'string', default: '64' },
    wss: { type: 'string', default: '0' },
    'bound-ms': { type: 'string', default: '10000' },
    peer: { type: 'string', default: 'fresh' },
    'not-live': { type: 'boolean', default: false },
    mode: { type: 'string', default: 'moves' },
  },
});
const MOVES = Number(o.moves);
const MIB = Number(o.mib);
const WSS = Number(o.wss);
const BOUND_MS = Number(o['bound-ms']);
const BENCH = o.mode === 'bench';
const FRESH = BENCH || o.peer !== 'kept';
if (![MOVES, MIB, WSS, BOUND_MS].every((n) => Number.isInteger(n) && n >= 0) || !['fresh', 'kept'].includes(o.peer!) || !['moves', 'bench'].includes(o.mode!)) {
  throw new Error('usage: --moves N --mib MiB --wss MiB --bound-ms MS --peer fresh|kept');
}

const dir = mkdtempSync(join(tmpdir(), 'rv-migrate-loop-'));
const say = (s: string) => process.stdout.write(`${new Date().toISOString()} ${s}\n`);
const logs = new HostLogs(dir);
const up = await startUplinkedHost({ runDir: join(dir, 'a'), memoryMiB: MIB + 64, log: logs.sink('a') });
const ub = await startUplinkedHost({ runDir: join(dir, 'b'), memoryMiB: MIB + 64, log: logs.sink('b') }, [up.port]);
const uc = await startUplinkedHost({ runDir: join(dir, 'c'), memoryMiB: 112, log: logs.sink('c') }, [up.port, ub.port]);
const hosts = { a: up.host, b: ub.host, c: uc.host };
const xl = { a: await XlClient.open(hosts.a.runDir), b: await XlClient.open(hosts.b.runDir), c: await XlClient.open(hosts.c.runDir) };

/* A guest serving udp-rr (and running mem-touch when --wss is given), its VM directory made now. */
function guest(name: string, n: number): { name: string; dir: string; ip: string } {
  const vif = vifFor(n);
  const d = join(dir, name);
  mkdirSync(d);
  writeFileSync(join(d, 'vm.cfg'), `name = "${name}"\nmemory = ${MIB}\n${vif.line}\n` +
    (WSS === 0 ? `workload = "idle"\nworkload_args = [ "serve=${RR_PORT}" ]\n` : `workload = "mem-touch"\nworkload_args = [ "wss=${WSS}", "serve=${RR_PORT}" ]\n`));
  return { name, dir: d, ip: vif.ip };
}
const UP = WSS === 0 ? /workload idle/ : /mem-touch: pass 1 done/;
let g = guest(BENCH ? 'g-0' : 'mover', 10);

let failure: string | null = null;
let peer: OutagePeer | null = null;
let peers = 0;
const newPeer = () => OutagePeer.start(hosts.c, dir, { name: `peer-${peers}`, vif: 100 + (peers++ % 150), target: g.ip, warmup: 100 });

/* A capture of every frame entering each host's xenbr0 during move k; stop() ends them (the files stay). */
function captureAll(k: number): { files: string[]; stop(): Promise<void> } {
  const files: string[] = [];
  const running: Promise<unknown>[] = [];
  for (const h of ['a', 'b', 'c'] as const) {
    const file = join(dir, `move-${k}-${h}.pcap`);
    files.push(file);
    running.push(xl[h].call({ verb: 'capture', port: 'xenbr0', file }).catch((e: unknown) => say(`capture on ${h}: ${(e as Error).message}`)));
  }
  return {
    files,
    async stop() {
      for (const h of ['a', 'b', 'c'] as const) await xl[h].call({ verb: 'capture-stop', port: 'xenbr0' });
      await Promise.all(running);
    },
  };
}

/*
 * Each host's `ringvisor top` sample (domains; every vif's counters and ring indices, as netback
 * registered them), twice a second apart, so that what still moves and what is stuck can be told.
 */
async function snapshots(k: number): Promise<void> {
  for (const when of ['first', 'then']) {
    if (when === 'then') await new Promise((r) => setTimeout(r, 1000)); // the second sample's distance, not a measurement
    for (const h of ['a', 'b', 'c'] as const) {
      const top = await xl[h].call({ verb: 'top' }).catch((e: unknown) => ({ error: (e as Error).message }));
      writeFileSync(join(dir, `move-${k}-top-${h}-${when}.json`), JSON.stringify(top, null, 1));
    }
  }
}

try {
  if (!BENCH) {
    await xl.a.call({ verb: 'create', path: g.dir });
    await consoleMatch(hosts.a.runDir, g.name, UP);
  }
  if (!FRESH) peer = await newPeer();
  say(`loop: ${MOVES} moves of a ${MIB} MiB guest (wss ${WSS} MiB, ${o['not-live'] ? 'not live' : 'live'}), peer ${o.peer}, ` +
    `bound ${BOUND_MS} ms; run directory ${dir}; load ${loadavg().map((x) => x.toFixed(1)).join(' ')}`);
  for (let k = 0; k < MOVES; k++) {
    const [from, to] = BENCH || k % 2 === 0 ? (['a', 'b'] as const) : (['b', 'a'] as const);
    const cap = captureAll(k); // from before a new guest's boot: what the bridges learned of it on A
    if (BENCH) { // a new guest, up on A
      if (k > 0) g = guest(`g-${k}`, 10 + (k % 90));
      await xl.a.call({ verb: 'create', path: g.dir });
      await consoleMatch(hosts.a.runDir, g.name, UP);
    }
    const answered = peer?.counts().answered ?? 0;
    const { port } = await xl[to].call<{ port: number }>({ verb: 'migrate-receive', port: 0 });
    const r = await xl[from].call<MigrateResult>({ verb: 'migrate', domain: g.name, host: '127.0.0.1', port, live: !o['not-live'] });
    try {
      if (FRESH) {
        peer = await newPeer(); // its first 100 answers (OutagePeer.start's own bound is 30 s)
      } else {
        await peer!.answeredBeyond(answered + 200, BOUND_MS);
      }
    } catch (e) {
      failure = `move ${k} (${from} -> ${to}, downtime ${r.downtimeMs.toFixed(1)} ms): ${(e as Error).message}`;
      await snapshots(k);
    }
    await cap.stop();
    if (failure !== null) break;
    for (const f of cap.files) if (existsSync(f)) rmSync(f);
    if (FRESH) {
      await peer!.stop();
      peer = null;
    }
    if (BENCH) await xl[to].call({ verb: 'destroy', domain: g.name });
    say(`move ${k} ${from} -> ${to}: downtime ${r.downtimeMs.toFixed(1)} ms, total ${r.totalMs.toFixed(0)} ms; the peer answered ` +
      `(load ${loadavg()[0].toFixed(1)})`);
  }
} catch (e) {
  failure ??= `the loop itself failed: ${(e as Error).stack ?? e}`;
} finally {
  await peer?.stop().catch(() => undefined);
  for (const x of Object.values(xl)) x.close();
  for (const h of Object.values(hosts)) await h.close();
  await logs.close();
}
if (failure !== null) {
  // A guest that crashed says why only in its host's log ("(XEN) domain N (NAME) crashed: ..."),
  // not on its console: the bench's 30 s failure was one (a mem-touch check after the move).
  const crashes = (['a', 'b', 'c'] as const).flatMap((h) => readFileSync(join(dir, `${h}.host.log`), 'utf8').split('\n')
    .filter((l) => l.includes(') crashed: ')).map((l) => `host ${h}: ${l}`));
  if (crashes.length > 0) failure += `\ncrashed guests:\n${crashes.join('\n')}`;
  writeFileSync(join(dir, 'FAILURE.txt'), `${failure}\n`);
  say(`FAILED: ${failure}\nthe evidence is kept in ${dir} (host logs *.host.log, consoles, move-*.pcap)`);
  process.exitCode = 1;
} else {
  rmSync(dir, { recursive: true, force: true });
  say(`all ${MOVES} moves: the peer had its answers after each`);
}
