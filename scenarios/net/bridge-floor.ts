/*
 * The net suite's floor: the same UDP workloads as between two guests, run by two network stacks
 * inside Dom0, each joined to the bridge by a veth-like port. No guest, no ring, no grant, no
 * event channel: what is left is what every guest-to-guest packet pays too (a stack building and
 * checking the datagram, a Dom0 packet buffer, the bridge's lookup, a copy in and a copy out).
 *
 * Linux: two network namespaces, each with one end of a veth pair whose other end is enslaved to
 * the bridge, and netperf between them: the usual "native" baseline for container and VM
 * networking. drivers/net/veth.c: veth_xmit hands the frame to the peer's backlog (netif_rx) and
 * the receive side runs later in softirq; here a port's frames wait in its backlog and are taken
 * up in one microtask per burst, so a sender's burst does not recurse into the receiver.
 *
 * The workloads are the guests' own code (domu/workloads/udp-stream.ts and domu/net/stack.ts,
 * pure computation on byte arrays): the same window of datagrams, the same acks,
 * the same checksum on every payload, the same checksum offload (veth, like netfront, leaves the
 * UDP checksum of a frame between two local stacks uncomputed). So the `bridge` row does the same work at the same depth as
 * the `pv` row, minus virtualization. The old floor (`bridge-raw`: a prebuilt frame into the bridge
 * and a sink that drops it, one at a time) is kept as the cost of the bridge alone.
 */
import type { Kernel } from '../../shared/kernel/kernel.ts';
import type { NetDevice } from '../../domu/net/netdev.ts';
import { NetStack } from '../../domu/net/stack.ts';
import { udpRrClient, udpRrServer, udpStreamRecv, udpStreamSend, type StreamResult } from '../../domu/workloads/udp-stream.ts';
import type { Bridge, BridgePort } from '../../dom0/services/bridge/bridge.ts';
import type { Packet, PacketPool } from '../../dom0/lib/packet.ts';
import { PAGE_SIZE } from '../../shared/public/xen.ts';
import { CHECKSUM_PARTIAL, l4CsumOffset, partialCsumStart } from '../../shared/kernel/net-csum.ts';
import { ETH_HDR, IP_PROTO } from '../../shared/public/net/inet.ts';

/** netdev_max_backlog is 1000 in Linux; a ring of 512 holds every window the workloads use. */
const BACKLOG = 512;

/** One end of a veth pair, the other end on the bridge: a NetDevice for the stack, a port for the bridge. */
class VethPort implements NetDevice, BridgePort {
  readonly path = 'pv' as const; // (the NetPath type has no "native"; nothing reads it here)
  readonly mtu = 1500;
  readonly maxFrags = 2;
  /** veth offloads checksums (NETIF_F_HW_CSUM), as netfront does: a datagram between two stacks is never summed either. */
  readonly csumOffload = true;
  onReceive: (frame: Uint8Array, csum?: number) => void = () => undefined;
  onTxRoom: () => void = () => undefined;
  readonly counters = { tx_packets: 0, rx_packets: 0, rx_dropped: 0, tx_dropped: 0 };
  private readonly backlog: (Packet | null)[] = new Array(BACKLOG).fill(null);
  private head = 0;
  private count = 0;
  private scheduled = false;
  private readonly linear = new Uint8Array(0x10000);

  constructor(readonly name: string, readonly mac: Uint8Array, private readonly bridge: Bridge, private readonly pool: PacketPool) {}

  /** veth_xmit: the frame becomes a Dom0 packet (one copy, as a guest's copy into its tx page) and enters the bridge. */
  transmit(frags: readonly Uint8Array[], n: number, csumPartial = false): boolean {
    let total = 0;
    for (let f = 0; f < n; f++) total += frags[f].length;
    const p = this.pool.alloc(total);
    if (p === null) {
      this.counters.tx_dropped++;
      return true; // dropped, as a full qdisc drops; the stream counts it as lost
    }
    let at = 0;
    for (let f = 0; f < n; f++) {
      const frag = frags[f];
      for (let done = 0; done < frag.length;) {
        const off = at & (PAGE_SIZE - 1);
        const len = Math.min(frag.length - done, PAGE_SIZE - off);
        p.pages[at >> 12].set(frag.subarray(done, done + len), off);
        done += len;
        at += len;
      }
    }
    if (csumPartial) {
      p.csumStart = partialCsumStart(p.pages[0], Math.min(total, PAGE_SIZE));
      if (p.csumStart < 0) throw new Error(`${this.name}: a partial checksum on a frame that is not IPv4 UDP`); // our own stack's bug
      p.csum = CHECKSUM_PARTIAL;
      p.csumOffset = l4CsumOffset(p.pages[0][ETH_HDR + IP_PROTO]);
    }
    this.counters.tx_packets++;
    this.bridge.input(this, p);
    return true;
  }

