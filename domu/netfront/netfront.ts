/*
 * netfront: the paravirtual NIC as a DomU sees it, behind the guest's one NetDevice interface.
 *
 * Xen/Linux: drivers/net/xen-netfront.c (netfront_probe, talk_to_netback, setup_netfront_split /
 * setup_netfront_single, xennet_create_queues, xennet_connect, xennet_start_xmit, netback_changed).
 * The wire is shared/public/io/netif.ts, the handshake shared/kernel/xenbus/frontend.ts with
 * `connectOnInitWait`: on the backend's InitWait, netfront builds its queues and writes its keys
 * and state = Connected in one transaction, as mini-os netfront does (Linux: the keys in one
 * transaction, talk_to_netback, then xenbus_switch_state); netback connects when it sees that.
 *
 * What it reads from the backend: feature-rx-copy (required: "backend does not support copying
 * receive path" otherwise, as Linux), feature-sg, feature-split-event-channels,
 * multi-queue-max-queues. What it writes: tx-ring-ref, rx-ring-ref, event-channel (or
 * event-channel-tx and -rx), per queue-N/ when there are several queues (then the top-level ring
 * keys are not written), multi-queue-num-queues only if the backend offered queues,
 * request-rx-copy = 1, feature-rx-notify = 1, feature-sg, and feature-no-csum-offload = 1 only when
 * checksum offload is turned off (Linux writes nothing: offload is on). Its MAC and MTU come from its own
 * frontend directory (`mac`, `mtu`), where the toolstack put them.
 *
 * Its xenstore requests go out together wherever one does not depend on another's answer, and
 * ahead of need: its MAC and MTU beside probe's reads (probing), the backend's offer beside the
 * watch on the backend's state (otherendKnown), the keys it writes with the state. A round trip
 * costs two vCPU wake-ups here (shared/kernel/xenbus/device.ts, "Round trips"), and a resumed
 * guest's peer waits for each. A one-queue vif also makes its queue (rings, grants, event
 * channels, rx buffers posted) while the backend's offer is being read, not after (prebuild).
 *
 * Frames: the stack hands over an Ethernet frame as fragments, the first holding at least the
 * Ethernet header (netback drops a first slot under 14 bytes; XSA-423 wants headers up front).
 * Netfront lays the fragments out one after the other in its tx pages, one slot per page the
 * frame spans, as a Linux guest's linear skb goes out (a UDP datagram of up to a page is one
 * slot); with feature-sg a frame may span several slots (a jumbo MTU), without it the MTU keeps
 * every frame in one. A frame goes to a queue by a hash of its IPv4 flow, as Linux picks a tx queue.
 */
import type { Kernel } from '../../shared/kernel/kernel.ts';
import type { XenbusDevice } from '../../shared/kernel/xenbus/device.ts';
import { XenbusState, type XenbusStateValue } from '../../shared/public/io/xenbus.ts';
import type { FrontendDriver } from '../../shared/kernel/xenbus/frontend.ts';
import type { XenbusClient } from '../../shared/kernel/xenbus/client.ts';
import { ETH_HLEN, XEN_NETIF_MAX_TX_SIZE, XEN_NETIF_NR_SLOTS_MIN, XS_NET, parseMac } from '../../shared/public/io/netif.ts';
import { PAGE_SIZE } from '../../shared/public/xen.ts';
import type { NetDevice } from '../net/netdev.ts';
import { NetfrontQueue } from './queue.ts';

export interface NetfrontOptions {
  /** Most queues (Linux: one per vCPU, at most xennet_max_queues). */
  maxQueues?: number;
  /** Use split event channels if offered. */
  split?: boolean;
  /** Use scatter-gather if offered. */
  sg?: boolean;
  /**
   * IPv4 checksum offload both ways (Linux netfront's default: NETIF_F_IP_CSUM | NETIF_F_RXCSUM).
   * false is `ethtool -K eth0 tx off rx off`: the frontend writes feature-no-csum-offload = 1, and
   * sends and takes only frames with complete checksums.
   */
  csumOffload?: boolean;
}

