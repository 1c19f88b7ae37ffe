/*
 * A host with Dom0 (xenstored, xenconsoled, blkback) ready to give guests disks: boots once,
 * then runs one DomU after another, each with a virtual disk on an image file and a list of
 * tasks, and collects what they report with the hypervisor's counters around each timed part.
 *
 * Used by the block tests, `npm run bench -- --suite block` and the scenarios.
 */
import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { BroadcastChannel } from 'node:worker_threads';
import type { Dom0Message, Dom0Request } from '../../dom0/toolstack/control.ts';
import type { DeviceSpec } from '../../dom0/toolstack/xenstore-home.ts';
import type { Dom0Module } from '../../dom0/kernel.ts';
import type { BlkfrontOptions } from '../../domu/blkfront/blkfront.ts';
import type { FioJob, FioResult } from '../../domu/workloads/fio.ts';
import { Host, type HostOptions, type HostUsage, type ShutdownEvent } from '../../hypervisor/host.ts';
import type {
  BlockGuestModule, BlockMessage, BlockTask, BlockTaskResult, DeviceReport, DiskPath, NativeResult, WaitReport,
} from './protocol.ts';
import { CMDLINE_DRIVER_DOMAIN, CMDLINE_WAIT, CMDLINE_WORKLOAD } from '../../shared/public/cmdline.ts';
import { DEFAULT_WAIT_POLICY, type WaitPolicy } from '../../shared/wait.ts';
import { Inbox } from '../lib/inbox.ts';

const DOM0_KERNEL = new URL('../../dom0/kernel.ts', import.meta.url).href;
const DOM0_MODULE = new URL('./dom0-module.ts', import.meta.url).href;
const GUEST_KERNEL = new URL('./guest-kernel.ts', import.meta.url).href;
/** The standard DomU kernel: a storage driver domain boots it with driver_domain=1 (domu/driver-domain.ts). */
const DOMU_KERNEL = new URL('../../domu/kernel.ts', import.meta.url).href;
export const XVDA = 51712; // (202 << 8) | (0 << 4): xvda in vbd-interface numbering

/** Per-disk switches, written by the toolstack into the backend directory (see backends/blkback/xenbus.ts). */
export interface DiskSwitches {
  persistent?: boolean;
  maxIndirectSegments?: number;
  maxRingPageOrder?: number;
  maxQueues?: number;
  discard?: boolean;
  /** A driver domain serving this disk panics once a ring has taken this many requests (backends/blkback/xenbus.ts). */
  crashBackendDomainAfter?: number;
}

export interface GuestRun {
  image: string;
  /** The domain serving the disk: Dom0 (default) or a storage driver domain (startDriverDomain). */
  backend?: number;
  /** How the guest reaches the disk (default pv). */
  path?: DiskPath;
  readOnly?: boolean;
  disk?: DiskSwitches;
  front?: BlkfrontOptions;
  tasks: BlockTask[];
  memoryMiB?: number;
  /** xl.cfg `cpus`: the guest's hard affinity (pCPU slots; its thread is pinned to their cores). */
  cpus?: number[];
  /** Another guest kernel speaking the same protocol (tests use a hostile one), and its extra module fields. */
  kernel?: string;
  extra?: Record<string, unknown>;
  /**
   * For a fio task i: run before its warm-up starts and before its timed part starts (the guest
   * waits at each), and after it ended. The benchmark uses them to give each path its turn.
   */
  beforeWarmup?: (i: number) => Promise<void>;
  beforeTimed?: (i: number) => Promise<void>;
  afterTask?: (i: number) => void;
  /** Told how long the toolstack took from its create call to a running guest with its disk attached. */
  onRunning?: (domid: number, ms: number) => void;
}

export interface TaskOutcome {
  result: BlockTaskResult | null;
  error: string | null;
  stats: Record<string, number>;
  /**
   * Hypervisor counters over the timed part (fio) or the whole task (verify): Dom0's, the
   * guest's, and its disk's backend domain's (Dom0's again, or a storage driver domain's).
   */
  counters: { dom0: Record<string, number>; domU: Record<string, number>; backend: Record<string, number> };
}

export interface GuestOutcome {
  domid: number;
  /** blkback's counters for this guest's disk, taken after the guest closed it. */
  backend: Record<string, number>;
  device: DeviceReport;
  tasks: TaskOutcome[];
  shutdown: ShutdownEvent;
  /** The guest kernel's waiting policy and idle-loop record, as it reported them at the end. */
  kernel: WaitReport | null;
}

