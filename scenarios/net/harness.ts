/*
 * A host with Dom0 (xenstored, netback, the bridges) ready to give guests vifs: boots once, then
 * runs guests side by side, each with one vif on a bridge and a list of tasks, and collects what
 * they report, with the hypervisor's counters around the whole run.
 *
 * Used by the network tests, `npm run bench -- --suite net` and the pv-net scenario.
 */
import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { BroadcastChannel } from 'node:worker_threads';
import type { BridgeConfig } from '../../dom0/backends/netback/module.ts';
import type { Dom0Message, Dom0Request } from '../../dom0/toolstack/control.ts';
import { vifSpec, type NicConfig } from '../../dom0/toolstack/nic.ts';
import type { Dom0Module } from '../../dom0/kernel.ts';
import type { NetfrontOptions } from '../../domu/netfront/netfront.ts';
import { Host, type HostUsage, type ShutdownEvent } from '../../hypervisor/host.ts';
import type { NetGuestModule, NetMessage, NetTask, NetTaskResult } from './protocol.ts';
import { Inbox } from '../lib/inbox.ts';
import { CMDLINE_WAIT } from '../../shared/public/cmdline.ts';
import { DEFAULT_WAIT_POLICY, type WaitPolicy } from '../../shared/wait.ts';

const DOM0_KERNEL = new URL('../../dom0/kernel.ts', import.meta.url).href;
const DOM0_MODULE = new URL('./dom0-module.ts', import.meta.url).href;
const E1000_MODULE = new URL('./e1000-dom0.ts', import.meta.url).href;
const GUEST_KERNEL = new URL('./guest-kernel.ts', import.meta.url).href;

export interface NetGuestSpec {
  name?: string;
  /** The vif, as a vif = [...] entry would give it (mac, ip, bridge, rate, mtu) plus ringvisor's switches. */
  vif: NicConfig;
  tasks: NetTask[];
  front?: NetfrontOptions;
  kernel?: string;
  vcpus?: number;
  memoryMiB?: number;
  /** More fields for the guest's module (a hostile kernel's script). */
  extra?: Record<string, unknown>;
  /** Boot without the vif; the test attaches it later (hot-plug). */
  attachLater?: boolean;
  /**
   * An HVM guest with an emulated e1000 instead of a PV vif (`model=e1000`; `buffered`: the vif
   * key bufioreq=1): its model is started in Dom0 before the guest runs, with the vif's mac and bridge.
   */
  e1000?: { buffered?: boolean; txKick?: 'burst' | 'each' };
}

export interface TaskOutcome {
  result: NetTaskResult | null; error: string | null; stats: Record<string, number>;
  /** The hypervisor's counters (all domains summed) when the harness heard the task end. */
  counters: Record<string, number>;
}

export interface NetGuestOutcome {
  domid: number;
  connected: Extract<NetMessage, { kind: 'connected' }> | null;
  tasks: TaskOutcome[];
  /** netfront's counters at close, and the stack's. */
  front: Record<string, number>;
  stack: Record<string, number>;
  shutdown: ShutdownEvent;
  /** The e1000 device model's counters at the end (e1000 guests only). */
  model?: Record<string, number>;
}

export class NetGuest {
  readonly outcome: Promise<NetGuestOutcome>;
  constructor(readonly nonce: string, readonly domid: number, private readonly h: NetHost, outcome: Promise<NetGuestOutcome>) {
    this.outcome = outcome;
  }

  private readonly reached = new Set<string>();

  /** Wait for the guest to say `name` (listen:PORT, barrier:NAME). */
  async note(name: string): Promise<void> {
    if (this.reached.has(name)) return;
    await this.h.next((m) => m.kind === 'note' && m.nonce === this.nonce && m.name === name, name);
    this.reached.add(name);
  }

  booted(): Promise<void> {
    return this.h.next((m) => m.kind === 'booted' && m.nonce === this.nonce, 'boot').then(() => undefined);
  }

  /** Let the guest past barrier `name`, once it is there (a message sent before it listens would be lost). */
  async go(name: string): Promise<void> {
    await this.note(`barrier:${name}`);
    this.h.netCh.postMessage({ kind: 'go', nonce: this.nonce, name } satisfies NetMessage);
  }
}

export class NetHost {
  readonly host: Host;
  readonly runDir: string;
  readonly dom0Log: string[] = [];
  private readonly control: BroadcastChannel;
  readonly netCh: BroadcastChannel;
  /** Messages from Dom0 and the guests, and everyone waiting for one (../lib/inbox.ts). */
  private readonly inbox = new Inbox<Dom0Message | NetMessage>();
  private nextId = 1;
  private readonly controlName = `ringvisor-net-${randomUUID()}`;

