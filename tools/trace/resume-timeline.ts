/*
 * The resume's timeline: from a migrated guest's unpause on the target to the first answer its
 * udp-rr peer gets, step by step, from the trace records every thread wrote on the machine's clock.
 *
 *   npx tsx tools/trace/resume-timeline.ts [--wss MiB] [--moves N] [--all] [--pv]
 *
 * Three hosts on one Ethernet segment as the migrate bench runs them (scenarios/bench/migrate.ts):
 * a 64 MiB guest running mem-touch (wss 16 MiB by default) and serving udp-rr moves from A to B
 * while a guest on C asks it every PEER_RETRY_MS (scenarios/lib/outage-peer.ts). Tracing (xentrace,
 * classes guest and pv) is on for the move only. Then, relative to Dom0's XEN_DOMCTL_unpausedomain
 * on B: the resumed kernel's first step and its record, each xenstore round trip it waits for (the
 * requests sent while none was in flight: XenbusClient.stats.rounds) and the xenbus states it
 * writes, xenstored taking its requests, netback's connect (the hotplug step's bridge port was made
 * at probe, before the unpause), rx buffers posted, the gratuitous ARP, the first request the
 * guest's stack took and its first answer, and the first answer the peer took; and the stalls of
 * this process's main thread (every host's control thread and network card run there); and the
 * go itself: the sender's last blackout phase (from the target's "ready" to its report) beside the
 * receiver's times from the go to its copy renamed and to its unpause. `--all`
 * lists every record of the three from the unpause to that answer; `--pv` records the pv class
 * too (every hypercall and event: the unpause itself, but many records to drain).
 *
 * Xen: what one would read from xentrace + xenalyze over a migration (tools/xentrace), with the
 * guest's own records (TRC_GUEST_*: shared/public/trace.ts).
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { XlClient } from '../../cli/client.ts';
import type { MigrateResult } from '../../dom0/toolstack/migration/migrate.ts';
import { OutagePeer, RR_PORT, startUplinkedHost, vifFor } from '../../scenarios/lib/outage-peer.ts';
import { hypercallName } from '../../shared/public/hypercall-ids.ts';
import { XS_TYPE_NAMES } from '../../shared/public/io/xs_wire.ts';
import { xenbusStateName, type XenbusStateValue } from '../../shared/public/io/xenbus.ts';
import * as T from '../../shared/public/trace.ts';
import { TraceRecording } from './record.ts';
import { ThreadSampler } from './thread-sampler.ts';

const G = T.TRC_GUEST & T.TRC_CLS_MASK;
const ev = (n: number) => G | n;
const PEER_RETRY_MS = 2;

interface Rec { event: number; domid: number; vcpu: number; ts: number; data: [number, number, number, number]; host?: number }

export interface Timeline {
  /** Milestones, ms after the unpause. */
  steps: { what: string; ms: number }[];
  /** The guest's xenstore round trips (requests sent while none was in flight) from its first step to its vif Connected, and after. */
  roundsToConnected: number;
  /** Its xenstore requests, and its EVTCHNOP_sends (the pv class's records; NaN without --pv), over the same span. */
  requestsToConnected: number;
  sendsToConnected: number;
  /** Every record between the unpause and the peer's first answer, ms after the unpause, described. */
  all: string[];
  /** The unpause and the peer's first answer, on the machine's clock (ms). */
  t0: number;
  end: number;
}

