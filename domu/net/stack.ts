/*
 * The guest's network stack: Ethernet, ARP, IPv4, ICMP echo and UDP sockets, over one NetDevice
 * (netfront, or later an emulated NIC's driver).
 *
 * Linux: net/ethernet/eth.c (eth_type_trans), net/ipv4/arp.c, ip_input.c (ip_rcv: version, header
 * length, total length and header checksum checked, otherwise dropped and counted as InHdrErrors),
 * ip_output.c, icmp.c (icmp_echo answers requests), udp.c (a socket per port, the checksum over
 * the pseudo-header, a zero checksum meaning "none"). One subnet, no routing table, no IP
 * fragmentation (DF is set; a datagram larger than the MTU is refused), no IP options; no TCP.
 *
 * The guest's address comes from its vif's `ip=` (the toolstack writes it in the backend
 * directory, where Xen's vif-route reads it); its MAC is the vif's.
 *
 * Sending: a UDP datagram goes out as two fragments (headers, payload), so the NIC does
 * scatter-gather; the headers are built in a per-socket buffer, so nothing is allocated per
 * datagram. Receiving: each frame is parsed in place, in the NIC's receive callback, and a
 * socket's handler sees the payload as a view valid only during the call.
 *
 * Checksum offload (shared/kernel/net-csum.ts): on a NIC that says csumOffload (netfront, as
 * Linux's advertises NETIF_F_IP_CSUM) a UDP datagram goes out CHECKSUM_PARTIAL, its checksum field
 * holding only the pseudo-header sum; a frame the NIC hands up as validated or partial is not
 * summed again (udp4_csum_init, skb_csum_unnecessary). On other NICs (ringvisor's e1000 driver
 * uses none of the 82540EM's offloads) both ends sum every byte in software. IP header checksums
 * and ICMP's are always computed and checked here, as Linux does.
 */
import {
  ARP_HLEN, ARP_HTYPE, ARP_LEN, ARP_OPER, ARP_PLEN, ARP_PTYPE, ARP_REPLY, ARP_REQUEST, ARP_SHA, ARP_SPA, ARP_THA, ARP_TPA,
  ETH_ALEN, ETH_BROADCAST, ETH_DST, ETH_HDR, ETH_SRC, ETH_TYPE, ETHERTYPE_ARP, ETHERTYPE_IPV4, ICMP_CSUM, ICMP_ECHO_REPLY,
  ICMP_ECHO_REQUEST, ICMP_HDR, ICMP_TYPE, IPPROTO_ICMP, IPPROTO_UDP, IP_CSUM, IP_DF, IP_DST, IP_FRAG, IP_HDR, IP_ID, IP_LEN,
  IP_PROTO, IP_SRC, IP_TTL, IP_VHL, UDP_CSUM, UDP_DPORT, UDP_HDR, UDP_LEN, UDP_SPORT, csumFold, csumPartial,
} from '../../shared/public/net/inet.ts';
import { CHECKSUM_NONE } from '../../shared/kernel/net-csum.ts';
import type { RingTracer } from '../../shared/public/io/ring.ts';
import { TRC_GUEST_NET_GARP, TRC_GUEST_NET_UDP_IN, TRC_GUEST_NET_UDP_OUT } from '../../shared/public/trace.ts';
import type { NetDevice } from './netdev.ts';
import { ArpCache } from './arp.ts';

export type UdpHandler = (payload: Uint8Array, srcIp: number, srcPort: number) => void;
export type EchoHandler = (id: number, seq: number, data: Uint8Array, srcIp: number) => void;

const U8 = new Uint8Array(0);

/** How long an ARP request waits for its reply before it is sent again. */
const ARP_RETRY_MS = 100;