  private constructor(memoryMiB: number, readonly wait: WaitPolicy) {
    this.host = new Host({ memoryMiB, wait, log: (l) => this.dom0Log.push(l) });
    this.host.on('console', (e: { domid: number; text: string }) => this.dom0Log.push(`d${e.domid}: ${e.text}`));
    this.host.on('shutdown', () => this.inbox.wake());
    this.runDir = mkdtempSync(join(tmpdir(), 'ringvisor-net-'));
    this.control = new BroadcastChannel(this.controlName);
    this.netCh = new BroadcastChannel(`${this.controlName}-net`);
    const take = (ev: unknown) => this.inbox.push((ev as { data: Dom0Message | NetMessage }).data);
    this.control.onmessage = take;
    this.netCh.onmessage = take;
  }

  /** `wait`: one waiting policy for the whole host (shared/wait.ts), Dom0's and every guest's. */
  static async boot(opts: { bridges?: BridgeConfig[]; memoryMiB?: number; wait?: WaitPolicy } = {}): Promise<NetHost> {
    const h = new NetHost(opts.memoryMiB ?? 256, opts.wait ?? DEFAULT_WAIT_POLICY);
    const module: Dom0Module & { net: { bridges?: BridgeConfig[] } } = {
      runDir: h.runDir, control: h.controlName, modules: [DOM0_MODULE, E1000_MODULE], net: { bridges: opts.bridges },
    };
    await h.host.createDomain({ name: 'Domain-0', vcpus: 1, memoryKiB: 64 * 1024, kernel: DOM0_KERNEL, module, cmdline: `${CMDLINE_WAIT}=${h.wait}` }, { privileged: true });
    await h.next((m) => m.kind === 'ready', 'Dom0');
    return h;
  }

  usage(): HostUsage {
    return this.host.usage();
  }

  /** The hypervisor's counters summed over every domain running now. */
  allCounters(): Record<string, number> {
    const sum: Record<string, number> = {};
    for (const d of this.host.list()) for (const [k, v] of Object.entries(this.host.counters(d.domid))) sum[k] = (sum[k] ?? 0) + v;
    // And the scheduler's host-side costs (hypervisor/sched/tables.ts G): slot hand-overs and thread wake-ups.
    const s = this.host.sched.counters();
    Object.assign(sum, { sched_handovers: s.handovers, sched_slot_wakes: s.slot_wakes, sched_evt_wakes: s.evt_wakes, sched_tickles: s.tickles });
    return sum;
  }

