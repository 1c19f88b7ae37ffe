/*
 * A bridge's uplink: a port whose other end is a UDP socket on 127.0.0.1, one Ethernet frame per
 * datagram, so the bridges of several ringvisor hosts on one machine form one Ethernet segment.
 *
 * QEMU: `-netdev dgram,id=n,local.type=inet,local.host=127.0.0.1,local.port=P,remote...` (and the
 * older `-netdev socket,udp=`): the same framing, one frame per datagram, no header. On a real
 * Xen host this port would be the physical NIC enslaved to xenbr0 (peth0).
 *
 * Frames from a peer enter the bridge like frames from a vif (learned, forwarded or flooded); a
 * frame the bridge sends out here goes to every peer. Peers are given (`peers`, or addPeer once
 * the other host's port is known) or learned: a datagram from a loopback address not yet known
 * makes it a peer. Nothing but loopback is ever bound or accepted.
 */
import { createSocket, type Socket } from 'node:dgram';
import type { Packet, PacketPool } from '../../lib/packet.ts';
import { PACKET_MAX_BYTES } from '../../lib/packet.ts';
import type { Bridge, BridgePort } from './bridge.ts';

export interface UplinkOptions {
  /** UDP port to listen on, on 127.0.0.1 (0: any free port). */
  port?: number;
  /** "127.0.0.1:PORT" of other hosts' uplinks. */
  peers?: string[];
}

const LOOPBACK = '127.0.0.1';

export class Uplink implements BridgePort {
  readonly name: string;
  readonly stats = { rx_datagrams: 0, tx_datagrams: 0, rx_dropped: 0 };
  private readonly peers = new Set<number>();
  port = 0;

  constructor(private readonly bridge: Bridge, private readonly pool: PacketPool, private readonly sock: Socket) {
    this.name = `${bridge.name}-uplink`;
  }

  addPeer(addr: string): void {
    const m = /^127\.0\.0\.1:([0-9]{1,5})$/.exec(addr);
    if (m === null || Number(m[1]) === 0 || Number(m[1]) > 65535) throw new Error(`uplink peer ${addr}: expected 127.0.0.1:PORT`);
    this.peers.add(Number(m[1]));
  }

  peerPorts(): number[] {
    return [...this.peers];
  }

  /** A frame from the bridge: to every peer. The datagram is its own copy (the send is asynchronous). */
  deliver(p: Packet): boolean {
    if (this.peers.size === 0) {
      p.release();
      return false;
    }
    const buf = Buffer.allocUnsafe(p.len);
    p.copyOut(buf);
    p.release();
    for (const port of this.peers) {
      this.sock.send(buf, port, LOOPBACK);
      this.stats.tx_datagrams++;
    }
    return true;
  }

  /** A datagram from a peer: into the bridge. */
  received(msg: Buffer, from: { address: string; port: number }): void {
    if (from.address !== LOOPBACK || msg.length < 14 || msg.length > PACKET_MAX_BYTES) {
      this.stats.rx_dropped++;
      return;
    }
    this.peers.add(from.port);
    const p = this.pool.alloc(msg.length);
    if (p === null) {
      this.stats.rx_dropped++;
      return;
    }
    p.copyIn(msg);
    this.stats.rx_datagrams++;
    this.bridge.input(this, p);
  }

  close(): void {
    this.bridge.removePort(this);
    this.sock.close();
  }
}

export async function startUplink(bridge: Bridge, pool: PacketPool, opts: UplinkOptions, log: (line: string) => void): Promise<Uplink> {
  // A larger receive buffer, if the host allows it (net.core.rmem_max caps it): a burst from the
  // other host waits there until Dom0's idle loop gives its sockets a turn.
  const sock = createSocket({ type: 'udp4', recvBufferSize: 4 << 20 });
  const up = new Uplink(bridge, pool, sock);
  sock.on('message', (msg, rinfo) => up.received(msg, rinfo));
  sock.on('error', (e) => log(`bridge ${bridge.name}: uplink: ${e.message}`));
  await new Promise<void>((resolve, reject) => {
    sock.once('error', reject);
    sock.bind(opts.port ?? 0, LOOPBACK, () => { sock.off('error', reject); resolve(); });
  });
  up.port = sock.address().port;
  for (const p of opts.peers ?? []) up.addPeer(p);
  bridge.addPort(up);
  uplinks.set(bridge.name, up);
  return up;
}

/** Uplinks by bridge name. */
export const uplinks = new Map<string, Uplink>();
