/*
 * One row of the scale suite: N guests created one after another, warmed up and then released
 * together on the same job for one timed window; their IOPS, Jain's index, create times, memory
 * per guest, and the mechanism counters per request and the scheduler's figures over the window.
 *
 * Xen: the guests' blkfront and Dom0's blkback (xen_blkif_schedule) under the credit scheduler;
 * what the counters mean is said where each is taken. The suite is ./scale.ts.
 */
import type { FioJob } from '../../domu/workloads/fio.ts';
import type { BlockHost, GuestOutcome } from '../block/harness.ts';
import type { WaitPolicy } from '../../shared/wait.ts';
import { median } from './types.ts';
import { VT } from '../../hypervisor/state.ts';
import { GF } from '../../hypervisor/sched/tables.ts';
import { watchPlacement } from './thread-placement.ts';
import { DEPTH, GUEST_MIB, jain, type ScaleFigures, type ScaleRow } from './scale-figures.ts';

/**
 * blkfront's options for the guests: its defaults, or SCALE_QUEUES=n queues (scale-one.ts; Linux's
 * blkfront makes at most one ring per vCPU, ringvisor's defaults to 4 whatever the vCPUs).
 */
function frontOptions(): { front?: { maxQueues: number } } {
  const q = Number(process.env.SCALE_QUEUES);
  return Number.isInteger(q) && q > 0 ? { front: { maxQueues: q } } : {};
}

/** A barrier for N guests: each arrival waits until all N have arrived; `onAll` runs once, first. */
function barrier(n: number, onAll: () => void = () => {}): () => Promise<void> {
  let arrived = 0;
  let release!: () => void;
  const all = new Promise<void>((r) => { release = r; });
  return async () => {
    if (++arrived === n) { onAll(); release(); }
    await all;
  };
}

/**
 * One row. `onWindow` is told when the timed window starts and when its first guest is done
 * (scale-one.ts counts the process's system calls over it with perf).
 */
