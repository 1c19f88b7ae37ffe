/*
 * The e1000's transmit ring: on a write of TDT (or TCTL), take every descriptor from TDH up to
 * TDT out of guest RAM, gather each frame's bytes, hand the frame to the bridge, write back DD
 * where the driver asked for it (RS), and raise TXQE (+ TXDW).
 *
 * QEMU: hw/net/e1000.c start_xmit, process_tx_desc (legacy descriptors), txdesc_writeback,
 * xmit_seg → e1000_send_packet → qemu_send_packet (the netdev; for Xen, the vif's tap on the
 * bridge). Legacy descriptors only: context and data descriptors (DEXT, for checksum offload and
 * TSO) are counted as unsupported and skipped, their bytes not sent; ringvisor's driver computes
 * checksums itself, as with offload off.
 *
 * The guest's ring is untrusted. Each descriptor is copied out of guest RAM once and only the
 * copy is used (no double fetch). A ring that cannot be walked (TDLEN 0, TDH or TDT beyond it)
 * is a ring error: nothing is sent and TDH stays, so the guest sees its queue stuck, as on
 * hardware, and the counter says why. A descriptor whose buffer is not guest RAM drops the frame
 * it belongs to (tx_dma_errors). QEMU stops after one lap of the ring (the "TDH wraparound" check);
 * so does this loop. Frames over 64 KiB are cut to 64 KiB as QEMU's tx.data is.
 */
import { PAGE_SIZE } from '../../../shared/public/xen.ts';
import {
  E1000_DESC_SIZE, E1000_GOTCL, E1000_GPTC, E1000_ICR_TXDW, E1000_ICR_TXQE, E1000_TCTL, E1000_TCTL_EN, E1000_TDBAH,
  E1000_TDBAL, E1000_TDH, E1000_TDLEN, E1000_TDT, E1000_TPT, E1000_TXD_CMD_DEXT, E1000_TXD_CMD_EOP, E1000_TXD_CMD_RPS,
  E1000_TXD_CMD_RS, E1000_TXD_STAT_DD, E1000_TX_MAX_FRAME, TXD_STATUS, e1000_tx_desc,
} from '../../../shared/public/hw/e1000.ts';
import type { Packet, PacketPool } from '../../lib/packet.ts';
import type { E1000Core } from './core.ts';
import type { GuestDma } from './dma.ts';

const ETH_HLEN = 14;

export class TxRing {
  private readonly desc = e1000_tx_desc.create();
  /** The frame being gathered (QEMU's tx.data) and how much of it is filled. */
  private readonly data = new Uint8Array(E1000_TX_MAX_FRAME);
  private size = 0;
  /** A descriptor of the current frame could not be read: drop the frame at its EOP. */
  private bad = false;
  private busy = false;

  constructor(
    private readonly core: E1000Core,
    private readonly dma: GuestDma,
    private readonly pool: PacketPool,
    /** Where a finished frame goes (the bridge); the reference is passed on. */
    private readonly send: (p: Packet) => void,
  ) {}

  /** start_xmit. */
  start(): void {
    const c = this.core;
    if ((c.reg(E1000_TCTL) & E1000_TCTL_EN) === 0 || this.busy) return;
    const len = c.reg(E1000_TDLEN);
    const n = len / E1000_DESC_SIZE;
    const tdhStart = c.reg(E1000_TDH);
    if (c.reg(E1000_TDH) === c.reg(E1000_TDT)) return;
    if (n === 0 || tdhStart >= n || c.reg(E1000_TDT) >= n) {
      c.stats.tx_ring_errors++;
      return;
    }
    this.busy = true;
    const base = ringBase(c.reg(E1000_TDBAL), c.reg(E1000_TDBAH));
    let cause = E1000_ICR_TXQE;
    const d = this.desc;
    while (c.reg(E1000_TDH) !== c.reg(E1000_TDT)) {
      const at = base + c.reg(E1000_TDH) * E1000_DESC_SIZE;
      if (!this.dma.read(at, d.bytes, 0, E1000_DESC_SIZE)) {
        // The ring itself is not in guest RAM: stop here, TDH where it is.
        c.stats.tx_ring_errors++;
        break;
      }
      c.stats.tx_descs++;
      this.process();
      if ((d.cmd & (E1000_TXD_CMD_RS | E1000_TXD_CMD_RPS)) !== 0) {
        // txdesc_writeback: DD in the status byte only (the rest of the descriptor is the guest's).
        const b = this.dma.byteAt(at + TXD_STATUS);
        if (b !== null) Atomics.store(b.page, b.off, (d.status | E1000_TXD_STAT_DD) & 0xff);
        cause |= E1000_ICR_TXDW;
      }
      let h = c.reg(E1000_TDH) + 1;
      if (h >= n) h = 0;
      c.mac[E1000_TDH >> 2] = h;
      if (h === tdhStart) break; // one lap at most, as QEMU's wraparound check
    }
    this.busy = false;
    c.raise(cause);
  }

  /** process_tx_desc for the descriptor in this.desc. */
  private process(): void {
    const d = this.desc;
    const c = this.core;
    if ((d.cmd & E1000_TXD_CMD_DEXT) !== 0) {
      c.stats.tx_unsupported++;
      return;
    }
    const want = d.length;
    const n = Math.min(want, this.data.length - this.size);
    if (n > 0 && !this.dma.read(d.buffer_addr, this.data, this.size, n)) {
      c.stats.tx_dma_errors++;
      this.bad = true;
    }
    this.size += n;
    if ((d.cmd & E1000_TXD_CMD_EOP) === 0) return;
    const size = this.size;
    const bad = this.bad;
    this.size = 0;
    this.bad = false;
    if (bad || size < ETH_HLEN) {
      c.stats.tx_dropped++;
      return;
    }
    const p = this.pool.alloc(size);
    if (p === null) {
      c.stats.tx_dropped++; // Dom0 is out of packet buffers
      return;
    }
    for (let at = 0, i = 0; at < size; at += PAGE_SIZE, i++) p.pages[i].set(this.data.subarray(at, Math.min(size, at + PAGE_SIZE)));
    c.stats.tx_frames++;
    c.stats.tx_bytes += size;
    c.inc(E1000_TPT);
    c.inc(E1000_GPTC);
    c.grow8(E1000_GOTCL, size + 4);
    this.send(p);
  }
}

/** tx_desc_base / rx_desc_base: BAH:BAL with the low 4 bits of BAL ignored. */
export function ringBase(bal: number, bah: number): number {
  return bah * 2 ** 32 + ((bal & ~0xf) >>> 0);
}