/** Build the timeline from one move's records: the target is bank `target`, the peer bank `peer`. */
export function timeline(recs: readonly Rec[], target: number, peer: number, peerDomid: number, heardUnpaused: number): Timeline | null {
  const bank = (r: Rec) => r.host ?? 0;
  const sorted = [...recs].sort((a, b) => a.ts - b.ts);
  const boot = sorted.find((r) => bank(r) === target && r.event === ev(T.TRC_GUEST_RESUME_BOOT));
  if (boot === undefined) return null;
  const guest = boot.domid;
  const unpause = [...sorted].reverse().find((r) => bank(r) === target && r.domid === 0 && r.ts <= boot.ts && r.event === T.TRC_PV_HYPERCALL &&
    hypercallName(r.data[0], r.data[1]).includes('unpausedomain'));
  // Without the pv class's hypercall records: when the sender heard "unpaused" (a little after it).
  const t0 = unpause?.ts ?? Math.min(heardUnpaused, boot.ts);
  const at = (r: Rec | undefined) => (r === undefined ? NaN : r.ts - t0);
  const inGuest = (r: Rec) => bank(r) === target && r.domid === guest;
  const inDom0 = (r: Rec) => bank(r) === target && r.domid === 0;
  const inPeer = (r: Rec) => bank(r) === peer && r.domid === peerDomid;
  const after = sorted.filter((r) => r.ts >= t0);
  const find = (p: (r: Rec) => boolean) => after.find(p);
  const connected = find((r) => inGuest(r) && r.event === ev(T.TRC_GUEST_XENBUS_STATE) && r.data[3] === 0 && r.data[2] === 4);
  const firstIn = find((r) => inGuest(r) && r.event === ev(T.TRC_GUEST_NET_UDP_IN) && r.data[2] === RR_PORT);
  const firstOut = firstIn && after.find((r) => r.ts >= firstIn.ts && inGuest(r) && r.event === ev(T.TRC_GUEST_NET_UDP_OUT) && r.data[1] === RR_PORT);
  const answer = firstOut && after.find((r) => r.ts >= firstOut.ts && inPeer(r) && r.event === ev(T.TRC_GUEST_NET_UDP_IN) && r.data[1] === RR_PORT);
  const end = answer?.ts ?? Infinity;
  const toConnected = after.filter((r) => inGuest(r) && r.ts <= (connected?.ts ?? Infinity));
  const rounds = toConnected.filter((r) => r.event === ev(T.TRC_GUEST_XS_REQUEST) && r.data[2] === 1).length;
  const requests = toConnected.filter((r) => r.event === ev(T.TRC_GUEST_XS_REQUEST)).length;
  const pv = sorted.some((r) => r.event === T.TRC_PV_HYPERCALL);
  const sends = pv ? toConnected.filter((r) => r.event === (T.TRC_PV_EVTCHN_SEND | T.TRC_BEGIN)).length : NaN;
  const steps = [
    { what: unpause ? 'unpause (Dom0 on the target: XEN_DOMCTL_unpausedomain)' : 'the sender heard "unpaused" (--pv: the unpause itself)', ms: unpause ? at(unpause) : heardUnpaused - t0 },
    { what: 'netback: the vif on its bridge (probe, hotplug: before the unpause if negative)', ms: at([...sorted].reverse().find((r) => inDom0(r) && r.ts <= t0 && r.event === ev(T.TRC_GUEST_NETBACK_BRIDGED) && r.data[0] === guest)) },
    { what: 'guest: first step in resume mode', ms: at(boot) },
    { what: 'guest: resume record read, its pages taken back', ms: at(find((r) => inGuest(r) && r.event === ev(T.TRC_GUEST_RESUME_RECORD))) },
    { what: 'guest: first xenstore request', ms: at(find((r) => inGuest(r) && r.event === ev(T.TRC_GUEST_XS_REQUEST))) },
    { what: 'xenstored: first request of the guest taken', ms: at(find((r) => inDom0(r) && r.event === ev(T.TRC_GUEST_XENSTORED_REQUEST) && r.data[0] === guest)) },
    { what: 'guest: netfront rx buffers posted', ms: at(find((r) => inGuest(r) && r.event === ev(T.TRC_GUEST_NETFRONT_RX_POSTED))) },
    { what: 'guest: vif Connected written', ms: at(connected) },
    { what: 'netback: connect begins', ms: at(find((r) => inDom0(r) && r.event === (ev(T.TRC_GUEST_NETBACK_CONNECT) | T.TRC_BEGIN) && r.data[0] === guest)) },
    { what: 'netback: connect ends (rings mapped, ports bound, hotplug-status read)', ms: at(find((r) => inDom0(r) && r.event === (ev(T.TRC_GUEST_NETBACK_CONNECT) | T.TRC_END) && r.data[0] === guest)) },
    { what: 'netback: Connected written', ms: at(find((r) => inDom0(r) && r.event === ev(T.TRC_GUEST_XENBUS_STATE) && r.data[0] === guest && r.data[3] === 1 && r.data[2] === 4)) },
    { what: 'guest: gratuitous ARP sent', ms: at(find((r) => inGuest(r) && r.event === ev(T.TRC_GUEST_NET_GARP))) },
    { what: 'guest: first udp-rr request taken by its stack', ms: at(firstIn) },
    { what: 'guest: its answer sent', ms: at(firstOut) },
    { what: 'peer (host C): the answer taken', ms: at(answer) },
  ];
  const all: string[] = [];
  for (const r of after) {
    if (r.ts > end) break;
    const sched = bank(r) === target && (r.event & T.TRC_CLS_MASK) === (T.TRC_SCHED & T.TRC_CLS_MASK);
    if (!(inGuest(r) || inDom0(r) || inPeer(r) || sched)) continue;
    all.push(`${at(r).toFixed(3).padStart(8)}  ${inGuest(r) ? 'guest' : inDom0(r) ? 'dom0 ' : inPeer(r) ? 'peer ' : `d${r.domid}  `} v${r.vcpu}  ${describe(r)}`);
  }
  return { steps, roundsToConnected: rounds, requestsToConnected: requests, sendsToConnected: sends, all, t0, end: Number.isFinite(end) ? end : t0 + 1000 };
}

