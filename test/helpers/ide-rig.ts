// A host with Dom0 running IDE device models and DomUs driving them: the harness of the
// emulated-disk tests. Guests are created paused, their device model is started in Dom0, then
// they are unpaused, as libxl does for an HVM guest with an emulated disk.
import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { BroadcastChannel } from 'node:worker_threads';
import { Host, type HostUsage } from '../../hypervisor/host.ts';
import { bareToolstack } from '../../scenarios/bare-toolstack.ts';
import type { IdeModelStats } from '../../dom0/device-models/ide/piix.ts';
import type { GuestTask, IdeMessage, ModelSpec } from '../kernels/ide-protocol.ts';
import { imagePattern } from '../kernels/ide-workload.ts';
import { bounded, lastLines } from '../../scenarios/lib/hang.ts';

const DOM0 = new URL('../kernels/ide-dom0.ts', import.meta.url).href;
const GUEST = new URL('../kernels/ide-guest.ts', import.meta.url).href;

export interface Guest { domid: number; nonce: string; image: string }

export class IdeRig {
  readonly host: Host;
  readonly dir: string;
  private readonly ch: BroadcastChannel;
  private readonly inbox: IdeMessage[] = [];
  private readonly waiting = new Set<() => void>();
  private readonly crashes: string[] = [];
  private nextId = 1;
  /** Guests expected to crash, with what to do when they do. */
  private readonly expected = new Map<number, (detail: string) => void>();
  readonly log: string[] = [];
  readonly channelName: string;

  private constructor(memoryMiB: number) {
    this.host = new Host({ memoryMiB, log: (l) => this.log.push(l) });
    bareToolstack(this.host); // guests that crash or power off are destroyed, as xl's defaults say
    this.dir = mkdtempSync(join(tmpdir(), 'ringvisor-ide-'));
    this.channelName = `ringvisor-ide-${randomUUID()}`;
    this.ch = new BroadcastChannel(this.channelName);
    this.ch.onmessage = (ev) => { this.inbox.push((ev as { data: IdeMessage }).data); this.wake(); };
    this.host.on('console', (e: { domid: number; text: string }) => this.log.push(`d${e.domid}: ${e.text}`));
    this.host.on('shutdown', (e: { domid: number; reason: string; detail: string }) => {
      if (e.reason === 'crash' && !this.expected.has(e.domid)) this.crashes.push(`d${e.domid} crashed: ${e.detail}`);
      this.expected.get(e.domid)?.(e.detail);
      this.wake();
    });
  }

  static async start(memoryMiB = 96): Promise<IdeRig> {
    const rig = new IdeRig(memoryMiB);
    await rig.host.createDomain({ name: 'Domain-0', vcpus: 1, memoryKiB: 16 * 1024, kernel: DOM0, module: { channel: rig.channelName } }, { privileged: true });
    await rig.next('dom0-ready');
    return rig;
  }

  /** Wait for a message of `kind` matching `match`; a crash of any domain fails the wait. */
  async next<K extends IdeMessage['kind']>(kind: K, match: (m: Extract<IdeMessage, { kind: K }>) => boolean = () => true): Promise<Extract<IdeMessage, { kind: K }>> {
    const wait = async () => {
      for (;;) {
        if (this.crashes.length) throw new Error(this.crashes.join('\n'));
        const i = this.inbox.findIndex((m) => m.kind === kind && match(m as Extract<IdeMessage, { kind: K }>));
        if (i >= 0) return this.inbox.splice(i, 1)[0] as Extract<IdeMessage, { kind: K }>;
        await new Promise<void>((r) => { this.waiting.add(r); });
      }
    };
    return bounded(wait(), () => `waiting for a '${kind}' message; unclaimed: ${this.inbox.map((m) => m.kind).join(', ') || 'none'}; ` +
      `the host's last lines:\n${lastLines(this.log)}`);
  }

  private wake(): void {
    const all = [...this.waiting];
    this.waiting.clear();
    for (const w of all) w();
  }

  /** A raw image of `sectors` sectors filled with imagePattern(seed), or sparse zeros (seed null). */
  image(name: string, sectors: number, seed: number | null): string {
    const path = join(this.dir, name);
    if (seed === null) {
      writeFileSync(path, '');
      truncateSync(path, sectors * 512);
    } else {
      writeFileSync(path, imagePattern(seed, sectors * 512));
    }
    return path;
  }