export class BlockHost {
  readonly host: Host;
  readonly runDir: string;
  readonly dom0Log: string[] = [];
  private readonly control: BroadcastChannel;
  private readonly blk: BroadcastChannel;
  /** Messages from Dom0 and the guests, and everyone waiting for one (../lib/inbox.ts). */
  private readonly inbox = new Inbox<Dom0Message | BlockMessage>();
  /** Guests' own report channels still open (a guest destroyed mid-run never reaches its finally). */
  private readonly guestChannels = new Set<BroadcastChannel>();
  private nextId = 1;
  /** Names of the storage driver domains started here (startDriverDomain). */
  private readonly driverDomains = new Set<string>();
  private readonly controlName = `ringvisor-blk-${randomUUID()}`;

  private constructor(memoryMiB: number, readonly wait: WaitPolicy, pcpus?: number, more: Pick<HostOptions, 'dom0_vcpus_pin'> = {}) {
    this.host = new Host({ memoryMiB, wait, log: (l) => this.dom0Log.push(l), ...(pcpus === undefined ? {} : { pcpus }), ...more });
    this.host.on('console', (e: { domid: number; text: string }) => this.dom0Log.push(`d${e.domid}: ${e.text}`));
    this.host.on('shutdown', () => this.inbox.wake());
    this.host.on('destroyed', () => this.inbox.wake());
    this.runDir = mkdtempSync(join(tmpdir(), 'ringvisor-blk-'));
    this.control = new BroadcastChannel(this.controlName);
    this.blk = new BroadcastChannel(`${this.controlName}-blk`);
    const take = (ev: unknown) => this.inbox.push((ev as { data: Dom0Message | BlockMessage }).data);
    this.control.onmessage = take;
    this.blk.onmessage = take;
  }

  /**
   * One waiting policy for the whole host (shared/wait.ts): the hypervisor's (the trapping vCPU),
   * and on the command line of Dom0 and of every guest it runs. `pcpus`: the host's pCPU slots
   * (hypervisor/host.ts; 0: no scheduler, the host OS alone runs the vCPU threads), its default if absent.
   */
  static async boot(memoryMiB = 256, wait: WaitPolicy = DEFAULT_WAIT_POLICY, pcpus?: number, more: Pick<HostOptions, 'dom0_vcpus_pin'> = {}): Promise<BlockHost> {
    const h = new BlockHost(memoryMiB, wait, pcpus, more);
    const module: Dom0Module = { runDir: h.runDir, control: h.controlName, modules: [DOM0_MODULE] };
    await h.host.createDomain({
      name: 'Domain-0', vcpus: 1, memoryKiB: 64 * 1024, kernel: DOM0_KERNEL, module, cmdline: `${CMDLINE_WAIT}=${wait}`,
    }, { privileged: true });
    await h.next((m) => m.kind === 'ready');
    return h;
  }

  usage(): HostUsage {
    return this.host.usage();
  }

  /**
   * The next message `match` takes. A guest that crashed ends the wait (a driver domain's crash
   * does not: its on_crash is the toolstack's business), and so does `domid` being gone.
   */
  private async next<T extends Dom0Message | BlockMessage>(match: (m: Dom0Message | BlockMessage) => boolean, why = '', domid?: number): Promise<T> {
    return this.inbox.take<T>(match, () => {
      const list = this.host.list();
      const crashed = list.find((d) => d.state === 'shutdown' && d.shutdown_reason === 'crash' && !this.driverDomains.has(d.name));
      if (crashed) return new Error(`${crashed.name} crashed while waiting for ${why}:\n${this.dom0Log.slice(-20).join('\n')}`);
      if (domid !== undefined && !list.some((d) => d.domid === domid)) return new Error(`domain ${domid} is gone while waiting for ${why}`);
      return null;
    }, { what: why, seen: () => this.dom0Log });
  }

  /** A toolstack call in Dom0 (dom0/toolstack/control.ts). */
  async call(req: DistributiveOmit<Dom0Request, 'id'>): Promise<unknown> {
    const id = this.nextId++;
    this.control.postMessage({ ...req, id } as Dom0Request);
    const reply = await this.next<Extract<Dom0Message, { kind: 'reply' }>>((m) => m.kind === 'reply' && m.id === id, req.kind);
    if (!reply.ok) throw new Error(`dom0 ${req.kind}: ${reply.error}`);
    return reply.value;
  }

  /** Run a native job in Dom0 (the benchmark's baseline). */
  async native(image: string, job: FioJob): Promise<NativeResult> {
    const id = this.nextId++;
    this.blk.postMessage({ kind: 'native', id, image, job } satisfies BlockMessage);
    const m = await this.next<Extract<BlockMessage, { kind: 'native-done' }>>((x) => x.kind === 'native-done' && x.id === id, 'native job');
    if (m.result === null) throw new Error(`native job failed: ${m.error}`);
    return m.result;
  }

