/*
 * A guest's network follows it across a live migration: two hosts whose xenbr0 bridges are joined
 * by their UDP uplinks on loopback; a guest on host B keeps asking (udp-probe) a udp-rr server in a
 * guest that moves from A to B, then is saved and restored on B. Its vif is re-attached to B's
 * xenbr0, netfront reconnects, and the resumed kernel sends a gratuitous ARP (Linux's
 * netdev_notify_peers), so B's bridge, which had learned the guest's MAC behind its uplink,
 * learns it on the new vif. Every answer is checksummed; answers keep coming after the move, and
 * the gratuitous ARP is in a capture of B's bridge (read back with tcpdump -r when installed), and no
 * ARP request for the peer: the resumed kernel kept its neighbour table in guest memory.
 */
import test from 'ava';
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { XlClient } from '../cli/client.ts';
import { startHost, type RunningHost } from '../cli/host.ts';
import type { MigrateResult } from '../dom0/toolstack/migration/migrate.ts';
import type { ListedDomain } from '../dom0/toolstack/protocol.ts';
import { consoleMatch, consoleUntil } from '../scenarios/lib/console.ts';
import { LineLog } from '../scenarios/lib/line-log.ts';

const MOVER = { mac: '00:16:3e:00:05:0a', ip: '10.0.5.10' };
const PEER = { mac: '00:16:3e:00:05:0b', ip: '10.0.5.11' };

let dir = '';
let a: RunningHost;
let b: RunningHost;

test.before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'rv-mignet-'));
  const aLog = new LineLog('host a\'s log');
  a = await startHost({ runDir: join(dir, 'a'), memoryMiB: 96, bridges: [{ name: 'xenbr0', uplink: { port: 0 } }], log: aLog.add });
  // Dom0's console line may come after the host says it is up.
  const aPort = Number((await aLog.waitFor(/uplink xenbr0-uplink through nic \S+, wire 127\.0\.0\.1:(\d+)/))[1]);
  // B names A's uplink; A learns B's from its first datagram (uplink.ts).
  b = await startHost({ runDir: join(dir, 'b'), memoryMiB: 160, bridges: [{ name: 'xenbr0', uplink: { port: 0, peers: [`127.0.0.1:${aPort}`] } }], log: () => undefined });
});
test.after.always(async () => {
  await a?.close();
  await b?.close();
  rmSync(dir, { recursive: true, force: true });
});

function vm(name: string, body: string): string {
  const d = join(dir, name);
  mkdirSync(d);
  writeFileSync(join(d, 'vm.cfg'), `name = "${name}"\nmemory = 32\n${body}\n`);
  return d;
}

/** Resolves with the first match of `re` in the domain's console output (history included). */
async function consoleSays(rh: RunningHost, domain: string, re: RegExp, from = 0): Promise<RegExpMatchArray> {
  return await consoleMatch(rh.runDir, domain, re, { from });
}

/** The peer's progress lines: answered so far, and every count of bad answers it reported. */
async function answeredBeyond(n: number): Promise<{ answered: number; bad: number }> {
  const re = new RegExp(`udp-probe: (\\d+) answered, \\d+ re-sent, (\\d+) bad`, 'g');
  return consoleUntil(b.runDir, 'peer', (seen) => {
    let bad = 0;
    let answered = 0;
    for (const m of seen.matchAll(re)) { answered = Number(m[1]); bad = Math.max(bad, Number(m[2])); }
    return answered > n ? { answered, bad } : undefined;
  }, `more than ${n} answers (${re})`);
}

/** ARP frames in a pcap file (LINKTYPE_ETHERNET): [sender mac, sender ip, target ip, oper]. */
function arpFrames(file: string): { sha: string; spa: string; tpa: string; oper: number }[] {
  const f = readFileSync(file);
  const out: { sha: string; spa: string; tpa: string; oper: number }[] = [];
  for (let at = 24; at + 16 <= f.length;) {
    const len = f.readUInt32LE(at + 8);
    const fr = f.subarray(at + 16, at + 16 + len);
    at += 16 + len;
    if (fr.length < 42 || fr.readUInt16BE(12) !== 0x0806) continue;
    out.push({
      sha: [...fr.subarray(22, 28)].map((x) => x.toString(16).padStart(2, '0')).join(':'),
      spa: [...fr.subarray(28, 32)].join('.'), tpa: [...fr.subarray(38, 42)].join('.'), oper: fr.readUInt16BE(20),
    });
  }
  return out;
}

