/*
 * A bridge's uplink: a port whose other end is the host's network card, so the bridges of several
 * ringvisor hosts on one machine form one Ethernet segment.
 *
 * Linux/Xen: a Dom0 whose xenbr0 enslaves the physical NIC (peth0, by Xen's old network-bridge
 * script or /etc/network/interfaces): the bridge forwards to the NIC's netdev, whose driver
 * (e1000e) hands frames to the hardware by DMA. Here the card is the hypervisor's
 * (hypervisor/passthrough/nic.ts: its wire is a UDP socket on 127.0.0.1, one frame per datagram,
 * QEMU's `-netdev dgram` framing), assigned to Dom0 unless `pci = [...]` gives it elsewhere, and
 * driven by shared/kernel/drivers/nic.ts. Dom0 opens no socket for it: every frame goes out and
 * comes in through descriptor rings in Dom0's memory, which the card reaches only through the
 * IOMMU.
 *
 * Frames from the wire enter the bridge like frames from a vif (learned, forwarded or flooded); a
 * frame the bridge sends out here goes to every link partner of the card. Partners are given
 * (`peers`, or addPeer once the other host's port is known) or learned by the card: a datagram
 * from a loopback address not yet known makes it one.
 */
import type { Kernel } from '../../../shared/kernel/kernel.ts';
import { NicDriver } from '../../../shared/kernel/drivers/nic.ts';
import { NIC_MAX_FRAME } from '../../../shared/public/hw/nic.ts';
import { PCI_NIC0 } from '../../../shared/public/hw/sc.ts';
import type { Packet, PacketPool } from '../../lib/packet.ts';
import type { Bridge, BridgePort } from './bridge.ts';

export interface UplinkOptions {
  /** UDP port the card's wire uses, on 127.0.0.1 (0: any free port). */
  port?: number;
  /** "127.0.0.1:PORT" of other hosts' uplinks. */
  peers?: string[];
}

export class Uplink implements BridgePort {
  readonly name: string;
  readonly stats = { rx_frames: 0, tx_frames: 0, rx_dropped: 0, tx_dropped: 0 };
  private readonly peers = new Set<number>();
  /** A frame on its way to the card: the bridge's packet copied here, then into TX buffers. */
  private readonly out = new Uint8Array(NIC_MAX_FRAME);
  port = 0;

  constructor(private readonly bridge: Bridge, private readonly pool: PacketPool, readonly nic: NicDriver) {
    this.name = `${bridge.name}-uplink`;
    nic.onFrame = (bytes, len) => this.received(bytes, len);
  }

  addPeer(addr: string): void {
    const m = /^127\.0\.0\.1:([0-9]{1,5})$/.exec(addr);
    if (m === null || Number(m[1]) === 0 || Number(m[1]) > 65535) throw new Error(`uplink peer ${addr}: expected 127.0.0.1:PORT`);
    this.peers.add(Number(m[1]));
    this.nic.addPeer(Number(m[1]));
  }

  peerPorts(): number[] {
    return [...this.peers];
  }

  /** A frame from the bridge: to the card. */
  deliver(p: Packet): boolean {
    const len = p.len;
    if (len > this.out.length) {
      p.release();
      this.stats.tx_dropped++;
      return false;
    }
    p.copyOut(this.out);
    p.release();
    if (!this.nic.transmit(this.out, len)) {
      this.stats.tx_dropped++;
      return false;
    }
    this.stats.tx_frames++;
    return true;
  }

  /** A frame from the card: into the bridge. */
  private received(bytes: Uint8Array, len: number): void {
    const p = this.pool.alloc(len);
    if (p === null) {
      this.stats.rx_dropped++;
      return;
    }
    p.copyIn(bytes.subarray(0, len));
    this.stats.rx_frames++;
    this.bridge.input(this, p);
  }

  close(): void {
    this.bridge.removePort(this);
    this.nic.close();
  }
}

export async function startUplink(k: Kernel, bridge: Bridge, pool: PacketPool, opts: UplinkOptions): Promise<Uplink> {
  const up = new Uplink(bridge, pool, new NicDriver(k, PCI_NIC0));
  up.port = await up.nic.up(opts.port ?? 0);
  for (const p of opts.peers ?? []) up.addPeer(p);
  bridge.addPort(up);
  uplinks.set(bridge.name, up);
  return up;
}

/** Uplinks by bridge name. */
export const uplinks = new Map<string, Uplink>();