export async function runN(host: BlockHost, image: string, n: number, job: FioJob, wait: WaitPolicy, cpus?: number[],
  onWindow?: (edge: 'start' | 'end') => void): Promise<ScaleRow> {
  const hostSched = host.host.sched;
  const gc = (globalThis as { gc?: () => void }).gc;
  gc?.();
  const rssBefore = process.memoryUsage().rss;
  let rssAll = rssBefore;
  const warmTogether = barrier(n, () => { gc?.(); rssAll = process.memoryUsage().rss; });
  // The scheduler over the timed window: from the release to the first guest done.
  let schedFrom = schedSnapshot(host);
  let schedOver: Record<string, number> | null = null;
  let placement: (() => number | null) | null = null;
  let sameCpu: number | null = null;
  const domids: number[] = [];
  const tids = () => {
    const a = hostSched.affinity.tidOf(0, 0);
    const b = domids.length === 1 ? hostSched.affinity.tidOf(domids[0], 0) : null;
    return a !== null && b !== null ? [a, b] as const : null;
  };
  // With one guest, the pair watched is Dom0's vCPU thread and the guest's; with more, the two busiest.
  const timeTogether = barrier(n, () => { onWindow?.('start'); schedFrom = schedSnapshot(host); placement = watchPlacement(tids()); });
  const createMs: number[] = [];
  const runs: Promise<GuestOutcome>[] = [];
  for (let g = 0; g < n; g++) {
    // Created one after another so each create is timed alone; their I/O starts together.
    let running!: () => void;
    const up = new Promise<void>((r) => { running = r; });
    runs.push(host.runGuest({
      image, readOnly: true, memoryMiB: GUEST_MIB, tasks: [{ kind: 'fio', job }], ...(cpus ? { cpus } : {}), ...frontOptions(),
      onRunning: (d, ms) => { createMs.push(ms); domids.push(d); running(); },
      beforeWarmup: warmTogether,
      beforeTimed: timeTogether,
      afterTask: () => {
        if (schedOver !== null) return;
        schedOver = diff(schedSnapshot(host), schedFrom);
        onWindow?.('end');
        sameCpu = placement?.() ?? null;
      },
    }));
    await Promise.race([up, runs[g]]);
  }
  const outs = await Promise.all(runs);
  const results = outs.map((o) => {
    const t = o.tasks[0]!;
    if (t.error !== null || t.result?.kind !== 'fio') throw new Error(`scale ×${n}: a guest failed: ${t.error}`);
    return t.result.result;
  });
  const iops = results.map((r) => r.iops);
  const aggregate = iops.reduce((a, b) => a + b, 0);
  const requests = results.reduce((a, r) => a + r.ios, 0);
  const counters = perRequest(outs, requests);
  const sched = schedOver ?? diff(schedSnapshot(host), schedFrom);
  // Why the aggregate moves with N: how much of its window Dom0 (the one server) spent waiting
  // for a pCPU slot, and how often slots changed hands, per request.
  counters.dom0SlotWait = sched.running + sched.runnable > 0 ? sched.runnable / (sched.running + sched.runnable) : 0;
  const windowRequests = Math.max(1, (aggregate * sched.window) / 1000);
  counters.slotSwitches = sched.switches / windowRequests;
  // What the scheduler cost the host, per request, counted (hypervisor/sched/tables.ts G): slots
  // handed to a waiting vCPU, the host thread wake-ups (futex) of slot hand-overs and of events
  // that woke a blocked vCPU, and wake-ups that asked a running vCPU to reschedule (tickles).
  counters.handovers = sched.handovers / windowRequests;
  counters.futexWakes = (sched.slotWakes + sched.evtWakes) / windowRequests;
  counters.evtWakes = sched.evtWakes / windowRequests;
  // ... and events that queued a sleeping vCPU for a slot without waking its thread (vcpu_wake on the sender's side).
  counters.wakesQueued = sched.wakesQueued / windowRequests;
  // ... and slots handed to a thread not yet running that an awake vCPU took over (work conservation).
  counters.takeovers = sched.takeovers / windowRequests;
  counters.tickles = sched.tickles / windowRequests;
  counters.boostPreempts = sched.boostPreempts / windowRequests;
  // What a request costs the host's CPU (every thread of the process: the vCPUs, Dom0's included,
  // and the control thread), and host thread switches per request (getrusage): a voluntary one is
  // a thread going to sleep, an involuntary one a thread the host OS preempted.
  counters.cpuUs = (sched.cpuMs * 1000) / windowRequests;
  // ... of which in the host kernel (system calls: futex waits and wake-ups, epoll, the disk's reads).
  counters.sysUs = (sched.sysMs * 1000) / windowRequests;
  counters.hostSleeps = sched.volCs / windowRequests;
  counters.hostPreempts = sched.involCs / windowRequests;
  const window = {
    // Is the host CPU-bound? Cores busy (process CPU time / window) against pCPU slots held.
    coresBusy: sched.window > 0 ? sched.cpuMs / sched.window : 0,
    slotsHeld: sched.window > 0 ? sched.slotMs / sched.window : 0,
    // How long a woken thread took to run: from the slot given to it, from the event sent to it (µs).
    slotWakeUs: sched.slotLatN > 0 ? (sched.slotLatUs | 0) / sched.slotLatN : 0,
    evtWakeUs: sched.evtLatN > 0 ? (sched.evtLatUs | 0) / sched.evtLatN : 0,
    // The share of slot time a slot was held by a thread not yet running (given while it slept).
    slotDead: sched.slotMs > 0 ? (sched.slotLatUs | 0) / 1000 / sched.slotMs : 0,
  };
  const figures: ScaleFigures = {
    guests: n, perGuestIops: iops, minIops: Math.min(...iops), maxIops: Math.max(...iops), jain: jain(iops),
    createMs, createMedianMs: median(createMs), rssMiBPerGuest: (rssAll - rssBefore) / 2 ** 20 / n, guestRamMiB: GUEST_MIB,
    pcpus: hostSched.pcpus, ...window, repeatIops: [aggregate], repeatCores: [window.coresBusy], sameCpu, repeatSameCpu: [sameCpu], pinned: null,
  };
  return {
    suite: 'scale', path: 'pv', wait, workload: `rand-read ×${n}`, blockSize: job.bs, queueDepth: DEPTH,
    reqPerSec: aggregate, iops: aggregate, MBps: (aggregate * job.bs) / 1e6, counters, repeats: n, min: figures.minIops, max: figures.maxIops,
    samples: results.map((r) => ({ reqPerSec: r.iops, ios: r.ios, ms: r.ms, maxInFlight: r.maxInFlight })),
    scale: figures,
  };
}