/** A scheduler record's vCPU (sched/credit-core.ts traceUnit: domid << 8 | vcpu, -1 for none). */
function unitName(u: number): string {
  return (u | 0) < 0 ? 'idle' : `d${u >>> 8}v${u & 0xff}`;
}

const threadsNote = 'a thread not listed ran 0 ms or was not found; the sampler reads every ms, so short phases are rounded';
/** Milestones the per-thread breakdown is cut at (steps' names, from the unpause to the peer's answer). */
const CUTS: readonly [string, string][] = [
  ['unpause', 'unpause'], ['guest: first step', 'first step'], ['guest: first xenstore request', 'first xs request'],
  ['guest: vif Connected', 'vif Connected'], ['guest: first udp-rr request', 'first request in'], ['peer (host C)', "peer's answer"],
];

/** Per phase between the milestones: each watched thread's CPU ms / run-queue ms. */
function phaseThreads(tl: Timeline, threads: ThreadSampler): string[] {
  const cuts: { label: string; ms: number }[] = [];
  for (const [prefix, label] of CUTS) {
    const step = tl.steps.find((s) => s.what.startsWith(prefix) || (prefix === 'unpause' && s.ms === 0));
    if (step && Number.isFinite(step.ms) && (cuts.length === 0 || step.ms >= cuts[cuts.length - 1].ms)) cuts.push({ label, ms: step.ms });
  }
  const out: string[] = [];
  for (let i = 1; i < cuts.length; i++) {
    const a = cuts[i - 1], b = cuts[i];
    const spans = threads.between(tl.t0 + a.ms, tl.t0 + b.ms);
    const parts = [...spans].filter(([, v]) => v.cpuMs + v.runqMs >= 0.05).map(([k, v]) => `${k} ${v.cpuMs.toFixed(1)}/${v.runqMs.toFixed(1)}`);
    out.push(`${a.label} -> ${b.label} (${(b.ms - a.ms).toFixed(1)} ms): ${parts.join(', ') || '-'}`);
  }
  const all = threads.between(tl.t0, tl.end);
  out.push(`all of it: ${[...all].map(([k, v]) => `${k} ${v.cpuMs.toFixed(1)}/${v.runqMs.toFixed(1)}`).join(', ')}`);
  return out;
}