  async next<T extends Dom0Message | NetMessage>(match: (m: Dom0Message | NetMessage) => boolean, why = ''): Promise<T> {
    return this.inbox.take<T>(match, () => {
      const crashed = this.host.list().find((d) => d.state === 'shutdown' && d.shutdown_reason === 'crash');
      return crashed ? new Error(`${crashed.name} crashed while waiting for ${why}:\n${this.dom0Log.slice(-20).join('\n')}`) : null;
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

  /** A question to the Dom0 module; answered by the message kind `reply`. */
  async ask<K extends NetMessage['kind']>(m: DistributiveOmit<Extract<NetMessage, { id: number }>, 'id'>, reply: K): Promise<Extract<NetMessage, { kind: K }>> {
    const id = this.nextId++;
    this.netCh.postMessage({ ...m, id } as NetMessage);
    return this.next<Extract<NetMessage, { kind: K }>>((x) => x.kind === reply && (x as { id?: number }).id === id, m.kind);
  }

  async vifStats(): Promise<Extract<NetMessage, { kind: 'vif-stats-reply' }>> {
    return this.ask({ kind: 'vif-stats' }, 'vif-stats-reply');
  }

  async capture(port: string, file: string | null): Promise<number> {
    const r = await this.ask({ kind: 'capture', port, file }, 'capture-reply');
    if (r.error !== undefined) throw new Error(r.error);
    return r.frames ?? 0;
  }

  /** Resolves when netback has the vif Connected. */
  async backendConnected(domid: number, devid = 0): Promise<void> {
    await this.ask({ kind: 'wait-connected', path: `/local/domain/0/backend/vif/${domid}/${devid}` }, 'wait-connected-reply');
  }

  /** Start logging (first call) or read the log of state / hotplug-status writes under `path`. */
  async watchLog(path: string): Promise<string[]> {
    return (await this.ask({ kind: 'watch-log', path }, 'watch-log-reply')).entries;
  }

  /** Add a vif to a running guest (xl network-attach) or remove it (network-detach). */
  async attach(domid: number, vif: NicConfig): Promise<void> {
    await this.call({ kind: 'add-device', device: vifSpec(domid, vif) });
  }

  async detach(domid: number, vif: NicConfig): Promise<void> {
    await this.call({ kind: 'remove-device', device: vifSpec(domid, vif) });
  }

  /** A guest running a test kernel that reports once ('hostile-report') and then idles until destroyed. */
  async startRaw(vif: NicConfig, kernel: string, extra: Record<string, unknown>): Promise<{ domid: number; report: Promise<Record<string, unknown>> }> {
    const nonce = randomUUID();
    const module = { channel: `${this.controlName}-net`, nonce, ...extra };
    const domid = (await this.call({
      kind: 'create', config: { name: `raw-${nonce.slice(0, 8)}`, vcpus: 1, memoryKiB: 32 * 1024, kernel, module, paused: true },
    })) as number;
    await this.call({ kind: 'add-device', device: vifSpec(domid, vif) });
    this.host.unpause(domid);
    const report = this.next<Extract<NetMessage, { kind: 'hostile-report' }>>((m) => m.kind === 'hostile-report' && m.nonce === nonce, 'hostile report')
      .then((m) => m.report);
    return { domid, report };
  }

  async destroy(domid: number): Promise<void> {
    await this.call({ kind: 'destroy', domid });
  }

  async uplinkPort(bridge: string): Promise<number> {
    const r = await this.ask({ kind: 'uplink-port', bridge }, 'uplink-reply');
    if (r.error !== undefined) throw new Error(r.error);
    return r.port!;
  }

  async addUplinkPeer(bridge: string, peer: string): Promise<void> {
    const r = await this.ask({ kind: 'uplink-peer', bridge, peer }, 'uplink-reply');
    if (r.error !== undefined) throw new Error(r.error);
  }

  /** Create a guest with its vif; it runs its tasks at once. */
  async start(spec: NetGuestSpec): Promise<NetGuest> {
    const nonce = randomUUID();
    const name = spec.name ?? `net-${nonce.slice(0, 8)}`;
    const module: NetGuestModule = { channel: `${this.controlName}-net`, nonce, front: spec.front, tasks: spec.tasks, ...spec.extra };
    if (spec.e1000) module.e1000 = { ip: spec.vif.ip, txKick: spec.e1000.txKick ?? 'burst' };
    const shut = new Promise<ShutdownEvent>((resolve) => {
      const on = (e: ShutdownEvent) => { if (e.name === name) { this.host.off('shutdown', on); resolve(e); } };
      this.host.on('shutdown', on);
    });
    const domid = (await this.call({
      kind: 'create',
      config: { name, vcpus: spec.vcpus ?? 1, memoryKiB: (spec.memoryMiB ?? 32) * 1024, kernel: spec.kernel ?? GUEST_KERNEL, module, paused: true, cmdline: `${CMDLINE_WAIT}=${this.wait}` },
    })) as number;
    // As libxl does for a PV guest: its vifs are added while it is still paused.
    if (spec.e1000) await this.e1000Call({ kind: 'e1000-start', domid, vcpus: spec.vcpus ?? 1, mac: spec.vif.mac, bridge: spec.vif.bridge, buffered: spec.e1000.buffered ?? false });
    else if (!spec.attachLater) await this.call({ kind: 'add-device', device: vifSpec(domid, spec.vif) });
    this.host.unpause(domid);
    // A guest started after this one may send it a broadcast at once (ARP): wait until netback has
    // it on the bridge and Connected, since a guest here cannot send an ARP request again.
    // (An e1000 has no backend to wait for: its model queues frames until the driver enables receive.)
    if (!spec.attachLater && !spec.e1000) await this.backendConnected(domid, spec.vif.devid ?? 0);
    const outcome = (async (): Promise<NetGuestOutcome> => {
      const connected = await this.next<Extract<NetMessage, { kind: 'connected' }>>((m) => m.kind === 'connected' && m.nonce === nonce, `${name} to connect`);
      const tasks: TaskOutcome[] = [];
      for (let i = 0; i < spec.tasks.length; i++) {
        const end = await this.next<NetMessage>((m) => (m.kind === 'task-done' || m.kind === 'task-failed') && m.nonce === nonce && m.index === i, `${name} task ${i}`);
        const counters = this.allCounters();
        if (end.kind === 'task-done') tasks.push({ result: end.result, error: null, stats: end.stats, counters });
        else if (end.kind === 'task-failed') tasks.push({ result: null, error: end.error, stats: {}, counters });
      }
      const closed = await this.next<Extract<NetMessage, { kind: 'closed' }>>((m) => m.kind === 'closed' && m.nonce === nonce, `${name} to close`);
      const shutdown = await shut;
      const model = spec.e1000 ? (await this.e1000Call({ kind: 'e1000-stop', domid })).stats : undefined;
      await this.call({ kind: 'forget', domid });
      return { domid, connected, tasks, front: closed.stats, stack: closed.stack, shutdown, model };
    })();
    return new NetGuest(nonce, domid, this, outcome);
  }

  /** An e1000 model call (./e1000-dom0.ts); throws its error. */
  async e1000Call(m: DistributiveOmit<Extract<NetMessage, { kind: 'e1000-start' | 'e1000-stop' | 'e1000-stats' | 'e1000-inject' }>, 'id'>): Promise<Extract<NetMessage, { kind: 'e1000-reply' }>> {
    const r = await this.ask(m, 'e1000-reply');
    if (r.error !== undefined) throw new Error(r.error);
    return r;
  }

  async close(): Promise<void> {
    this.control.close();
    this.netCh.close();
    await this.host.close();
    rmSync(this.runDir, { recursive: true, force: true });
  }
}

type DistributiveOmit<T, K extends PropertyKey> = T extends unknown ? Omit<T, K> : never;
