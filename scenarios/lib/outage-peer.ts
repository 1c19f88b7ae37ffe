/*
 * A migration's downtime as a client sees it: a guest on a third host keeps asking the moving
 * guest's udp-rr server, and the silence around the pause is the outage.
 *
 * Clark et al. ("Live Migration of Virtual Machines", NSDI 2005) measured downtime from outside:
 * clients of the Quake 3 and SPECweb servers they moved saw 60 ms and 210 ms without answers. The
 * toolstack's own downtime (MigrateResult.downtimeMs: the suspend request to the target's
 * "unpaused") misses what the client also waits for: the guest quiescing its devices before it
 * stops, and after it runs again netfront reconnecting to the new host's netback and the
 * gratuitous ARP that tells the bridges where the guest went.
 *
 * The peer is a guest on host C, a third host whose bridge's uplink reaches A's and B's (one
 * Ethernet segment: dom0/services/bridge/uplink.ts), so its path to the moving guest crosses one
 * uplink before the move and one after, and neither the source's nor the target's work runs on its
 * host. It runs udp-probe (domu/workloads/udp-probe.ts): one request in flight, back to back, each
 * answer checked (the request's sequence number and the payload's checksum), the same sequence
 * number asked again every `retryMs` while no answer comes; it logs every silence longer than
 * `gapMs` with the times of the answers on either side on the machine's clock, which the
 * toolstack's MigrateResult.suspendedAt also uses. The outage is the silence that holds the moment
 * the guest was stopped: from the last answer before the pause to the first after the resume. Its
 * resolution: one round trip at its start (requests back to back), `retryMs` at its end (the
 * re-asking interval).
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { XlClient } from '../../cli/client.ts';
import { startHost, type HostOptions, type RunningHost } from '../../cli/host.ts';
import type { MigrateResult } from '../../dom0/toolstack/migration/migrate.ts';
import { bounded } from './hang.ts';

/** The UDP port the moving guests serve udp-rr on (their `serve=` argument). */
export const RR_PORT = 7000;

const UPLINK_LINE = /uplink xenbr0-uplink through nic \S+, wire 127\.0\.0\.1:(\d+)/;

/**
 * A host whose xenbr0 has an uplink (naming `peers`, "127.0.0.1:PORT"), and that uplink's port,
 * read from the line its Dom0 logs (which may come after startHost resolves).
 */
export async function startUplinkedHost(opts: HostOptions, peers: number[] = []): Promise<{ host: RunningHost; port: number }> {
  let reported!: (port: number) => void;
  const port = new Promise<number>((r) => { reported = r; });
  const log = opts.log ?? (() => undefined);
  const host = await startHost({
    ...opts, bridges: [{ name: 'xenbr0', uplink: { port: 0, peers: peers.map((p) => `127.0.0.1:${p}`) } }],
    log: (l) => { const m = UPLINK_LINE.exec(l); if (m) reported(Number(m[1])); log(l); },
  });
  return { host, port: await bounded(port, () => `the uplink's port in the log of host ${host.runDir}`) };
}

/** A guest's vif line: mac 00:16:3e:00:07:NN, ip 10.0.7.NN (NN from 1 to 254). */
export function vifFor(n: number): { mac: string; ip: string; line: string } {
  if (!Number.isInteger(n) || n < 1 || n > 254) throw new RangeError(`vifFor(${n}): 1 to 254`);
  const mac = `00:16:3e:00:07:${n.toString(16).padStart(2, '0')}`;
  const ip = `10.0.7.${n}`;
  return { mac, ip, line: `vif = [ 'mac=${mac},ip=${ip},bridge=xenbr0' ]` };
}

export interface Silence {
  ms: number;
  /** The answers on either side: their sequence numbers and times (machine clock, ms). */
  before: { seq: number; at: number };
  after: { seq: number; at: number };
  /** The probe's running counts when the silence ended. */
  resent: number;
  bad: number;
}

export interface PeerOutage extends Silence {
  /** The last answer, this long before the suspend request (negative: after it). */
  lastBeforeSuspendMs: number;
  /** The first answer, this long after the target's "unpaused". */
  firstAfterUnpauseMs: number;
}

const SILENCE = /udp-probe: no answer for ([0-9.]+) ms, between the answers to (\d+) at ([0-9.]+) and to (\d+) at ([0-9.]+) \(machine clock, ms\); (\d+) re-sent, (\d+) bad so far/g;
const PROGRESS = /udp-probe: (\d+) answered, (\d+) re-sent, (\d+) bad/g;

/** The peer guest on host C, and what its console says. */
export class OutagePeer {
  private text = '';
  private readonly silences: Silence[] = [];
  private progress = { answered: 0, resent: 0, bad: 0 };
  /** Its last few console lines, for an error message. */
  private readonly tail: string[] = [];

  /** The connection its console comes through. */
  private consoleClient: XlClient | null = null;

  private constructor(readonly host: RunningHost, readonly name: string, readonly retryMs: number, readonly gapMs: number,
    private readonly xl: XlClient) {}