  /** Create a paused guest, start its device model, unpause it, wait until it is up. */
  async guest(image: string, opts: Partial<Omit<ModelSpec, 'domid' | 'image'>> & { memoryKiB?: number; kernel?: string } = {}): Promise<Guest> {
    const nonce = randomUUID();
    const vcpus = opts.vcpus ?? 1;
    const domid = await this.host.createDomain({
      name: `ide-guest-${nonce.slice(0, 8)}`, vcpus, memoryKiB: opts.memoryKiB ?? 8 * 1024, kernel: opts.kernel ?? GUEST,
      module: { channel: this.channelName, nonce }, paused: true,
    });
    this.post({ kind: 'start-model', spec: { domid, image, vcpus, readOnly: opts.readOnly, discard: opts.discard, mapcacheBuckets: opts.mapcacheBuckets, mmioEcho: opts.mmioEcho } });
    const started = await Promise.race([
      this.next('model-started', (m) => m.domid === domid),
      this.next('model-failed', (m) => m.domid === domid).then((m) => { throw new Error(m.error); }),
    ]);
    void started;
    this.host.unpause(domid);
    await this.next('guest-ready', (m) => m.nonce === nonce);
    return { domid, nonce, image };
  }

  async task<T = unknown>(g: Guest, task: GuestTask): Promise<T> {
    const id = this.nextId++;
    this.post({ kind: 'task', nonce: g.nonce, id, task });
    const done = await Promise.race([
      this.next('task-done', (m) => m.nonce === g.nonce && m.id === id),
      this.next('task-failed', (m) => m.nonce === g.nonce && m.id === id).then((m) => { throw new Error(`guest task ${task.do}: ${m.error}`); }),
    ]);
    return done.result as T;
  }

  /** Give a guest a task that is expected to crash it; resolves with the crash's detail once it is destroyed. */
  async crash(g: Guest, task: GuestTask): Promise<string> {
    const destroyed = new Promise<void>((resolve) => {
      const on = (e: { domid: number }) => { if (e.domid === g.domid) { this.host.off('destroyed', on); resolve(); } };
      this.host.on('destroyed', on);
    });
    const crashed = new Promise<string>((resolve) => this.expected.set(g.domid, resolve));
    this.post({ kind: 'task', nonce: g.nonce, id: this.nextId++, task });
    const detail = await crashed;
    await destroyed;
    this.expected.delete(g.domid);
    return detail;
  }

  async modelStats(g: Guest): Promise<IdeModelStats> {
    this.post({ kind: 'model-stats', domid: g.domid });
    return (await this.next('model-stats-reply', (m) => m.domid === g.domid)).stats;
  }

  /** Stop the device model (before or after the guest is destroyed). */
  async stopModel(g: Guest): Promise<IdeModelStats> {
    this.post({ kind: 'stop-model', domid: g.domid });
    return (await this.next('model-stopped', (m) => m.domid === g.domid)).stats;
  }

  /** Close the guest's driver, stop its model, destroy it (the order xl destroy + libxl use). */
  async destroy(g: Guest, order: 'model-first' | 'guest-first' = 'model-first'): Promise<IdeModelStats> {
    await this.task(g, { do: 'close' });
    let stats: IdeModelStats;
    if (order === 'model-first') {
      stats = await this.stopModel(g);
      await this.host.destroy(g.domid);
    } else {
      await this.host.destroy(g.domid);
      stats = await this.stopModel(g);
    }
    return stats;
  }

  counters(domid: number): Record<string, number> {
    const c = this.host.counters(domid);
    for (const name of ['ioreqs', 'foreign_maps', 'foreign_unmaps'] as const) c[name] = this.host.hv.counter(domid, name);
    return c;
  }

  usage(): HostUsage {
    return this.host.usage();
  }

  private post(m: IdeMessage): void {
    this.ch.postMessage(m);
  }

  async close(): Promise<void> {
    this.ch.close();
    await this.host.close();
    rmSync(this.dir, { recursive: true, force: true });
  }
}
