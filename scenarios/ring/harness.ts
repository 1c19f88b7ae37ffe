/*
 * Runs the ringtest device between Dom0 and one DomU on a fresh host, and reports what
 * happened: the frontend's and backend's statistics, the hypervisor's counters for both
 * domains, and what the host held before and after (so a caller can prove nothing leaked).
 *
 * Used by the ring tests and by `npm run bench -- --suite ring`.
 */
import { BroadcastChannel } from 'node:worker_threads';
import { randomUUID } from 'node:crypto';
import type { RingtestBackOptions, RingtestBackStats } from '../../dom0/backends/ringtest-back.ts';
import type { RingtestFrontOptions, RingtestFrontStats } from '../../domu/ringtest-front.ts';
import { Host, type HostUsage } from '../../hypervisor/host.ts';
import { bareToolstack } from '../bare-toolstack.ts';
import { bounded } from '../lib/hang.ts';
import { HARNESS_BOUND_S } from '../lib/inbox.ts';
import type { RingtestMessage, RingtestModule } from './protocol.ts';

export interface RingtestOptions {
  requests: number;
  depth: number;
  len: number | 'mixed';
  check: boolean;
  front?: RingtestFrontOptions;
  back?: RingtestBackOptions;
  /** Requests each round sends before the timed part (JIT warm-up). */
  warmup?: number;
  /** Repeat the run this many times on the same host, each with a fresh DomU. */
  rounds?: number;
}

export interface RingtestRound {
  front: RingtestFrontStats;
  back: RingtestBackStats;
  ms: number;
  /** Hypervisor counters over the whole round, warm-up included. */
  counters: { dom0: Record<string, number>; domU: Record<string, number> };
  /** The same counters over the timed part only. */
  timed: { dom0: Record<string, number>; domU: Record<string, number> };
  deferredGrants: number;
}

export interface RingtestResult {
  rounds: RingtestRound[];
  usageBefore: HostUsage;
  usageAfter: HostUsage;
  dom0Log: string[];
}

const BACK_KERNEL = new URL('./back-kernel.ts', import.meta.url).href;
const FRONT_KERNEL = new URL('./front-kernel.ts', import.meta.url).href;

export async function runRingtest(opts: RingtestOptions): Promise<RingtestResult> {
  const host = new Host({ memoryMiB: 64 });
  bareToolstack(host); // the frontend domains power off when released: destroy them, as xl would
  const dom0Log: string[] = [];
  host.on('console', (e: { domid: number; text: string }) => dom0Log.push(`d${e.domid}: ${e.text}`));
  const crashes: string[] = [];
  let waiting: (() => void) | null = null;
  host.on('shutdown', (e: { domid: number; reason: string; detail: string }) => {
    if (e.reason === 'crash') crashes.push(`d${e.domid} crashed: ${e.detail}`);
    waiting?.();
  });
  const channel = `ringvisor-ringtest-${randomUUID()}`;
  const ch = new BroadcastChannel(channel);
  const inbox: RingtestMessage[] = [];
  ch.onmessage = (ev) => {
    inbox.push((ev as { data: RingtestMessage }).data);
    waiting?.();
  };
  const next = <K extends RingtestMessage['kind']>(kind: K, match: (m: Extract<RingtestMessage, { kind: K }>) => boolean = () => true) => {
    const wait = async () => {
      for (;;) {
        if (crashes.length) throw new Error(crashes.join('\n'));
        const failed = inbox.find((m) => m.kind === 'failed');
        if (failed && failed.kind === 'failed') throw new Error(`ringtest d${failed.domid}: ${failed.error}`);
        const i = inbox.findIndex((m) => m.kind === kind && match(m as Extract<RingtestMessage, { kind: K }>));
        if (i >= 0) return inbox.splice(i, 1)[0] as Extract<RingtestMessage, { kind: K }>;
        await new Promise<void>((r) => { waiting = r; });
      }
    };
    // A harness's bound (../lib/inbox.ts): the ring benchmarks wait here for whole runs.
    return bounded(wait(), () => `waiting for a ringtest '${kind}' message; unclaimed: ${inbox.map((m) => m.kind).join(', ') || 'none'}`, HARNESS_BOUND_S);
  };
  const post = (m: RingtestMessage) => ch.postMessage(m);
  /**
   * A DomU gets a channel of its own, never Dom0's: the harness relays its 'connect' to Dom0 with
   * the frontend's domid stamped by the harness, as xenstored knows which domain a connection is,
   * and Dom0's answer back (README, "Isolation").
   */
  const guests: BroadcastChannel[] = [];
  const guestChannel = (domid: () => number) => {
    const g = new BroadcastChannel(`ringvisor-ringtest-guest-${randomUUID()}`);
    guests.push(g);
    g.onmessage = (ev) => {
      const m = (ev as { data: RingtestMessage }).data;
      if (m.kind === 'connect') post({ kind: 'connect', connect: { ...m.connect, frontend: domid() } });
      else inbox.push(m);
      waiting?.();
    };
    return g;
  };

  try {
    const module0: RingtestModule = { channel, back: opts.back };
    await host.createDomain({ name: 'Domain-0', vcpus: 1, memoryKiB: 16 * 1024, kernel: BACK_KERNEL, module: module0 }, { privileged: true });
    await next('backend-ready');
    const usageBefore = host.usage();
    const rounds: RingtestRound[] = [];
    for (let round = 0; round < (opts.rounds ?? 1); round++) {
      const nonce = randomUUID();
      let domid = -1;
      const guest = guestChannel(() => domid);
      const module: RingtestModule = { channel: guest.name, nonce };
      domid = await host.createDomain({ name: `ringtest-${round}`, vcpus: 1, memoryKiB: 8 * 1024, kernel: FRONT_KERNEL, module });
      const gone = new Promise<void>((r) => {
        const onDestroyed = (e: { domid: number }) => {
          if (e.domid !== domid) return;
          host.off('destroyed', onDestroyed);
          r();
        };
        host.on('destroyed', onDestroyed);
      });
      await next('frontend-ready', (m) => m.nonce === nonce);
      guest.postMessage({ kind: 'start', domid, backend: 0, front: opts.front ?? {}, run: { requests: opts.requests, warmup: opts.warmup, depth: opts.depth, len: opts.len, check: opts.check } });
      const connected = await next('connected', (m) => m.frontend === domid);
      guest.postMessage(connected);
      await next('warm', (m) => m.domid === domid);
      const warm = { dom0: host.counters(0), domU: host.counters(domid) };
      const result = await next('result', (m) => m.domid === domid);
      const timed = { dom0: delta(host.counters(0), warm.dom0), domU: delta(host.counters(domid), warm.domU) };
      post({ kind: 'disconnect', frontend: domid });
      const back = await next('disconnected', (m) => m.frontend === domid);
      const counters = { dom0: host.counters(0), domU: host.counters(domid) };
      guest.postMessage({ kind: 'release', domid });
      const released = await next('released', (m) => m.domid === domid);
      await gone;
      rounds.push({ front: result.stats, back: back.stats, ms: result.ms, counters, timed, deferredGrants: released.deferred });
    }
    return { rounds, usageBefore, usageAfter: host.usage(), dom0Log };
  } finally {
    ch.close();
    for (const g of guests) g.close();
    await host.close();
  }
}

function delta(after: Record<string, number>, before: Record<string, number>): Record<string, number> {
  return Object.fromEntries(Object.entries(after).map(([k, v]) => [k, v - (before[k] ?? 0)]));
}
