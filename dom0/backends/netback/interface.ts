/*
 * One vif: the network interface netback makes in Dom0 for one guest NIC (`vif<domid>.<devid>`),
 * with its queues, its port on the bridge, and what happens when its frontend misbehaves.
 *
 * Linux: drivers/net/xen-netback/interface.c (xenvif_alloc, xenvif_start_xmit: pick a queue by
 * the frame's hash and queue it for the guest; xenvif_carrier_off) and netback.c's
 * xenvif_fatal_tx_err. A malformed packet is dropped with an error response and a rate-limited
 * log line; a frontend that breaks the protocol (the checks in tx-build.ts marked fatal, or a
 * corrupt ring) gets its vif disabled: one log line naming the vif, every queue stopped, the port
 * taken off the bridge (Linux turns the carrier off). Other vifs, and Dom0, carry on. The rings
 * stay mapped until the frontend or the toolstack tears the device down, which unmaps them.
 */
import type { Kernel } from '../../../shared/kernel/kernel.ts';
import type { Packet, PacketPool } from '../../lib/packet.ts';
import type { Bridge, BridgePort } from '../../services/bridge/bridge.ts';
import type { TxCredit } from './credit.ts';
import { NetbackQueue, type QueueOwner, type QueueRings } from './queue.ts';
import { DEFAULT_FATAL_SLOTS, type TxLimits } from './tx-build.ts';

/** Log lines per vif about dropped packets before they are only counted. */
const MAX_LOGGED_DROPS = 10;

export class XenVif implements BridgePort, QueueOwner {
  readonly name: string;
  queues: NetbackQueue[] = [];
  bridge: Bridge | null = null;
  disabled: string | null = null;
  credit: TxCredit | null = null;
  readonly limits: TxLimits;
  readonly mcast = new Set<number>();
  /**
   * vif->ip_csum: the frontend takes frames with a partial checksum (it did not write
   * feature-no-csum-offload = 1); the bridge completes them first otherwise (BridgePort.csumOffload).
   */
  ipCsum = true;
  /** Capture taps on this vif (`ringvisor capture vifN.M`): frames in both directions. */
  readonly taps = new Set<(p: Packet) => void>();
  private drops = 0;
  /** Counters of queues already torn down (a reconnecting frontend gets new queues). */
  private readonly past: Record<string, number> = {};

  constructor(
    private readonly k: Kernel,
    readonly frontend: number,
    readonly devid: number,
    readonly pool: PacketPool,
    private readonly log: (line: string) => void,
    fatalSlots = DEFAULT_FATAL_SLOTS,
  ) {
    this.name = `vif${frontend}.${devid}`;
    this.limits = { fatalSlots, mcast: this.mcast, credit: (size) => this.credit === null || this.credit.take(size) };
  }

  /** xenvif_connect_data for each queue; on failure nothing stays mapped or bound. */
  connect(rings: readonly QueueRings[]): void {
    this.disabled = null;
    try {
      for (let q = 0; q < rings.length; q++) this.queues.push(new NetbackQueue(this.k, this, q, rings[q]));
    } catch (e) {
      this.disconnect();
      throw e;
    }
  }

  get connected(): boolean {
    return this.queues.length > 0 && this.disabled === null;
  }

  /* ---- BridgePort: frames for the guest ---- */

  get csumOffload(): boolean {
    return this.ipCsum;
  }

  deliver(p: Packet): boolean {
    if (!this.connected) {
      p.release();
      return false;
    }
    if (this.taps.size !== 0) for (const tap of this.taps) tap(p);
    const q = this.queues.length === 1 ? this.queues[0] : this.queues[flowHash(p.pages[0], p.len) % this.queues.length];
    return q.enqueue(p);
  }

  /* ---- QueueOwner: frames from the guest ---- */

  transmitted(p: Packet): void {
    if (this.taps.size !== 0) for (const tap of this.taps) tap(p);
    if (this.bridge !== null) this.bridge.input(this, p);
    else p.release();
  }

  dropped(why: string): void {
    this.drops++;
    if (this.drops <= MAX_LOGGED_DROPS) {
      this.log(`netback ${this.name}: dropped a packet: ${why}` +
        (this.drops === MAX_LOGGED_DROPS ? ' (further drops on this vif are counted, not logged)' : ''));
    }
  }

  /** xenvif_fatal_tx_err, then the carrier off: only this vif stops. */
  fatal(why: string): void {
    if (this.disabled !== null) return;
    this.disabled = why;
    this.log(`netback ${this.name}: fatal error; disabling device: ${why}`);
    for (const q of this.queues) q.stop();
    this.bridge?.removePort(this);
    this.credit?.stop();
  }

  /** Kick every queue (the credit timer refilled the credit). */
  kick(): void {
    for (const q of this.queues) q.work();
  }

  disconnect(): void {
    for (const q of this.queues) {
      for (const [k, v] of Object.entries(q.stats)) this.past[k] = (this.past[k] ?? 0) + v;
      q.disconnect();
    }
    this.queues = [];
    this.credit?.stop();
  }

  stats(): Record<string, number> {
    const out: Record<string, number> = { ...this.past, drops_logged_or_counted: this.drops, disabled: this.disabled === null ? 0 : 1 };
    for (const q of this.queues) for (const [k, v] of Object.entries(q.stats)) out[k] = (out[k] ?? 0) + v;
    if (this.credit !== null) out.credit_waits = this.credit.waits;
    return out;
  }
}

/** Which queue a frame goes to: a hash of the IPv4 addresses and ports (the flow), else queue 0. */
function flowHash(f: Uint8Array, len: number): number {
  if (len < 38 || f[12] !== 0x08 || f[13] !== 0x00) return 0;
  let h = 0x811c9dc5;
  for (let i = 26; i < 38; i++) h = Math.imul(h ^ f[i], 0x01000193);
  return h >>> 0;
}