  /**
   * Create the peer `name` on `host` (its VM directory under `dir`), asking `target` (an IP) on
   * RR_PORT; resolves once it has had `warmup` answers, so the path through the bridges is learned.
   */
  static async start(host: RunningHost, dir: string, o: { name: string; vif: number; target: string; retryMs?: number; gapMs?: number; warmup?: number }): Promise<OutagePeer> {
    const retryMs = o.retryMs ?? 2;
    const gapMs = o.gapMs ?? 5;
    const d = join(dir, o.name);
    mkdirSync(d, { recursive: true });
    writeFileSync(join(d, 'vm.cfg'), `name = "${o.name}"\nmemory = 32\n${vifFor(o.vif).line}\nworkload = "udp-probe"\n` +
      `workload_args = [ "target=${o.target}", "port=${RR_PORT}", "retry=${retryMs}", "gap=${gapMs}", "report=100" ]\n`);
    const xl = await XlClient.open(host.runDir);
    await xl.call({ verb: 'create', path: d });
    const peer = new OutagePeer(host, o.name, retryMs, gapMs, xl);
    peer.consoleClient = await XlClient.open(host.runDir);
    await peer.consoleClient.console(o.name, (bytes) => peer.heard(Buffer.from(bytes).toString()), () => undefined);
    try {
      await peer.answeredBeyond(o.warmup ?? 100, 30000);
    } catch (e) {
      await peer.stop();
      throw e;
    }
    return peer;
  }

  private heard(s: string): void {
    // Keep only an unfinished line: the finished ones are parsed once.
    this.text += s;
    const end = this.text.lastIndexOf('\n');
    if (end < 0) return;
    const done = this.text.slice(0, end);
    this.text = this.text.slice(end + 1);
    this.tail.push(...done.split('\n'));
    this.tail.splice(0, this.tail.length - 6);
    for (const m of done.matchAll(SILENCE)) {
      this.silences.push({
        ms: Number(m[1]), before: { seq: Number(m[2]), at: Number(m[3]) }, after: { seq: Number(m[4]), at: Number(m[5]) },
        resent: Number(m[6]), bad: Number(m[7]),
      });
    }
    for (const m of done.matchAll(PROGRESS)) this.progress = { answered: Number(m[1]), resent: Number(m[2]), bad: Number(m[3]) };
  }

  /** Answers, re-sends and bad answers so far (its last progress line, one each 100 answers). */
  counts(): { answered: number; resent: number; bad: number } {
    return { ...this.progress };
  }

  /** Resolves once the peer reports more than `n` answers; throws after `timeoutMs`. */
  async answeredBeyond(n: number, timeoutMs = 30000): Promise<{ answered: number; resent: number; bad: number }> {
    for (let waited = 0; this.progress.answered <= n; waited += 20) {
      if (waited > timeoutMs) throw new Error(`${this.name}: no more than ${this.progress.answered} answers after ${timeoutMs} ms (wanted more than ${n}); its console ends:\n  ${this.tail.join('\n  ')}`);
      await new Promise((r) => setTimeout(r, 20)); // reading what the peer logged, not shaping it
    }
    return this.counts();
  }

  /**
   * The silence the peer saw around a migration: the one that holds the target's unpause (no
   * answer can come between the guest stopping and the unpause, so the answer that ends it is the
   * first after the resume, and the one that starts it the last the peer got before the pause).
   * Not the one holding the moment the guest stopped: on a loaded machine an answer the guest sent
   * just before it stopped can reach the peer inside the blackout, splitting the silence in two,
   * and that rule then picked the first part (a "first answer" before the unpause; 3 moves in 48
   * on a machine with a load of 10-15). The unpause is the sender's (MigrateResult.downtimeMs ends
   * when the target's report reaches it, a little after the real unpause); a genuine answer takes
   * the guest's vifs reconnecting, tens of ms after the unpause, so none comes before it. Failing that
   * (a blackout shorter than the peer's gapMs), the one holding the moment the source's toolstack
   * saw the guest stopped. It is logged when the first answer after it comes; null if none came
   * within `timeoutMs`.
   */
  async outageAround(r: Pick<MigrateResult, 'suspendedAt' | 'downtimeMs' | 'blackout'>, timeoutMs = 10000): Promise<PeerOutage | null> {
    const stoppedAt = r.suspendedAt + (r.blackout[0]?.ms ?? 0);
    const unpausedAt = r.suspendedAt + r.downtimeMs;
    const holds = (t: number) => (x: Silence) => x.before.at <= t && x.after.at >= t;
    for (let waited = 0; ; waited += 20) {
      const s = this.silences.find(holds(unpausedAt)) ?? (waited > timeoutMs ? this.silences.find(holds(stoppedAt)) : undefined);
      if (s !== undefined) return { ...s, lastBeforeSuspendMs: r.suspendedAt - s.before.at, firstAfterUnpauseMs: s.after.at - unpausedAt };
      if (waited > timeoutMs) return null;
      await new Promise((res) => setTimeout(res, 20)); // reading what the peer logged, not shaping it
    }
  }

  /** Destroy the peer guest and let go of the connections. */
  async stop(): Promise<void> {
    this.consoleClient?.close();
    this.consoleClient = null;
    try {
      await this.xl.call({ verb: 'destroy', domain: this.name });
    } finally {
      this.xl.close();
    }
  }
}