  /** Dom0's kernel's waiting policy and idle-loop record. */
  async dom0Wait(): Promise<WaitReport> {
    const id = this.nextId++;
    this.blk.postMessage({ kind: 'dom0-wait', id } satisfies BlockMessage);
    return (await this.next<Extract<BlockMessage, { kind: 'dom0-wait-reply' }>>((x) => x.kind === 'dom0-wait-reply' && x.id === id, 'dom0 wait')).kernel;
  }

  /** blkback's counters for every device Dom0 serves, by backend directory. */
  async vbdStats(): Promise<Record<string, Record<string, number>>> {
    const id = this.nextId++;
    this.blk.postMessage({ kind: 'vbd-stats', id } satisfies BlockMessage);
    const m = await this.next<Extract<BlockMessage, { kind: 'vbd-stats-reply' }>>((x) => x.kind === 'vbd-stats-reply' && x.id === id, 'vbd stats');
    return m.stats;
  }

  /** One DomU, one disk, its tasks; returns when the DomU has closed its disk and powered off. */
  async runGuest(run: GuestRun): Promise<GuestOutcome> {
    const nonce = randomUUID();
    const path = run.path ?? 'pv';
    // The DomU reports on a channel of its own, named by nothing Dom0 uses: a guest must not be
    // handed a name that reaches Dom0's control path (README, "Isolation").
    const guest = new BroadcastChannel(`ringvisor-blk-guest-${randomUUID()}`);
    this.guestChannels.add(guest);
    guest.onmessage = (ev) => {
      this.inbox.push((ev as { data: BlockMessage }).data);
    };
    try {
      return await this.runGuestOn(guest, nonce, path, run);
    } finally {
      guest.close();
      this.guestChannels.delete(guest);
    }
  }

  private async runGuestOn(guest: BroadcastChannel, nonce: string, path: DiskPath, run: GuestRun): Promise<GuestOutcome> {
    const emulated = path !== 'pv';
    const module: BlockGuestModule = { channel: guest.name, nonce, path, front: run.front, tasks: run.tasks, ...run.extra };
    const shut = new Promise<ShutdownEvent>((resolve) => {
      const on = (e: ShutdownEvent) => { if (e.name === `blk-${nonce}`) { this.host.off('shutdown', on); resolve(e); } };
      this.host.on('shutdown', on);
    });
    const t0 = performance.now();
    const domid = (await this.call({
      kind: 'create',
      config: {
        name: `blk-${nonce}`, vcpus: 1, memoryKiB: (run.memoryMiB ?? 64) * 1024, kernel: run.kernel ?? GUEST_KERNEL, module,
        paused: emulated, cmdline: `${CMDLINE_WAIT}=${this.wait}`, ...(run.cpus ? { cpus: run.cpus } : {}),
      },
    })) as number;
    if (emulated) {
      // An HVM guest's emulated disk: start its device model while the guest is still paused.
      await this.blkCall({ kind: 'ide-start', id: 0, domid, image: run.image, readOnly: run.readOnly ?? false });
      this.host.unpause(domid);
    } else {
      await this.call({ kind: 'add-device', device: this.vbd(domid, run) });
    }
    run.onRunning?.(domid, performance.now() - t0);
    const connected = await this.next<Extract<BlockMessage, { kind: 'connected' }>>((m) => m.kind === 'connected' && m.nonce === nonce, 'the disk to connect', domid);
    const tasks: TaskOutcome[] = [];
    for (let i = 0; i < run.tasks.length; i++) {
      const be = run.backend ?? 0;
      const sample = () => ({ dom0: this.host.counters(0), domU: this.host.counters(domid), backend: this.host.counters(be) });
      let before = sample();
      const first = await this.next<BlockMessage>((m) => (m.kind === 'mark' || m.kind === 'task-done' || m.kind === 'task-failed') && m.nonce === nonce && m.index === i, `task ${i}`, domid);
      let end: BlockMessage = first;
      if (first.kind === 'mark') {
        // A fio task stops twice: before its warm-up, then before its timed part (counters start there).
        await run.beforeWarmup?.(i);
        guest.postMessage({ kind: 'go', nonce, index: i } satisfies BlockMessage);
        end = await this.next<BlockMessage>((m) => (m.kind === 'mark' || m.kind === 'task-done' || m.kind === 'task-failed') && m.nonce === nonce && m.index === i, `task ${i} warm-up`, domid);
        if (end.kind === 'mark') {
          await run.beforeTimed?.(i);
          before = sample();
          guest.postMessage({ kind: 'go', nonce, index: i } satisfies BlockMessage);
          end = await this.next<BlockMessage>((m) => (m.kind === 'task-done' || m.kind === 'task-failed') && m.nonce === nonce && m.index === i, `task ${i}`, domid);
        }
        run.afterTask?.(i);
      }
      const now = sample();
      const counters = { dom0: delta(now.dom0, before.dom0), domU: delta(now.domU, before.domU), backend: delta(now.backend, before.backend) };
      if (end.kind === 'task-done') tasks.push({ result: end.result, error: null, stats: end.stats, counters });
      else if (end.kind === 'task-failed') tasks.push({ result: null, error: end.error, stats: {}, counters });
    }
    const closed = await this.next<Extract<BlockMessage, { kind: 'closed' }>>((m) => m.kind === 'closed' && m.nonce === nonce, 'the disk to close');
    const backend = emulated ? {} : Object.entries(await this.vbdStats()).find(([p]) => p.includes(`/vbd/${domid}/`))?.[1] ?? {};
    const shutdown = await shut;
    if (emulated) Object.assign(backend, (await this.blkCall({ kind: 'ide-stop', id: 0, domid })).stats);
    await this.call({ kind: 'forget', domid });
    return { domid, backend, device: connected.device, tasks, shutdown, kernel: closed.kernel ?? null };
  }