/** Dom0's vCPU 0 runstate times (ms) and the credit scheduler's counters, now. */
function schedSnapshot(host: BlockHost): Record<string, number> {
  const t = host.host.hv.vcpuTime;
  const s = host.host.sched;
  const c = s.counters();
  const cpu = process.cpuUsage();
  const ru = process.resourceUsage();
  return {
    volCs: ru.voluntaryContextSwitches, involCs: ru.involuntaryContextSwitches,
    cpuMs: (cpu.user + cpu.system) / 1000, sysMs: cpu.system / 1000,
    // pcpuLoad's shares are of the time since boot: back to ms of slot time held.
    slotMs: s.pcpuLoad().reduce((a, p) => a + p.load, 0) * (performance.timeOrigin + performance.now() - s.t.f64[GF.BOOT]),
    running: t[VT.RUNNING], runnable: t[VT.RUNNABLE], switches: c.switches, boostPreempts: c.boost_preempts, window: performance.now(),
    handovers: c.handovers, slotWakes: c.slot_wakes, evtWakes: c.evt_wakes, tickles: c.tickles, wakesQueued: c.wakes_queued, takeovers: c.takeovers,
    slotLatUs: c.slot_lat_us, slotLatN: c.slot_lat_n, evtLatUs: c.evt_lat_us, evtLatN: c.evt_lat_n,
  };
}

function diff(a: Record<string, number>, b: Record<string, number>): Record<string, number> {
  return Object.fromEntries(Object.keys(a).map((k) => [k, a[k] - b[k]]));
}

/** Mechanism counters per request, summed over the guests (the domU side) and Dom0. */
function perRequest(outs: GuestOutcome[], requests: number): Record<string, number> {
  const dom0 = outs[0]!.tasks[0]!.counters.dom0; // Dom0's over one guest's timed part: the runs overlap, so about the whole
  const sum = (f: (o: GuestOutcome) => number) => outs.reduce((a, o) => a + f(o), 0);
  const front = sum((o) => o.tasks[0]!.counters.domU.notifications);
  return {
    notifications: (front + dom0.notifications) / requests,
    // ... of which the guests' (blkfront → blkback) and Dom0's (blkback → blkfront).
    notifyFront: front / requests,
    notifyBack: dom0.notifications / requests,
    wakeups: (sum((o) => o.tasks[0]!.counters.domU.wakeups) + dom0.wakeups) / requests,
    // The cost model's terms (issue 17): each SCHEDOP_block that slept is a thread turn of its
    // domain (a guest wake-up, or Dom0's); its inverse is the requests served per turn.
    guestBlocks: sum((o) => o.tasks[0]!.counters.domU.blocks) / requests,
    dom0Blocks: dom0.blocks / requests,
    hypercalls: (sum((o) => o.tasks[0]!.counters.domU.hypercalls) + dom0.hypercalls) / requests,
    // blkback's turns that took work, over each disk's life (warm-up included): requests per turn.
    reqPerTurn: sum((o) => o.backend.requests ?? 0) / Math.max(1, sum((o) => o.backend.turns ?? 0)),
  };
}
