/*
 * The net suite: guest-to-guest UDP over PV networking (netfront → netback → the bridge → netback
 * → netfront) and over an emulated e1000, against the floor: the same workloads between two
 * network stacks in Dom0 over the same bridge, with no guest.
 *
 *   pv                   udp-stream at 64 and 1472 bytes (netperf UDP_STREAM, every payload
 *                        checked, a window of 256 datagrams), and udp-rr at 64 bytes (UDP_RR: one
 *                        request and one response in flight). Netback as Linux's: the first 128
 *                        bytes of a tx packet grant-copied, the rest mapped (cached mappings), the
 *                        tx response sent when the frame is let go; rx grant-copied in batches;
 *                        UDP checksums offloaded as Linux's netfront does (csum_blank both ways:
 *                        between two guests of one host no checksum is computed)
 *   pv-copy              the same with netback copying every tx packet whole (netbackParams.txMap
 *                        = false): one copy op per slot, no mapping, the response at once
 *   emu-e1000            two HVM guests with an emulated e1000 each (dom0/device-models/e1000):
 *                        every register access traps and waits for Dom0; the driver writes TDT
 *                        once per burst (Linux's xmit_more); its driver uses none of the NIC's
 *                        offloads, so both guests sum every UDP checksum in software (Linux's
 *                        e1000 would hand the tx sum to the model, i.e. to Dom0: the same work
 *                        on the same host, and no fewer traps)
 *   emu-e1000-unbatched  the same with the driver writing TDT after every frame (e1000 before
 *                        xmit_more, or any simple driver): a synchronous trap per packet sent.
 *                        This is the "trapped e1000" the 10× goal compares `pv` with
 *   emu-e1000-buffered   batched TDT, plus the vif key bufioreq=1: writes outside QEMU's list of
 *                        synchronous registers (RDT, above all) go through Xen's buffered ioreq
 *                        page and the vCPU does not wait; reads, TDT, ICR, IMS/IMC stay synchronous
 *   bridge               the floor: the same udp-stream and udp-rr code between two stacks inside
 *                        Dom0, each on a veth-like port of xenbr0 (scenarios/net/bridge-floor.ts):
 *                        the same window, checksums (offloaded, as veth does) and copies in and
 *                        out, no ring, no grant
 *   bridge-raw           the bridge alone: a prebuilt frame into xenbr0, a sink that drops it
 *
 * Per-packet counters are the hypervisor's, over all domains, from the sender's start to the
 * moment the harness hears its stream end: event-channel notifications, grant-copy and grant-map
 * operations, hypercalls, wake-ups, traps, ioreqs (synchronous round trips) and bufioreqs.
 * Every run is repeated after a warm-up, in the same guests (as netperf is run again in the same
 * VMs: the floor's stacks live in Dom0 and are warm too); the figure is the median.
 *
 * Waiting policy: the guests and Dom0 wait in the kernel's idle loop (shared/kernel/events.ts),
 * where netfront, netback, the e1000 driver and model all register as pollers. Every row runs once
 * per policy (--wait irq|poll|both), on a host of its own whose every waiter follows it.
 */
import { NetHost, type TaskOutcome } from '../net/harness.ts';
import type { NetTask } from '../net/protocol.ts';
import { ACK_EVERY, WINDOW } from '../../domu/workloads/udp-stream.ts';
import { median, type BenchRow, type SuiteOptions } from './types.ts';
import type { WaitPolicy } from '../../shared/wait.ts';

const A = { mac: '00:16:3e:00:0b:0a', ip: '10.0.11.10' };
const B = { mac: '00:16:3e:00:0b:0b', ip: '10.0.11.11' };

export async function benchNet(opts: SuiteOptions): Promise<BenchRow[]> {
  const rows: BenchRow[] = [];
  // One host per waiting policy: Dom0, every guest and the trapping vCPU follow it (shared/wait.ts).
  for (const wait of opts.waits) rows.push(...(await underPolicy(opts, wait)));
  return rows;
}