export class NetStack {
  readonly arp = new ArpCache();
  readonly stats = {
    rx_frames: 0, rx_not_for_us: 0, ip_in: 0, ip_hdr_errors: 0, ip_bad_proto: 0, icmp_in: 0, icmp_echo_replies_sent: 0,
    udp_in: 0, udp_csum_errors: 0, udp_no_port: 0, udp_out: 0, tx_full: 0,
    /** Checksum offload: datagrams sent with the checksum left to the NIC; received ones whose checksum the NIC vouched for, or that we summed. */
    udp_csum_offloaded: 0, udp_csum_unnecessary: 0, udp_csum_verified: 0,
  };
  private readonly sockets = new Map<number, UdpHandler>();
  private readonly echo = new Set<EchoHandler>();
  private ipId = 1;
  private readonly ctl = new Uint8Array(ETH_HDR + ARP_LEN);
  private readonly icmpOut = new Uint8Array(ETH_HDR + IP_HDR + 0x10000);
  private readonly frags: Uint8Array[] = [U8, U8];
  private roomWaiters: (() => void)[] = [];

  constructor(readonly dev: NetDevice, readonly ip: number) {
    dev.onReceive = (frame, csum) => this.receive(frame, csum ?? CHECKSUM_NONE);
    dev.onTxRoom = () => {
      const w = this.roomWaiters;
      this.roomWaiters = [];
      for (const f of w) f();
    };
  }

  get mac(): Uint8Array {
    return this.dev.mac;
  }

  /* ---- sending ---- */

  /** Wait until the NIC has room again (after a send returned false). */
  txRoom(): Promise<void> {
    return new Promise((r) => this.roomWaiters.push(r));
  }

  /** The MAC of `ip` (an ARP request if we do not know it yet). */
  /**
   * The guest's timer (k.timers.sleep), when the kernel hands one over: an ARP request that got no
   * reply within ARP_RETRY_MS is sent again, as Linux re-solicits (net/ipv4/arp.c, arp_solicit).
   */
  sleep: ((ms: number) => Promise<void>) | null = null;
  /** The kernel's HYPERVISOR_xentrace (gratuitous ARPs, UDP in and out: TRC_GUEST_NET_*), or null. */
  tracer: RingTracer | null = null;

  async resolve(ip: number): Promise<Uint8Array> {
    const cached = this.arp.lookup(ip);
    if (cached !== undefined) return cached;
    const known = this.arp.resolve(ip, () => this.sendArp(ARP_REQUEST, ETH_BROADCAST, ip));
    const sleep = this.sleep;
    if (sleep === null) return known;
    for (;;) {
      const mac = await Promise.race([known, sleep(ARP_RETRY_MS).then(() => null)]);
      if (mac !== null) return mac;
      this.arp.stats.requests_sent++;
      this.sendArp(ARP_REQUEST, ETH_BROADCAST, ip);
    }
  }

  /**
   * A gratuitous ARP: a broadcast request for our own address (sender = target = us), which
   * Linux sends on NETDEV_NOTIFY_PEERS (inetdev_send_gratuitous_arp, raised by netfront's
   * netdev_notify_peers when it reconnects after a migration). Bridges on the way learn where our
   * MAC now is, and neighbours that knew us refresh their entry.
   */
  announce(): void {
    if (this.ip === 0) return; // no address yet: nothing to announce (as Linux, before `ip addr add`)
    this.arp.stats.gratuitous_sent++;
    this.sendArp(ARP_REQUEST, ETH_BROADCAST, this.ip);
    this.tracer?.xentrace(TRC_GUEST_NET_GARP, this.ip, 0, 0, 0);
  }

  private sendArp(oper: number, dstMac: Uint8Array, targetIp: number, targetMac: Uint8Array = ETH_BROADCAST): void {
    const f = this.ctl;
    f.set(dstMac, ETH_DST);
    f.set(this.mac, ETH_SRC);
    put16(f, ETH_TYPE, ETHERTYPE_ARP);
    const a = ETH_HDR;
    put16(f, a + ARP_HTYPE, 1);
    put16(f, a + ARP_PTYPE, ETHERTYPE_IPV4);
    f[a + ARP_HLEN] = 6;
    f[a + ARP_PLEN] = 4;
    put16(f, a + ARP_OPER, oper);
    f.set(this.mac, a + ARP_SHA);
    put32(f, a + ARP_SPA, this.ip);
    f.set(oper === ARP_REQUEST ? new Uint8Array(6) : targetMac, a + ARP_THA);
    put32(f, a + ARP_TPA, targetIp);
    this.frags[0] = f;
    this.dev.transmit(this.frags, 1);
  }