export class Netfront implements NetDevice, FrontendDriver {
  readonly connectOnInitWait = true;
  name = '';
  readonly path = 'pv' as const;
  mac: Uint8Array = new Uint8Array(6);
  mtu = 1500;
  maxFrags = 1;
  onReceive: (frame: Uint8Array, csum?: number) => void = () => undefined;
  onTxRoom: () => void = () => undefined;
  readonly negotiated = { queues: 1, split: false, sg: false };
  queues: NetfrontQueue[] = [];
  private readonly opts: Required<NetfrontOptions>;
  private brokenWhy: string | null = null;
  private txWaiting = false;
  private ready!: () => void;
  private gone!: () => void;
  readonly connected = new Promise<void>((r) => { this.ready = r; });
  readonly closed = new Promise<void>((r) => { this.gone = r; });
  shutdownHook: (() => Promise<void>) | null = null;
  /** tx_dropped, tx_busy as Linux counts them; ahead_used / ahead_freed: the queue made ahead (prebuild) used, or freed. */
  readonly counters = { tx_dropped: 0, tx_busy: 0, ahead_used: 0, ahead_freed: 0 };

  constructor(private readonly k: Kernel, opts: NetfrontOptions = {}) {
    this.opts = { maxQueues: opts.maxQueues ?? k.nr_vcpus, split: opts.split ?? true, sg: opts.sg ?? true, csumOffload: opts.csumOffload ?? true };
  }

  /** NETIF_F_IP_CSUM (NetDevice): netback always takes csum_blank on its tx ring. */
  get csumOffload(): boolean {
    return this.opts.csumOffload;
  }

  /* ---- xenbus ---- */

  private fail!: (why: string) => void;
  /** Resolves (with the reason) if the device could not be set up: boot does not wait for it then. */
  readonly failed = new Promise<string>((r) => { this.fail = r; });

  /* Reads sent ahead (FrontendDriver.probing / otherendKnown): our MAC and MTU, the backend's offer. */
  private own: Promise<[string | null, number]> | null = null;
  /** The backend's offer read ahead: null if the backend had not reached InitWait when it was read (then read again at publish). */
  private offer: { otherend: string; read: Promise<[number, string | null, number, number] | null> } | null = null;
  /** The backend offered multi-queue-max-queues (so we write multi-queue-num-queues). */
  private multiQueueOffered = false;

  probing(dev: XenbusDevice): void {
    this.own = this.readOwn(dev);
    this.own.catch(() => undefined); // awaited at publish
  }

  otherendKnown(dev: XenbusDevice, state: Promise<XenbusStateValue>): void {
    const offer = this.readOffer(dev);
    offer.catch(() => undefined); // awaited below
    // Read after that state: valid if the backend was in InitWait (or later) by then.
    const read = state.then((s) => (s >= XenbusState.InitWait ? offer : null), () => null);
    this.offer = { otherend: dev.otherend, read };
    // While those are on their way, the queue a one-queue vif will have (see prebuild).
    if (this.queues.length === 0 && this.prebuilt === null && this.opts.maxQueues === 1) this.prebuild(dev.otherendId);
  }

  /*
   * A vif with one queue (a guest with one vCPU: Linux's xennet_max_queues is the vCPU count) has
   * it made while the reads of the backend's offer are on their way, not after their answer: its
   * ring pages, a grant for each of its buffers, its event channels and its rx buffers posted are
   * the guest's own work (a few ms for a fresh vCPU thread, its code not yet compiled), which a
   * resumed guest's peer otherwise waits for after that round trip. It assumes split event
   * channels as this frontend prefers them (netback offers them); if the offer disagrees, or the
   * backend is another domain by publish, it is freed and publish makes the queue it needs.
   */
  private prebuilt: { queue: NetfrontQueue; backend: number; split: boolean; buffers: number } | null = null;

  private prebuild(backend: number): void {
    const buffers = this.buffersPerQueue(1);
    if (buffers < 32) return; // publish says why
    const queue = this.makeQueue(backend, this.opts.split, buffers);
    this.prebuilt = { queue, backend, split: this.opts.split, buffers };
  }

  /** Each queue grants 2 ring pages, a tx page per tx id and an rx buffer per posted request: as many as this vCPU's grant references allow, up to the ring size (a power of two). */
  private buffersPerQueue(queues: number): number {
    const perQueue = Math.floor((this.k.gnttab.available - 16) / queues / 2) - 2;
    let buffers = 256;
    while (buffers > perQueue) buffers >>= 1;
    return buffers;
  }

  private makeQueue(backend: number, split: boolean, buffers: number): NetfrontQueue {
    return new NetfrontQueue(this.k, backend, split, {
      receive: (frame, csum) => this.onReceive(frame, csum),
      txRoom: () => this.txRoom(),
      broken: (why) => this.broken(why),
    }, buffers);
  }