async function underPolicy(opts: SuiteOptions, wait: WaitPolicy): Promise<BenchRow[]> {
  const say = (line: string) => (opts.progress ?? (() => {}))(`(wait=${wait}) ${line}`);
  const repeats = opts.quick ? 3 : 5;
  const streamCount = opts.quick ? 20_000 : 60_000;
  const rrCount = opts.quick ? 2_000 : 6_000;
  // The warm-up is as long as a full run's, --quick or not: a shorter one leaves the guests' and
  // Dom0's hot paths still being compiled (V8 tiers a function up after enough calls), and a quick
  // run then measured the compiler (pv 1472: ~260K pkt/s quick against ~440K full, same code).
  const warm = { stream: 60_000, rr: 6_000 };
  const h = await NetHost.boot({ memoryMiB: 256, wait });
  const rows: BenchRow[] = [];
  try {
    for (const path of PATHS) {
      // pv-copy: netback copies every tx packet whole (netbackParams.txMap = false) instead of mapping.
      await h.ask({ kind: 'netback-param', txMap: path !== 'pv-copy' }, 'netback-param-reply');
      for (const size of [64, 1472]) {
        say(`net: ${path} udp-stream ${size} bytes, ${streamCount} datagrams × ${repeats} (+ a warm-up of ${warm.stream})`);
        const runs = await stream(h, size, streamCount, repeats + 1, path, warm.stream);
        rows.push(streamRow(path, `udp-stream`, size, runs.slice(1)));
      }
      say(`net: ${path} udp-rr 64 bytes, ${rrCount} round trips × ${repeats} (+ a warm-up of ${warm.rr})`);
      rows.push(rrRow(await rr(h, 64, rrCount, repeats + 1, path, warm.rr), path));
    }
    // The floor: the same workloads between two stacks in Dom0 over the bridge (./net/bridge-floor.ts).
    for (const size of [64, 1472]) {
      say(`net: bridge floor udp-stream ${size} bytes, ${streamCount} datagrams × ${repeats} (+ a warm-up of ${warm.stream})`);
      rows.push(streamRow('bridge', 'udp-stream', size, await floor(h, 'udp-stream', size, streamCount, repeats + 1, warm.stream)));
    }
    say(`net: bridge floor udp-rr 64 bytes, ${rrCount} round trips × ${repeats} (+ a warm-up of ${warm.rr})`);
    rows.push(rrRow(await floor(h, 'udp-rr', 64, rrCount, repeats + 1, warm.rr), 'bridge'));
    // The bridge alone: a prebuilt frame in, a sink that drops it, one frame at a time.
    for (const size of [64, 1472]) {
      say(`net: bridge-raw, ${size} bytes`);
      const runs: Run[] = [];
      for (let r = 0; r < repeats + 1; r++) {
        const before = h.allCounters();
        const f = await h.ask({ kind: 'bridge-send', bridge: 'xenbr0', frames: streamCount, size: size + 42 }, 'bridge-send-reply');
        const pps = (f.frames * 1000) / f.ms;
        if (r > 0) runs.push({ pps, MBps: (pps * size) / 1e6, lost: streamCount - f.frames, counters: delta(h.allCounters(), before), packets: Math.max(1, f.frames) });
      }
      rows.push({ ...streamRow('bridge-raw', 'udp-stream', size, runs), queueDepth: 1 });
    }
  } finally {
    await h.close();
  }
  for (const r of rows) r.wait = wait;
  return rows;
}

interface Run { pps: number; MBps: number; lost: number; counters: Record<string, number>; packets: number }

const PATHS = ['pv', 'pv-copy', 'emu-e1000', 'emu-e1000-unbatched', 'emu-e1000-buffered'] as const;
type NetBenchPath = (typeof PATHS)[number];