  /** The vbd the toolstack adds for a PV disk: libxl's backend keys plus the feature switches. */
  private vbd(domid: number, run: GuestRun): DeviceSpec {
    const d = run.disk ?? {};
    const backKeys: Record<string, string> = {
      params: run.image, mode: run.readOnly ? 'r' : 'w', type: 'file', 'device-type': 'disk',
    };
    if (d.discard === false) backKeys['discard-enable'] = '0';
    if (d.persistent === false) backKeys['ringvisor-persistent'] = '0';
    if (d.maxIndirectSegments !== undefined) backKeys['ringvisor-max-indirect-segments'] = String(d.maxIndirectSegments);
    if (d.maxRingPageOrder !== undefined) backKeys['ringvisor-max-ring-page-order'] = String(d.maxRingPageOrder);
    if (d.maxQueues !== undefined) backKeys['ringvisor-max-queues'] = String(d.maxQueues);
    if (d.crashBackendDomainAfter !== undefined) backKeys['ringvisor-crash-domain-after'] = String(d.crashBackendDomainAfter);
    return { type: 'vbd', frontend: domid, devid: XVDA, backend: run.backend ?? 0, frontKeys: { 'virtual-device': String(XVDA), 'device-type': 'disk' }, backKeys };
  }

  /**
   * A storage driver domain: the standard DomU kernel with driver_domain=1, given storage
   * controller `dev` (pci = [...]) while paused; on_crash as given (restart: the toolstack builds
   * it again under the same name and it takes over the disks it served). Returns its domid.
   */
  async startDriverDomain(name: string, dev: number, onCrash: 'destroy' | 'restart' = 'destroy'): Promise<number> {
    this.driverDomains.add(name);
    return (await this.call({
      kind: 'create',
      config: {
        name, vcpus: 1, memoryKiB: 32 * 1024, kernel: DOMU_KERNEL, on_crash: onCrash,
        cmdline: `${CMDLINE_WORKLOAD}=idle ${CMDLINE_DRIVER_DOMAIN}=1 ${CMDLINE_WAIT}=${this.wait}`,
      },
      opts: { pci: [dev], driverDomain: true },
    })) as number;
  }

  /** A request to the block module in Dom0 (device models); answered by 'ide-done'. */
  private async blkCall(m: Extract<BlockMessage, { kind: 'ide-start' | 'ide-stop' }>): Promise<Extract<BlockMessage, { kind: 'ide-done' }>> {
    const id = this.nextId++;
    this.blk.postMessage({ ...m, id } satisfies BlockMessage);
    const r = await this.next<Extract<BlockMessage, { kind: 'ide-done' }>>((x) => x.kind === 'ide-done' && x.id === id, m.kind);
    if (r.error) throw new Error(`${m.kind}: ${r.error}`);
    return r;
  }

  async close(): Promise<void> {
    this.control.close();
    this.blk.close();
    for (const ch of this.guestChannels) ch.close();
    this.guestChannels.clear();
    await this.host.close();
    rmSync(this.runDir, { recursive: true, force: true });
  }
}

type DistributiveOmit<T, K extends PropertyKey> = T extends unknown ? Omit<T, K> : never;

function delta(after: Record<string, number>, before: Record<string, number>): Record<string, number> {
  return Object.fromEntries(Object.entries(after).map(([k, v]) => [k, v - (before[k] ?? 0)]));
}