  /** The bridge's side: netif_rx into this port's backlog, taken up once per burst. */
  deliver(p: Packet): boolean {
    if (this.count === BACKLOG) {
      this.counters.rx_dropped++;
      p.release();
      return false;
    }
    this.backlog[(this.head + this.count) % BACKLOG] = p;
    this.count++;
    if (!this.scheduled) {
      this.scheduled = true;
      queueMicrotask(this.drain);
    }
    return true;
  }

  /** process_backlog: each frame copied out of Dom0's packet (as netback copies into a guest's buffer) and handed up. */
  private readonly drain = (): void => {
    this.scheduled = false;
    while (this.count > 0) {
      const p = this.backlog[this.head]!;
      this.backlog[this.head] = null;
      this.head = (this.head + 1) % BACKLOG;
      this.count--;
      p.copyOut(this.linear);
      const len = p.len;
      const csum = p.csum;
      p.release();
      this.counters.rx_packets++;
      this.onReceive(this.linear.subarray(0, len), csum);
    }
  };

  stats(): Record<string, number> {
    return { ...this.counters };
  }

  async close(): Promise<void> {
    this.bridge.removePort(this);
  }
}

export interface FloorRun { ms: number; result: StreamResult; a: Record<string, number>; b: Record<string, number> }

function pair(k: Kernel, bridge: Bridge, pool: PacketPool): [NetStack, NetStack, VethPort, VethPort] {
  const a = new VethPort('veth-floor-a', Uint8Array.of(0x02, 0, 0, 0, 0xf1, 0x0a), bridge, pool);
  const b = new VethPort('veth-floor-b', Uint8Array.of(0x02, 0, 0, 0, 0xf1, 0x0b), bridge, pool);
  bridge.addPort(a);
  bridge.addPort(b);
  const sa = new NetStack(a, 0x0a00f10a); // 10.0.241.10
  const sb = new NetStack(b, 0x0a00f10b);
  sa.sleep = sb.sleep = (ms) => k.timers.sleep(ms);
  return [sa, sb, a, b];
}

/** udp-stream of `count` datagrams of `size` bytes from one namespace to the other. */
export async function floorStream(k: Kernel, bridge: Bridge, pool: PacketPool, size: number, count: number): Promise<FloorRun> {
  const [sa, sb, a, b] = pair(k, bridge, pool);
  try {
    const recv = udpStreamRecv(sb, 5001);
    const t0 = performance.now();
    const sent = await udpStreamSend(sa, sb.ip, 5001, 5002, size, count, (ms) => k.timers.sleep(ms));
    const got = await recv.done;
    if (got.bad > 0) throw new Error(`bridge floor: ${got.bad} datagrams arrived corrupted`);
    return { ms: performance.now() - t0, result: sent, a: a.stats(), b: b.stats() };
  } finally {
    await a.close();
    await b.close();
  }
}

/** udp-rr: `count` round trips of `size` bytes. */
export async function floorRr(k: Kernel, bridge: Bridge, pool: PacketPool, size: number, count: number): Promise<FloorRun> {
  const [sa, sb, a, b] = pair(k, bridge, pool);
  try {
    const server = udpRrServer(sb, 5002);
    const t0 = performance.now();
    const r = await udpRrClient(sa, sb.ip, 5002, 5003, size, count);
    await server.done; // the client's end marker closes it
    return { ms: performance.now() - t0, result: r, a: a.stats(), b: b.stats() };
  } finally {
    await a.close();
    await b.close();
  }
}