  /** The queue made ahead, if publish can use it (its answer is in): taken out either way. */
  private takePrebuilt(backend: number): NetfrontQueue | null {
    const p = this.prebuilt;
    this.prebuilt = null;
    if (p === null) return null;
    if (p.backend === backend && this.negotiated.queues === 1 && p.split === this.negotiated.split) {
      this.counters.ahead_used++;
      return p.queue;
    }
    p.queue.free();
    this.counters.ahead_freed++;
    return null;
  }

  private readOwn(dev: XenbusDevice): Promise<[string | null, number]> {
    return Promise.all([dev.xs.tryRead(`${dev.nodename}/${XS_NET.mac}`), readUint(dev.xs, `${dev.nodename}/${XS_NET.mtu}`, 1500)]);
  }

  /** What the backend offers, asked all at once (one round trip: see the header). */
  private readOffer(dev: XenbusDevice): Promise<[number, string | null, number, number]> {
    const xs = dev.xs;
    const be = dev.otherend;
    return Promise.all([
      readUint(xs, `${be}/${XS_NET.feature_rx_copy}`, 0), xs.tryRead(`${be}/${XS_NET.multi_queue_max_queues}`),
      readUint(xs, `${be}/${XS_NET.feature_split_event_channels}`, 0), readUint(xs, `${be}/${XS_NET.feature_sg}`, 0),
    ]);
  }

  async publish(dev: XenbusDevice, t: number): Promise<void> {
    await (await this.publishWrites(dev, t)).writes;
  }

  async publishWrites(dev: XenbusDevice, t: number): Promise<{ writes: Promise<void> }> {
    try {
      return await this.publishInner(dev, t);
    } catch (e) {
      this.prebuilt?.queue.free();
      this.prebuilt = null;
      this.fail(e instanceof Error ? e.message : String(e));
      throw e;
    }
  }

  private async publishInner(dev: XenbusDevice, t: number): Promise<{ writes: Promise<void> }> {
    const xs = dev.xs;
    if (this.queues.length === 0) {
      this.name = `eth${dev.nodename.split('/').pop()}`;
      const ahead = this.offer?.otherend === dev.otherend ? await this.offer.read : null;
      this.offer = null;
      const [rxCopy, maxQueues, split, sg] = ahead ?? await this.readOffer(dev);
      if (rxCopy !== 1) throw new Error(`${this.name}: backend does not support copying receive path`);
      this.multiQueueOffered = maxQueues !== null;
      this.negotiated.queues = maxQueues === null ? 1 : Math.max(1, Math.min(this.opts.maxQueues, Number(maxQueues) || 1));
      this.negotiated.split = this.opts.split && split === 1;
      this.negotiated.sg = this.opts.sg && sg === 1;
      const ready = this.takePrebuilt(dev.otherendId);
      if (ready !== null) {
        this.queues.push(ready);
      } else {
        const buffers = this.buffersPerQueue(this.negotiated.queues);
        if (buffers < 32) throw new Error(`${this.name}: only ${this.k.gnttab.available} grant references left, too few for a vif`);
        for (let q = 0; q < this.negotiated.queues; q++) this.queues.push(this.makeQueue(dev.otherendId, this.negotiated.split, buffers));
      }
    }
    const dir = dev.nodename;
    // talk_to_netback's writes, sent together within the transaction (one round trip, not one each).
    const writes: Promise<void>[] = [];
    const put = (path: string, value: string) => writes.push(xs.write(path, value, t));
    const writeQueue = (qdir: string, q: NetfrontQueue) => {
      put(`${qdir}/${XS_NET.tx_ring_ref}`, String(q.txRef));
      put(`${qdir}/${XS_NET.rx_ring_ref}`, String(q.rxRef));
      if (q.split) {
        put(`${qdir}/${XS_NET.event_channel_tx}`, String(q.txPort));
        put(`${qdir}/${XS_NET.event_channel_rx}`, String(q.rxPort));
      } else {
        put(`${qdir}/${XS_NET.event_channel}`, String(q.txPort));
      }
    };
    // xennet_connect's MAC and MTU, checked before anything is written (a frontend that will not
    // work does not say Connected), then every write at once.
    const [macText, mtu] = await (this.own ?? this.readOwn(dev));
    this.own = null;
    const mac = parseMac(macText ?? '');
    if (mac === null) throw new Error(`${this.name}: no valid mac in ${dev.nodename}`);
    this.mac = mac;
    this.mtu = Math.min(XEN_NETIF_MAX_TX_SIZE - ETH_HLEN, Math.max(68, mtu));
    if (!this.negotiated.sg) this.mtu = Math.min(this.mtu, PAGE_SIZE - ETH_HLEN);
    this.maxFrags = this.negotiated.sg ? XEN_NETIF_NR_SLOTS_MIN - 1 : 8;
    if (this.multiQueueOffered) put(`${dir}/${XS_NET.multi_queue_num_queues}`, String(this.queues.length));
    if (this.queues.length === 1) writeQueue(dir, this.queues[0]);
    else for (let q = 0; q < this.queues.length; q++) writeQueue(`${dir}/queue-${q}`, this.queues[q]);
    put(`${dir}/${XS_NET.request_rx_copy}`, '1');
    put(`${dir}/${XS_NET.feature_rx_notify}`, '1');
    put(`${dir}/${XS_NET.feature_sg}`, this.negotiated.sg ? '1' : '0');
    if (!this.opts.csumOffload) put(`${dir}/${XS_NET.feature_no_csum_offload}`, '1');
    return { writes: Promise.all(writes).then(() => undefined) };
  }