  /** Fill an Ethernet + IPv4 header at the start of `h` for a packet of `ipLen` bytes. */
  private ipHeader(h: Uint8Array, dstMac: Uint8Array, dst: number, proto: number, ipLen: number): void {
    h.set(dstMac, ETH_DST);
    h.set(this.mac, ETH_SRC);
    put16(h, ETH_TYPE, ETHERTYPE_IPV4);
    const o = ETH_HDR;
    h[o + IP_VHL] = 0x45;
    h[o + 1] = 0;
    put16(h, o + IP_LEN, ipLen);
    put16(h, o + IP_ID, this.ipId = (this.ipId + 1) & 0xffff);
    put16(h, o + IP_FRAG, IP_DF);
    h[o + IP_TTL] = 64;
    h[o + IP_PROTO] = proto;
    put16(h, o + IP_CSUM, 0);
    put32(h, o + IP_SRC, this.ip);
    put32(h, o + IP_DST, dst);
    put16(h, o + IP_CSUM, csumFold(csumPartial(h, o, IP_HDR)));
  }

  /** A UDP socket on `port` (bind); its handler sees every datagram for it. */
  udpSocket(port: number, handler: UdpHandler): UdpSocket {
    if (this.sockets.has(port)) throw new Error(`UDP port ${port} is in use`);
    this.sockets.set(port, handler);
    return new UdpSocket(this, port);
  }

  closeSocket(port: number): void {
    this.sockets.delete(port);
  }

  /** udp_sendmsg to a resolved neighbour: false if the NIC is full (try again after txRoom()). */
  sendUdp(hdr: Uint8Array, dstMac: Uint8Array, dst: number, sport: number, dport: number, payload: Uint8Array): boolean {
    const ipLen = IP_HDR + UDP_HDR + payload.length;
    if (ipLen > this.dev.mtu) throw new RangeError(`UDP payload of ${payload.length} bytes exceeds the MTU ${this.dev.mtu} (no fragmentation)`);
    this.ipHeader(hdr, dstMac, dst, IPPROTO_UDP, ipLen);
    const u = ETH_HDR + IP_HDR;
    const udpLen = UDP_HDR + payload.length;
    put16(hdr, u + UDP_SPORT, sport);
    put16(hdr, u + UDP_DPORT, dport);
    put16(hdr, u + UDP_LEN, udpLen);
    put16(hdr, u + UDP_CSUM, 0);
    // The pseudo-header (src, dst, zero, protocol, UDP length), the UDP header, the payload.
    let sum = csumPartial(hdr, ETH_HDR + IP_SRC, 8) + IPPROTO_UDP + udpLen;
    const offload = this.dev.csumOffload === true;
    if (offload) {
      // udp4_hwcsum: CHECKSUM_PARTIAL, the field holds the folded pseudo-header sum (~csum_tcpudp_magic);
      // the NIC, or Dom0 if the frame leaves the host, sums the rest (shared/kernel/net-csum.ts).
      put16(hdr, u + UDP_CSUM, ~csumFold(sum) & 0xffff);
      this.stats.udp_csum_offloaded++;
    } else {
      sum = csumPartial(hdr, u, UDP_HDR, sum);
      sum = csumPartial(payload, 0, payload.length, sum);
      put16(hdr, u + UDP_CSUM, csumFold(sum) || 0xffff); // 0 means "no checksum": send 0xffff instead
    }
    // A socket's header buffer is exactly the headers: no view made per datagram.
    this.frags[0] = hdr.length === ETH_HDR + IP_HDR + UDP_HDR ? hdr : hdr.subarray(0, ETH_HDR + IP_HDR + UDP_HDR);
    this.frags[1] = payload;
    if (!this.dev.transmit(this.frags, payload.length > 0 ? 2 : 1, offload)) {
      this.stats.tx_full++;
      return false;
    }
    this.stats.udp_out++;
    this.tracer?.xentrace(TRC_GUEST_NET_UDP_OUT, dst, sport, dport, payload.length);
    return true;
  }