function hasTcpdump(): boolean {
  try { execFileSync('tcpdump', ['--version'], { stdio: 'ignore' }); return true; } catch { return false; }
}

test.serial('a peer on the target keeps getting checksummed answers from a guest that moves to its host, and sees its gratuitous ARP', async (t) => {
  const xa = await XlClient.open(a.runDir);
  const xb = await XlClient.open(b.runDir);
  try {
    await xa.call({ verb: 'create', path: vm('mover', `vif = [ 'mac=${MOVER.mac},ip=${MOVER.ip},bridge=xenbr0' ]\nworkload = "udp-rr"\nworkload_args = [ "role=server", "port=7000" ]`) });
    await consoleSays(a, 'mover', /udp-rr: serving/);
    await xb.call({ verb: 'create', path: vm('peer', `vif = [ 'mac=${PEER.mac},ip=${PEER.ip},bridge=xenbr0' ]\nworkload = "udp-probe"\n` +
      `workload_args = [ "target=${MOVER.ip}", "port=7000", "retry=20", "report=100" ]`) });
    const before = await answeredBeyond(199); // across the uplinks, A to B
    t.is(before.bad, 0);

    const pcap = join(dir, 'xenbr0-b.pcap');
    const capture = xb.call<number>({ verb: 'capture', port: 'xenbr0', file: pcap });
    const { port } = await xb.call<{ port: number }>({ verb: 'migrate-receive', port: 0 });
    const r = await xa.call<MigrateResult>({ verb: 'migrate', domain: 'mover', host: '127.0.0.1', port });
    t.log(`moved in ${r.rounds} rounds, ${r.pagesSent} pages, downtime ${r.downtimeMs.toFixed(1)} ms (a loaded machine)`);
    t.false((await xa.call<ListedDomain[]>({ verb: 'list' })).some((d) => d.name === 'mover'), 'the source let it go');
    await consoleSays(b, 'mover', /resumed; gratuitous ARP for 10\.0\.5\.10/);
    const atMove = await answeredBeyond(0);
    const after = await answeredBeyond(atMove.answered + 200);
    t.is(after.bad, 0, 'every answer checksummed and correct, before and after the move');
    await xb.call({ verb: 'capture-stop', port: 'xenbr0' });
    await capture;

    const garps = arpFrames(pcap).filter((x) => x.sha === MOVER.mac && x.spa === MOVER.ip && x.tpa === MOVER.ip && x.oper === 1);
    t.true(garps.length >= 1, 'the gratuitous ARP (sender = target = the guest) crossed B\'s bridge');
    // Its neighbour table crossed in guest memory (domu/resume.ts), as Linux's does in kernel memory:
    // the first answer after the move goes straight to the peer, without asking who has its address.
    t.false(arpFrames(pcap).some((x) => x.sha === MOVER.mac && x.tpa === PEER.ip && x.oper === 1),
      'the resumed guest did not ARP for the peer it had already learned');
    if (hasTcpdump()) {
      const text = execFileSync('tcpdump', ['-r', pcap, '-nn', 'arp'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
      t.regex(text, /Request who-has 10\.0\.5\.10 tell 10\.0\.5\.10/, 'tcpdump reads the capture and shows the gratuitous ARP');
    }

    // A restore on B (xl save, xl restore): the same reconnection and announcement.
    const file = join(dir, 'mover.save');
    await xb.call({ verb: 'save', domain: 'mover', file });
    const atSave = await answeredBeyond(0);
    await xb.call({ verb: 'restore', file });
    const restored = await answeredBeyond(atSave.answered + 200);
    t.is(restored.bad, 0, 'and after the restore');
  } finally {
    xa.close();
    xb.close();
  }
});