/** What a guest on `path` adds to its spec: nothing for a vif, an emulated e1000 otherwise. */
function nicOf(path: NetBenchPath): { e1000?: { buffered: boolean; txKick: 'burst' | 'each' } } {
  return path === 'pv' || path === 'pv-copy' ? {} : { e1000: { buffered: path === 'emu-e1000-buffered', txKick: path === 'emu-e1000-unbatched' ? 'each' : 'burst' } };
}

/**
 * `n` streams of `count` datagrams from A to B (the first is the warm-up), all between one pair of
 * guests, as netperf is run again in the same VMs: the warm-up warms the guests' kernels (their
 * JIT-compiled code, their ARP caches) as it warms Dom0's, and as the floor's stacks, which live
 * in Dom0, are warmed by theirs. Each stream has its own port; the counters of a run are those
 * from its start to the moment the harness heard its sender finish.
 */
async function stream(h: NetHost, size: number, count: number, n: number, path: NetBenchPath, warmCount: number): Promise<Run[]> {
  const port = (i: number) => 5001 + i;
  const countOf = (i: number) => (i === 0 ? warmCount : count);
  const recvTasks: NetTask[] = [];
  const sendTasks: NetTask[] = [{ kind: 'ping', target: B.ip, count: 1 }];
  for (let i = 0; i < n; i++) {
    recvTasks.push({ kind: 'stream-recv', port: port(i) });
    sendTasks.push({ kind: 'barrier', name: `go${i}` }, { kind: 'stream-send', target: B.ip, port: port(i), size, count: countOf(i) });
  }
  const recv = await h.start({ vif: B, ...nicOf(path), tasks: recvTasks });
  const send = await h.start({ vif: A, ...nicOf(path), tasks: sendTasks });
  const befores: Record<string, number>[] = [];
  for (let i = 0; i < n; i++) {
    await recv.note(`listen:${port(i)}`);
    await send.note(`barrier:go${i}`);
    befores.push(h.allCounters());
    await send.go(`go${i}`);
  }
  const [so, ro] = await Promise.all([send.outcome, recv.outcome]);
  return befores.map((before, i) => streamRun(so.tasks[2 + 2 * i], ro.tasks[i], before, countOf(i)));
}

function streamRun(s: TaskOutcome, r: TaskOutcome, before: Record<string, number>, count: number): Run {
  const failed = [s, r].find((t) => t.error !== null);
  if (failed) throw new Error(`net bench: ${failed.error}`);
  if (r.result?.kind !== 'stream' || s.result?.kind !== 'stream') throw new Error('net bench: no stream result');
  if (r.result.result.bad > 0) throw new Error(`net bench: ${r.result.result.bad} datagrams arrived corrupted`);
  // Packets: the datagrams, their acks, the end marker and its answer.
  const packets = count + Math.ceil(count / ACK_EVERY) + 2;
  return { pps: s.result.result.pps, MBps: s.result.result.MBps, lost: r.result.result.lost, counters: delta(s.counters, before), packets };
}

/** `n` runs of a workload between two stacks in Dom0 (no guest): the floor. */
async function floor(h: NetHost, workload: 'udp-stream' | 'udp-rr', size: number, count: number, n: number, warmCount: number): Promise<Run[]> {
  const runs: Run[] = [];
  for (let i = 0; i < n; i++) {
    const before = h.allCounters();
    const f = await h.ask({ kind: 'floor-run', bridge: 'xenbr0', workload, size, count: i === 0 ? warmCount : count }, 'floor-reply');
    if (f.error !== undefined) throw new Error(`net bench floor: ${f.error}`);
    runs.push({ pps: f.pps, MBps: f.MBps, lost: f.lost, counters: delta(h.allCounters(), before), packets: f.packets });
  }
  return runs.slice(1);
}