  /** An ICMP echo request (or reply) of `data` to a resolved neighbour; false if the NIC is full. */
  sendEcho(type: number, dstMac: Uint8Array, dst: number, id: number, seq: number, data: Uint8Array): boolean {
    const f = this.icmpOut;
    const ipLen = IP_HDR + ICMP_HDR + data.length;
    if (ipLen > this.dev.mtu) throw new RangeError(`ICMP payload of ${data.length} bytes exceeds the MTU ${this.dev.mtu}`);
    this.ipHeader(f, dstMac, dst, IPPROTO_ICMP, ipLen);
    const c = ETH_HDR + IP_HDR;
    f[c + ICMP_TYPE] = type;
    f[c + 1] = 0;
    put16(f, c + ICMP_CSUM, 0);
    put16(f, c + 4, id);
    put16(f, c + 6, seq);
    f.set(data, c + ICMP_HDR);
    put16(f, c + ICMP_CSUM, csumFold(csumPartial(f, c, ICMP_HDR + data.length)));
    this.frags[0] = f.subarray(0, ETH_HDR + ipLen);
    return this.dev.transmit(this.frags, 1);
  }

  /** Echo replies (and, for a pinger, nothing else) go to these handlers. */
  onEchoReply(h: EchoHandler): () => void {
    this.echo.add(h);
    return () => this.echo.delete(h);
  }

  /* ---- receiving ---- */

  /** The receiving frame's checksum state (netif_receive_skb's skb->ip_summed), for udpIn. */
  private rxCsum: number = CHECKSUM_NONE;

  private receive(f: Uint8Array, csum: number): void {
    this.rxCsum = csum;
    this.stats.rx_frames++;
    if (f.length < ETH_HDR) return;
    if ((f[0] & 1) === 0 && !sameMac(f, ETH_DST, this.mac)) {
      this.stats.rx_not_for_us++;
      return;
    }
    const type = get16(f, ETH_TYPE);
    if (type === ETHERTYPE_ARP) return this.arpIn(f);
    if (type === ETHERTYPE_IPV4) return this.ipIn(f);
  }

  private arpIn(f: Uint8Array): void {
    const a = ETH_HDR;
    if (f.length < ETH_HDR + ARP_LEN || get16(f, a + ARP_HTYPE) !== 1 || get16(f, a + ARP_PTYPE) !== ETHERTYPE_IPV4) return;
    const oper = get16(f, a + ARP_OPER);
    const spa = get32(f, a + ARP_SPA);
    const tpa = get32(f, a + ARP_TPA);
    // arp_process: an ARP not meant for us (a peer's gratuitous ARP after it moved, say) still
    // updates an entry we already have; only one addressed to us may make a new one.
    if (tpa !== this.ip) return void this.arp.refresh(spa, f, a + ARP_SHA);
    this.arp.learn(spa, f, a + ARP_SHA);
    if (oper === ARP_REQUEST) {
      this.arp.stats.replies_sent++;
      this.sendArp(ARP_REPLY, f.subarray(a + ARP_SHA, a + ARP_SHA + ETH_ALEN), spa, f.subarray(a + ARP_SHA, a + ARP_SHA + ETH_ALEN));
    }
  }

  private ipIn(f: Uint8Array): void {
    const o = ETH_HDR;
    this.stats.ip_in++;
    if (f.length < o + IP_HDR) return void this.stats.ip_hdr_errors++;
    const ihl = (f[o + IP_VHL] & 15) * 4;
    const total = get16(f, o + IP_LEN);
    if (f[o + IP_VHL] >> 4 !== 4 || ihl < IP_HDR || total < ihl || o + total > f.length || csumFold(csumPartial(f, o, ihl)) !== 0) {
      this.stats.ip_hdr_errors++;
      return;
    }
    if (get32(f, o + IP_DST) !== this.ip) return;
    if ((get16(f, o + IP_FRAG) & 0x3fff) !== 0) return void this.stats.ip_hdr_errors++; // fragments: not reassembled
    const src = get32(f, o + IP_SRC);
    const l4 = o + ihl;
    const l4len = total - ihl;
    const proto = f[o + IP_PROTO];
    if (proto === IPPROTO_UDP) return this.udpIn(f, src, l4, l4len);
    if (proto === IPPROTO_ICMP) return this.icmpIn(f, src, l4, l4len);
    this.stats.ip_bad_proto++;
  }