function describe(r: Rec): string {
  const [d0, d1, d2, d3] = r.data;
  const xs = (t: number) => XS_TYPE_NAMES[t] ?? String(t);
  switch (r.event & ~(T.TRC_BEGIN | T.TRC_END)) {
    case T.TRC_PV_HYPERCALL: return `hypercall ${hypercallName(d0, d1)}`;
    case T.TRC_PV_EVTCHN_SEND: return `evtchn send ${(r.event & T.TRC_END) ? `rc ${d0 | 0}` : `port ${d0}`}`;
    case ev(T.TRC_GUEST_XS_REQUEST): return `xs request ${xs(d0)} #${d1}${d2 ? ' (a round trip begins)' : ''}`;
    case ev(T.TRC_GUEST_XS_REPLY): return `xs reply ${xs(d0)} #${d1}`;
    case ev(T.TRC_GUEST_XS_WATCH_EVENT): return 'xs watch event';
    case ev(T.TRC_GUEST_XENSTORED_REQUEST): return `xenstored takes ${xs(d1)} #${d2} of ${d0 === 0x7fff ? 'a local client' : `domain ${d0}`}`;
    case ev(T.TRC_GUEST_XENBUS_STATE): return `xenbus ${d3 ? 'backend' : 'frontend'} (other end d${d0}, dev ${d1}) → ${xenbusStateName(d2 as XenbusStateValue)}`;
    case ev(T.TRC_GUEST_EVTCHN_UPCALL): return `upcall port ${d0}`;
    case ev(T.TRC_GUEST_RING_PUSH): return `ring push prod ${d0}${d2 ? ' (backend)' : ''}`;
    case ev(T.TRC_GUEST_RING_CONSUME): return `ring consume ${d0}${d1 ? ' (backend)' : ''}`;
    case ev(T.TRC_GUEST_NETBACK_CONNECT): return `netback connect ${(r.event & T.TRC_BEGIN) ? 'begins' : 'ends'} (d${d0}, dev ${d1})`;
    case ev(T.TRC_GUEST_NETBACK_BRIDGED): return `vif${d0}.${d1} on its bridge`;
    case ev(T.TRC_GUEST_NETFRONT_RX_POSTED): return `rx buffers posted: ${d1}`;
    case ev(T.TRC_GUEST_NET_GARP): return 'gratuitous ARP';
    case ev(T.TRC_GUEST_NET_UDP_IN): return `udp in from port ${d1} to ${d2}, ${d3} bytes`;
    case ev(T.TRC_GUEST_NET_UDP_OUT): return `udp out from port ${d1} to ${d2}, ${d3} bytes`;
    case ev(T.TRC_GUEST_RESUME_BOOT): return 'resume: first step';
    case T.TRC_SCHED_SWITCH: return `slot ${d0}: ${unitName(d1)} -> ${unitName(d2)}`;
    case T.TRC_CSCHED_TICKLE: return `slot ${d0} tickled (running ${unitName(d1)})`;
    case ev(T.TRC_GUEST_RESUME_RECORD): return 'resume: record read';
    default: return `event 0x${(r.event >>> 0).toString(16)} ${d0} ${d1} ${d2} ${d3}`;
  }
}