/** `n` request/response runs (the first is the warm-up), between one pair of guests as stream(). */
async function rr(h: NetHost, size: number, count: number, n: number, path: NetBenchPath, warmCount: number): Promise<Run[]> {
  const port = (i: number) => 5101 + i;
  const countOf = (i: number) => (i === 0 ? warmCount : count);
  const serverTasks: NetTask[] = [];
  const clientTasks: NetTask[] = [{ kind: 'ping', target: B.ip, count: 1 }];
  for (let i = 0; i < n; i++) {
    serverTasks.push({ kind: 'rr-server', port: port(i) });
    clientTasks.push({ kind: 'barrier', name: `go${i}` }, { kind: 'rr-client', target: B.ip, port: port(i), size, count: countOf(i) });
  }
  const server = await h.start({ vif: B, ...nicOf(path), tasks: serverTasks });
  const client = await h.start({ vif: A, ...nicOf(path), tasks: clientTasks });
  const befores: Record<string, number>[] = [];
  for (let i = 0; i < n; i++) {
    await server.note(`listen:${port(i)}`);
    await client.note(`barrier:go${i}`);
    befores.push(h.allCounters());
    await client.go(`go${i}`);
  }
  const [co] = await Promise.all([client.outcome, server.outcome]);
  const runs = befores.map((before, i): Run => {
    const c = co.tasks[2 + 2 * i];
    if (c.error !== null || c.result?.kind !== 'stream') throw new Error(`net bench rr: ${c.error}`);
    if (c.result.result.bad > 0) throw new Error(`net bench rr: ${c.result.result.bad} bad responses`);
    return { pps: c.result.result.pps, MBps: c.result.result.MBps, lost: 0, counters: delta(c.counters, before), packets: 2 * countOf(i) };
  });
  return runs.slice(1);
}

function perPacket(runs: Run[]): Record<string, number> {
  const m = (k: string) => median(runs.map((r) => (r.counters[k] ?? 0) / r.packets));
  // handovers, futexWakes, evtWakes: what scheduling cost the host per packet, counted
  // (hypervisor/sched/tables.ts G): pCPU slots handed to a waiting vCPU, and the host thread
  // wake-ups of those hand-overs and of events that woke a blocked vCPU's thread.
  const futex = (r: Run) => (r.counters.sched_slot_wakes ?? 0) + (r.counters.sched_evt_wakes ?? 0);
  return {
    notifications: m('notifications'), grantCopies: m('grant_copies'), grantMaps: m('grant_maps'), hypercalls: m('hypercalls'), traps: m('traps'), ioreqs: m('ioreqs'),
    bufioreqs: m('bufioreqs'), wakeups: m('wakeups'), handovers: m('sched_handovers'), futexWakes: median(runs.map((r) => futex(r) / r.packets)),
    evtWakes: m('sched_evt_wakes'), lost: median(runs.map((r) => r.lost)),
  };
}

function streamRow(path: string, workload: string, size: number, runs: Run[]): BenchRow {
  const pps = runs.map((r) => r.pps);
  return {
    suite: 'net', path, wait: 'irq', workload, blockSize: size, queueDepth: WINDOW, reqPerSec: median(pps), MBps: median(runs.map((r) => r.MBps)),
    counters: perPacket(runs), repeats: runs.length, min: Math.min(...pps), max: Math.max(...pps),
  };
}

function rrRow(runs: Run[], path: string = 'pv'): BenchRow {
  const tps = runs.map((r) => r.pps);
  return {
    suite: 'net', path, wait: 'irq', workload: 'udp-rr', blockSize: 64, queueDepth: 1, reqPerSec: median(tps), MBps: median(runs.map((r) => r.MBps)),
    counters: perPacket(runs), repeats: runs.length, min: Math.min(...tps), max: Math.max(...tps), medianUs: 1e6 / median(tps),
  };
}

function delta(after: Record<string, number>, before: Record<string, number>): Record<string, number> {
  return Object.fromEntries(Object.entries(after).map(([k, v]) => [k, v - (before[k] ?? 0)]));
}