  private udpIn(f: Uint8Array, src: number, u: number, len: number): void {
    this.stats.udp_in++;
    const udpLen = len >= UDP_HDR ? get16(f, u + UDP_LEN) : 0;
    if (udpLen < UDP_HDR || udpLen > len) return void this.stats.udp_csum_errors++;
    if (this.rxCsum !== CHECKSUM_NONE) {
      // __skb_checksum_validate: CHECKSUM_UNNECESSARY, or PARTIAL (a guest on this host sent it and
      // the NIC vouches for the bytes): nothing to verify, as skb_csum_unnecessary says.
      this.stats.udp_csum_unnecessary++;
    } else if (get16(f, u + UDP_CSUM) !== 0) {
      this.stats.udp_csum_verified++;
      let sum = csumPartial(f, ETH_HDR + IP_SRC, 8) + IPPROTO_UDP + udpLen;
      sum = csumPartial(f, u, udpLen, sum);
      if (csumFold(sum) !== 0) return void this.stats.udp_csum_errors++;
    }
    const h = this.sockets.get(get16(f, u + UDP_DPORT));
    this.tracer?.xentrace(TRC_GUEST_NET_UDP_IN, src, get16(f, u + UDP_SPORT), get16(f, u + UDP_DPORT), udpLen - UDP_HDR);
    if (h === undefined) return void this.stats.udp_no_port++;
    h(f.subarray(u + UDP_HDR, u + udpLen), src, get16(f, u + UDP_SPORT));
  }

  private icmpIn(f: Uint8Array, src: number, c: number, len: number): void {
    if (len < ICMP_HDR || csumFold(csumPartial(f, c, len)) !== 0) return void this.stats.ip_hdr_errors++;
    this.stats.icmp_in++;
    const type = f[c + ICMP_TYPE];
    const data = f.subarray(c + ICMP_HDR, c + len);
    if (type === ICMP_ECHO_REQUEST) {
      // icmp_echo: answer with the same id, sequence and data, to the sender's MAC.
      const mac = f.slice(ETH_SRC, ETH_SRC + ETH_ALEN);
      if (this.sendEcho(ICMP_ECHO_REPLY, mac, src, get16(f, c + 4), get16(f, c + 6), data)) this.stats.icmp_echo_replies_sent++;
    } else if (type === ICMP_ECHO_REPLY) {
      for (const h of this.echo) h(get16(f, c + 4), get16(f, c + 6), data, src);
    }
  }
}

/** A bound UDP port: send to an address (resolved first), receive through the handler given at bind. */
export class UdpSocket {
  private readonly hdr = new Uint8Array(ETH_HDR + IP_HDR + UDP_HDR);
  constructor(private readonly stack: NetStack, readonly port: number) {}

  /** Send once the peer is resolved; waits for room if the NIC is full. */
  async sendTo(dst: number, dport: number, payload: Uint8Array): Promise<void> {
    const mac = await this.stack.resolve(dst);
    while (!this.stack.sendUdp(this.hdr, mac, dst, this.port, dport, payload)) await this.stack.txRoom();
  }

  /** Send to a peer already resolved; false if the NIC is full. */
  trySend(mac: Uint8Array, dst: number, dport: number, payload: Uint8Array): boolean {
    return this.stack.sendUdp(this.hdr, mac, dst, this.port, dport, payload);
  }

  close(): void {
    this.stack.closeSocket(this.port);
  }
}

function get16(b: Uint8Array, o: number): number {
  return (b[o] << 8) | b[o + 1];
}
function get32(b: Uint8Array, o: number): number {
  return ((b[o] << 24) | (b[o + 1] << 16) | (b[o + 2] << 8) | b[o + 3]) >>> 0;
}
function put16(b: Uint8Array, o: number, v: number): void {
  b[o] = v >>> 8;
  b[o + 1] = v;
}
function put32(b: Uint8Array, o: number, v: number): void {
  b[o] = v >>> 24;
  b[o + 1] = v >>> 16;
  b[o + 2] = v >>> 8;
  b[o + 3] = v;
}

function sameMac(f: Uint8Array, off: number, mac: Uint8Array): boolean {
  for (let i = 0; i < 6; i++) if (f[off + i] !== mac[i]) return false;
  return true;
}
