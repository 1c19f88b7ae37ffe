/*
 * A learning Ethernet bridge in Dom0, joining the guests' vifs (and an uplink) into one segment.
 *
 * Linux: net/bridge (br_handle_frame → br_handle_frame_finish: learn the source MAC on the
 * ingress port (br_fdb_update), then br_forward to the port the destination was learned on, or
 * br_flood to every other port for broadcast, multicast and unknown destinations; entries age
 * out after ageing_time, 300 s by default; per-port counters as `ip -s link` shows them). Xen's
 * vif-bridge script enslaves each vif to the bridge named by the vif's `bridge=` (xenbr0 by
 * default); here that is netback's hotplug step (dom0/backends/netback/hotplug.ts).
 *
 * What is left out: STP, VLAN filtering, the bridge's own IP address (Dom0 has no IP stack; it
 * can still send frames through the bridge as a port: the benchmark's floor).
 *
 * Frames are Dom0 packets (dom0/lib/packet.ts) handed over by reference: each output port takes
 * one reference and releases it when it has copied the frame out, so flooding costs no copy here.
 */
import type { Packet } from '../../lib/packet.ts';
import { checksumHelp } from '../../lib/packet-csum.ts';
import { CHECKSUM_PARTIAL } from '../../../shared/kernel/net-csum.ts';

/** ageing_time: how long a learned MAC stays without being seen again (Linux: 300 s). */
export const BRIDGE_AGEING_MS = 300_000;
/** A bound on the table, so one guest spraying source MACs cannot grow Dom0 without limit. */
export const BRIDGE_FDB_MAX = 4096;

export interface PortCounters {
  rx_packets: number; rx_bytes: number; tx_packets: number; tx_bytes: number; tx_dropped: number;
}

/** Something a bridge forwards frames to: a vif, the uplink, a capture tap. */
export interface BridgePort {
  readonly name: string;
  /** Take the frame (one reference is the port's; release it when done). False: dropped. */
  deliver(p: Packet): boolean;
  /**
   * The port takes frames whose checksum is partial (NETIF_F_IP_CSUM: a vif whose frontend did not
   * write feature-no-csum-offload). Otherwise, or if absent, the bridge completes it first.
   */
  readonly csumOffload?: boolean;
}

interface Fdb { port: BridgePort; seen: number }

export class Bridge {
  private readonly ports: BridgePort[] = [];
  private readonly counters = new Map<BridgePort, PortCounters>();
  private readonly fdb = new Map<number, Fdb>();
  /** Taps see every frame that enters the bridge (`ringvisor capture BRIDGE`). */
  readonly taps = new Set<(p: Packet) => void>();
  readonly stats = { forwarded: 0, flooded: 0, learned: 0, aged: 0, filtered: 0 };

  constructor(readonly name: string, private readonly now: () => number = () => performance.now(), readonly ageingMs = BRIDGE_AGEING_MS) {}

  /** brctl addif. */
  addPort(port: BridgePort): void {
    if (this.ports.includes(port)) return;
    this.ports.push(port);
    this.counters.set(port, { rx_packets: 0, rx_bytes: 0, tx_packets: 0, tx_bytes: 0, tx_dropped: 0 });
  }

  /** brctl delif: the port goes, and so does everything learned on it. */
  removePort(port: BridgePort): void {
    const i = this.ports.indexOf(port);
    if (i < 0) return;
    this.ports.splice(i, 1);
    this.counters.delete(port);
    for (const [mac, e] of this.fdb) if (e.port === port) this.fdb.delete(mac);
  }

  portNames(): string[] {
    return this.ports.map((p) => p.name);
  }

  portCounters(name: string): PortCounters | null {
    const p = this.ports.find((x) => x.name === name);
    return p === undefined ? null : { ...this.counters.get(p)! };
  }

  /** The learned table (`bridge fdb show`): MAC → port name and age in ms. */
  table(): { mac: string; port: string; ageMs: number }[] {
    const t = this.now();
    return [...this.fdb.entries()].map(([mac, e]) => ({ mac: macOfKey(mac), port: e.port.name, ageMs: Math.round(t - e.seen) }));
  }

  /**
   * br_handle_frame: a frame arrived on `from`. The caller's reference is consumed here
   * (forwarded, flooded or dropped).
   */
  input(from: BridgePort, p: Packet): void {
    const c = this.counters.get(from);
    if (c === undefined || p.len < 14) { // not (or no longer) a port, or a runt
      this.stats.filtered++;
      p.release();
      return;
    }
    c.rx_packets++;
    c.rx_bytes += p.len;
    if (this.taps.size !== 0) for (const tap of this.taps) tap(p);
    const frame = p.pages[0];
    const t = this.now();
    // br_fdb_update: learn the source, unless it is a group address (never a source).
    if ((frame[6] & 1) === 0) this.learn(keyOf(frame, 6), from, t);
    if ((frame[0] & 1) === 0) {
      const e = this.fdb.get(keyOf(frame, 0));
      if (e !== undefined && t - e.seen <= this.ageingMs && this.counters.has(e.port)) {
        if (e.port !== from) {
          this.stats.forwarded++;
          this.send(e.port, p);
        } else {
          this.stats.filtered++; // the destination is on the port it came from: nothing to do
        }
        p.release();
        return;
      }
    }
    // br_flood: broadcast, multicast, or a destination we have not learned (or that aged out).
    this.stats.flooded++;
    for (const port of this.ports) if (port !== from) this.send(port, p);
    p.release();
  }

  private send(port: BridgePort, p: Packet): void {
    const c = this.counters.get(port)!;
    // validate_xmit_skb: a port that cannot take a partial checksum gets the frame completed.
    if (p.csum === CHECKSUM_PARTIAL && port.csumOffload !== true) checksumHelp(p);
    p.refs++;
    if (port.deliver(p)) {
      c.tx_packets++;
      c.tx_bytes += p.len;
    } else {
      c.tx_dropped++;
    }
  }

  private learn(mac: number, port: BridgePort, t: number): void {
    const e = this.fdb.get(mac);
    if (e !== undefined) {
      e.port = port; // a MAC that moved (a migrated guest) follows at once, as in Linux
      e.seen = t;
      return;
    }
    if (this.fdb.size >= BRIDGE_FDB_MAX) this.age(t);
    if (this.fdb.size >= BRIDGE_FDB_MAX) return;
    this.fdb.set(mac, { port, seen: t });
    this.stats.learned++;
  }

  /** br_fdb_cleanup: forget entries not seen for ageingMs. */
  age(t = this.now()): void {
    for (const [mac, e] of this.fdb) {
      if (t - e.seen > this.ageingMs) {
        this.fdb.delete(mac);
        this.stats.aged++;
      }
    }
  }
}

/** A MAC as a 48-bit number: a map key that costs no allocation per frame. */
function keyOf(b: Uint8Array, off: number): number {
  return (b[off] * 0x10000 + b[off + 1] * 0x100 + b[off + 2]) * 0x1000000 + b[off + 3] * 0x10000 + b[off + 4] * 0x100 + b[off + 5];
}

function macOfKey(k: number): string {
  return k.toString(16).padStart(12, '0').replace(/(..)(?!$)/g, '$1:');
}

/** Dom0's bridges by name (`brctl show`). */
export const bridges = new Map<string, Bridge>();

export function createBridge(name: string): Bridge {
  let b = bridges.get(name);
  if (b === undefined) {
    b = new Bridge(name);
    bridges.set(name, b);
  }
  return b;
}