async function main(): Promise<void> {
  const argv = process.argv.slice(2);
  const opt = (name: string, dflt: number) => { const i = argv.indexOf(name); return i >= 0 ? Number(argv[i + 1]) : dflt; };
  const wss = opt('--wss', 16);
  const moves = opt('--moves', 1);
  const dir = mkdtempSync(join(tmpdir(), 'rv-resume-tl-'));
  const quiet = () => undefined;
  // The receiver's own times of the go (dom0/toolstack/migration/migrate-receive.ts), per move.
  let go = '';
  const target = (l: string) => { const m = /(the go: [^;]*)/.exec(l); if (m) go = m[1]; };
  const up = await startUplinkedHost({ runDir: join(dir, 'a'), memoryMiB: 128, log: target });
  const ub = await startUplinkedHost({ runDir: join(dir, 'b'), memoryMiB: 128, log: target }, [up.port]);
  const uc = await startUplinkedHost({ runDir: join(dir, 'c'), memoryMiB: 112, log: quiet }, [up.port, ub.port]);
  const hosts = [up.host, ub.host, uc.host];
  const xl = await Promise.all(hosts.map((h) => XlClient.open(h.runDir)));
  const name = 'moving';
  const vm = join(dir, name);
  mkdirSync(vm);
  const vif = vifFor(10);
  writeFileSync(join(vm, 'vm.cfg'), `name = "${name}"\nmemory = 64\n${vif.line}\n` +
    (wss === 0 ? `workload = "idle"\nworkload_args = [ "serve=${RR_PORT}" ]\n` : `workload = "mem-touch"\nworkload_args = [ "wss=${wss}", "serve=${RR_PORT}" ]\n`));
  try {
    await xl[0].call({ verb: 'create', path: vm });
    await new Promise((r) => setTimeout(r, 1500)); // mem-touch's first pass, so that precopy has a working set to chase
    const peer = await OutagePeer.start(uc.host, dir, { name: 'peer', vif: 100, target: vif.ip, retryMs: PEER_RETRY_MS });
    const peerDomid = (await xl[2].call<{ name: string; domid: number }[]>({ verb: 'list' })).find((d) => d.name === 'peer')?.domid ?? -1;
    for (let m = 0; m < moves; m++) {
      const [from, to] = m % 2 === 0 ? [0, 1] : [1, 0];
      // The process's main thread runs every host's control thread and network card (the
      // uplinks' sockets): its event loop's stalls, seen by a 1 ms interval timer.
      const ticks: number[] = [];
      const tick = setInterval(() => ticks.push(performance.timeOrigin + performance.now()), 1);
      // The guest class only, unless asked: the pv class (every hypercall and event) is many
      // records, and draining them costs this thread (the hosts' control thread) collections.
      // Each key thread's CPU time and run-queue waits (./thread-sampler.ts): this process's main
      // thread, Dom0's vCPUs on both hosts, and the moved guest's vCPU 0 on the target once it exists.
      const threads = new ThreadSampler();
      threads.watch('main thread', process.pid);
      for (const v of [0, 1]) {
        threads.watch(`target Dom0 v${v}`, hosts[to].host.sched.affinity.tidOf(0, v));
        threads.watch(`source Dom0 v${v}`, hosts[from].host.sched.affinity.tidOf(0, v));
      }
      const known = new Set(hosts[to].host.list().map((d) => d.domid));
      const findGuest = setInterval(() => {
        const d = hosts[to].host.list().find((i) => !known.has(i.domid) && i.name.startsWith(name));
        if (d && threads.watch('guest vCPU 0', hosts[to].host.sched.affinity.tidOf(d.domid, 0))) clearInterval(findGuest);
      }, 2);
      threads.start();
      const rec = new TraceRecording(T.TRC_GUEST | (argv.includes('--pv') ? T.TRC_PV : 0) | (argv.includes('--sched') ? T.TRC_SCHED : 0));
      const { port } = await xl[to].call<{ port: number }>({ verb: 'migrate-receive', port: 0 });
      const r = await xl[from].call<MigrateResult>({ verb: 'migrate', domain: name, host: '127.0.0.1', port });
      const outage = await peer.outageAround(r);
      const recs = rec.stop();
      clearInterval(tick);
      clearInterval(findGuest);
      await threads.stop();
      const tl = timeline(recs, to, 2, peerDomid, r.suspendedAt + r.downtimeMs);
      console.log(`move ${m + 1}, ${from === 0 ? 'A to B' : 'B to A'} (load average ${loadavg().map((x) => x.toFixed(2)).join(' ')}): xl downtime ${r.downtimeMs.toFixed(1)} ms; ` +
        `the peer saw ${outage?.ms.toFixed(1) ?? '?'} ms, its first answer ${outage?.firstAfterUnpauseMs.toFixed(1) ?? '?'} ms after the sender heard "unpaused"`);
      const last = r.blackout[r.blackout.length - 1];
      console.log(`  the sender: ${last?.phase} ${last?.ms.toFixed(2)} ms; the receiver: ${go || '?'}`);
      go = '';
      if (tl === null) { console.log('  no resume in the trace'); continue; }
      for (const s of tl.steps) console.log(`  ${Number.isNaN(s.ms) ? '      -' : s.ms.toFixed(2).padStart(7)} ms  ${s.what}`);
      console.log(`  CPU ms / run-queue ms of each thread, phase by phase (schedstat; ${threadsNote}):`);
      for (const l of phaseThreads(tl, threads)) console.log(`    ${l}`);
      console.log(`  the guest's xenstore round trips from its first step to its vif Connected: ${tl.roundsToConnected}` +
        ` (${tl.requestsToConnected} requests; its EVTCHNOP_sends: ${Number.isNaN(tl.sendsToConnected) ? '? (--pv counts them)' : tl.sendsToConnected})`);
      const stalls: string[] = [];
      for (let i = 1; i < ticks.length; i++) {
        const gap = ticks[i] - ticks[i - 1];
        const from = ticks[i - 1] - tl.t0;
        if (gap > 4 && from > -20 && from < tl.end - tl.t0) stalls.push(`${from.toFixed(1)} (+${gap.toFixed(1)})`);
      }
      console.log(`  the main thread's event loop stalled (ms after the unpause, +length): ${stalls.join(', ') || 'never over 4 ms'}`);
      // For a CPU profile (node --cpu-prof: V8's clock is CLOCK_MONOTONIC, as process.hrtime's).
      const monoOffset = performance.timeOrigin + performance.now() - Number(process.hrtime.bigint()) / 1e6;
      console.log(`  the unpause at ${(tl.t0 - monoOffset).toFixed(3)} ms on CLOCK_MONOTONIC`);
      if (argv.includes('--all')) for (const l of tl.all) console.log(`    ${l}`);
    }
    await peer.stop();
  } finally {
    for (const c of xl) c.close();
    for (const h of hosts) await h.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

if (import.meta.url === `file://${process.argv[1]}`) await main();