  /** xennet_connect: the keys are written (and, here, Connected with them); the device is usable. */
  async connect(_dev: XenbusDevice): Promise<void> {
    this.ready();
  }

  async close(): Promise<void> {
    for (const q of this.queues) q.free();
    this.queues = [];
    this.prebuilt?.queue.free();
    this.prebuilt = null;
    this.gone();
  }

  /** Ask the backend to let go (Closing); resolves once Closed and everything is given back. */
  async closeDevice(): Promise<void> {
    await this.shutdownHook?.();
    await this.closed;
  }

  /* ---- NetDevice ---- */

  transmit(frags: readonly Uint8Array[], n: number, csumPartial = false): boolean {
    let total = 0;
    for (let f = 0; f < n; f++) total += frags[f].length;
    if (this.brokenWhy !== null || this.queues.length === 0 || n < 1 || frags[0].length < ETH_HLEN || total > this.mtu + ETH_HLEN) {
      this.counters.tx_dropped++; // the stack's mistake, or a dead device: dropped, as Linux counts tx_dropped
      return true;
    }
    const q = this.queues.length === 1 ? this.queues[0] : this.queues[flowHash(frags[0]) % this.queues.length];
    // One slot per page the frame spans (queue.ts transmit). Without scatter-gather the MTU keeps
    // a frame within one page, so one slot; with it, a jumbo frame takes several.
    const slots = Math.ceil(total / PAGE_SIZE);
    if (slots > XEN_NETIF_NR_SLOTS_MIN) {
      this.counters.tx_dropped++;
      return true;
    }
    if (q.txFree < slots) return this.busy(q);
    q.transmit(frags, total, csumPartial && this.opts.csumOffload);
    return true;
  }

  private busy(q: NetfrontQueue): boolean {
    this.counters.tx_busy++;
    q.wantRoom = true;
    this.txWaiting = true;
    return false;
  }

  private txRoom(): void {
    if (!this.txWaiting) return;
    this.txWaiting = false;
    this.onTxRoom();
  }

  stats(): Record<string, number> {
    const out: Record<string, number> = { ...this.counters };
    for (const q of this.queues) for (const [k, v] of Object.entries(q.stats)) out[k] = (out[k] ?? 0) + v;
    return out;
  }

  private broken(why: string): void {
    if (this.brokenWhy !== null) return;
    this.brokenWhy = why;
    this.k.log(`netfront ${this.name}: ${why}; device stopped`);
  }

  get brokenReason(): string | null {
    return this.brokenWhy;
  }
}

function flowHash(f: Uint8Array): number {
  if (f.length < 38 || f[12] !== 0x08 || f[13] !== 0x00) return 0;
  let h = 0x811c9dc5;
  for (let i = 26; i < 38; i++) h = Math.imul(h ^ f[i], 0x01000193);
  return h >>> 0;
}

async function readUint(xs: XenbusClient, path: string, dflt: number): Promise<number> {
  const v = await xs.tryRead(path);
  if (v === null || !/^[0-9]+$/.test(v)) return dflt;
  return Number(v);
}
