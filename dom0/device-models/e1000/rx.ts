/*
 * The e1000's receive ring: a frame from the bridge is filtered as the NIC's address filters
 * would, then written into the buffers of the descriptors from RDH up to RDT, each descriptor
 * written back with its length and DD (+ EOP on the last), RDH advanced, and RXT0 raised (with
 * RXDMT0 once the free descriptors fall to the threshold RCTL.RDMTS names).
 *
 * QEMU: hw/net/e1000.c e1000_receive_iov, e1000_has_rxbufs, e1000_can_receive, set_rdt (which
 * flushes queued packets), e1000_receiver_overrun; e1000x_common.c e1000x_rx_group_filter,
 * e1000x_is_oversized, e1000x_update_rx_total_stats. When the guest has no free descriptor
 * (RDH = RDT), QEMU's e1000_can_receive says no and the net layer keeps the packet queued until
 * an RDT write; here a bounded backlog plays that queue, and what does not fit in it is missed
 * (RNBC and MPC counted, RXO raised), as a NIC whose FIFO overflowed.
 *
 * Frames that arrive before the driver has enabled receive wait in the same backlog (QEMU's
 * can_receive is false then too) and are filtered when they are received, by the filters the
 * driver has set by then.
 *
 * The guest's ring is untrusted: each descriptor is copied out once, a ring that cannot be
 * walked (RDLEN 0, RDH beyond it, a descriptor not in RAM) drops the frame (rx_ring_errors), and a
 * buffer address that is not guest RAM leaves that buffer unwritten and marks the descriptor with
 * the RX data error bit (rx_dma_errors). Nothing outside the guest's RAM is reachable.
 */
import { PAGE_SIZE } from '../../../shared/public/xen.ts';
import {
  E1000_DESC_SIZE, E1000_GORCL, E1000_GPRC, E1000_ICR_RXDMT0, E1000_ICR_RXO, E1000_ICR_RXT0, E1000_MTA, E1000_RAL0,
  E1000_RAH_AV, E1000_RCTL, E1000_RCTL_BAM, E1000_RCTL_EN, E1000_RCTL_LPE, E1000_RCTL_MO_SHIFT, E1000_RCTL_MPE,
  E1000_RCTL_RDMTS_SHIFT, E1000_RCTL_SBP, E1000_RCTL_SECRC, E1000_RCTL_UPE, E1000_RDBAH, E1000_RDBAL, E1000_RDH,
  E1000_RDLEN, E1000_RDT, E1000_ROC, E1000_RXD_STAT_DD, E1000_RXD_STAT_EOP, E1000_RXD_STAT_IXSM, E1000_TPR,
  RXD_STATUS, e1000RxBufSize, e1000_rx_desc,
} from '../../../shared/public/hw/e1000.ts';
import { PACKET_MAX_BYTES, type Packet } from '../../lib/packet.ts';
import type { E1000Core } from './core.ts';
import type { GuestDma } from './dma.ts';
import { ringBase } from './tx.ts';

/** Frames kept while the guest has no free descriptor (QEMU's net queue). */
export const E1000_RX_BACKLOG = 256;
const ETH_ZLEN = 60;            // frames are padded to the minimum Ethernet size (without FCS)
const MAX_SHORT = 14 + 4 + 1500; // largest frame without RCTL.LPE (header + VLAN tag + MTU)
const MAX_LONG = 16384 - 4;
const E1000_RXD_ERR_RXE = 0x80;

export class RxRing {
  private readonly desc = e1000_rx_desc.create();
  private readonly backlog: (Packet | null)[] = new Array(E1000_RX_BACKLOG).fill(null);
  private head = 0;
  private count = 0;
  /** A zero-padded copy for frames shorter than ETH_ZLEN. */
  private readonly pad = new Uint8Array(ETH_ZLEN);
  /** A frame with frags (netback's mapped tx data) is made linear here before its DMA. */
  private readonly linear = new Uint8Array(PACKET_MAX_BYTES);

  constructor(private readonly core: E1000Core, private readonly dma: GuestDma) {}

  get waiting(): number {
    return this.count;
  }

  /**
   * A frame from the bridge (the reference is ours). False: dropped. A NIC that cannot take it now
   * (receive not enabled yet, or no free descriptor) keeps it in the backlog, as QEMU's net layer
   * queues a packet while e1000_can_receive says no; the filters apply when it is received.
   */
  deliver(p: Packet): boolean {
    const c = this.core;
    if (this.count > 0) this.flush(); // descriptors may have come back since the last frame
    if (this.count === 0 && this.receive(p)) return true;
    if (this.count === E1000_RX_BACKLOG) {
      c.stats.rx_backlog_drops++;
      c.missed();
      c.raise(E1000_ICR_RXO);
      p.release();
      return false;
    }
    this.backlog[(this.head + this.count) % E1000_RX_BACKLOG] = p;
    this.count++;
    return true;
  }

  /** set_rdt → qemu_flush_queued_packets: the guest posted buffers; take what waits. */
  flush(): void {
    while (this.count > 0 && this.receive(this.backlog[this.head]!)) {
      this.backlog[this.head] = null;
      this.head = (this.head + 1) % E1000_RX_BACKLOG;
      this.count--;
    }
  }

  /** Drop everything waiting (reset, or the model going away). */
  drain(): void {
    while (this.count > 0) {
      this.backlog[this.head]!.release();
      this.backlog[this.head] = null;
      this.head = (this.head + 1) % E1000_RX_BACKLOG;
      this.count--;
    }
  }

  /**
   * e1000_receive_iov for one frame: true if it was consumed (written, or dropped for a ring
   * error), false if it must wait for descriptors. Releases the frame when consumed.
   */
  private receive(p: Packet): boolean {
    const c = this.core;
    const rctl = c.reg(E1000_RCTL);
    if (!c.linkUp || (rctl & E1000_RCTL_EN) === 0) {
      c.stats.rx_disabled++;
      return false; // e1000_can_receive: not now
    }
    const size = Math.max(p.len, ETH_ZLEN);
    if ((size > MAX_LONG || (size > MAX_SHORT && (rctl & E1000_RCTL_LPE) === 0)) && (rctl & E1000_RCTL_SBP) === 0) {
      c.stats.rx_oversize++;
      c.inc(E1000_ROC);
      p.release();
      return true;
    }
    if (!this.accepts(p.pages[0], rctl)) {
      c.stats.rx_filtered++;
      p.release();
      return true;
    }
    const n = c.reg(E1000_RDLEN) / E1000_DESC_SIZE;
    const rdh0 = c.reg(E1000_RDH);
    if (n === 0 || rdh0 >= n || c.reg(E1000_RDT) >= n) {
      c.stats.rx_ring_errors++;
      p.release();
      return true;
    }
    const bufSize = e1000RxBufSize(rctl);
    const total = size + ((rctl & E1000_RCTL_SECRC) !== 0 ? 0 : 4);
    if (!this.hasBuffers(total, bufSize, n)) {
      c.stats.rx_no_buffers++;
      return false;
    }
    const base = ringBase(c.reg(E1000_RDBAL), c.reg(E1000_RDBAH));
    const d = this.desc;
    let offset = 0;
    do {
      const at = base + c.reg(E1000_RDH) * E1000_DESC_SIZE;
      if (!this.dma.read(at, d.bytes, 0, E1000_DESC_SIZE)) {
        c.stats.rx_ring_errors++;
        p.release();
        return true;
      }
      const descSize = Math.min(total - offset, bufSize);
      d.special = 0;
      d.errors = 0;
      d.status = 0;
      if (d.buffer_addr !== 0) {
        // The frame's bytes (not the FCS, which the device does not write) that fall in this buffer.
        const copy = Math.min(Math.max(size - offset, 0), bufSize);
        if (copy > 0 && !this.copyOut(p, offset, d.buffer_addr, copy)) {
          c.stats.rx_dma_errors++;
          d.errors = E1000_RXD_ERR_RXE;
        }
        offset += descSize;
        d.length = descSize;
        if (offset >= total) d.status = E1000_RXD_STAT_EOP | E1000_RXD_STAT_IXSM;
      }
      // A null buffer address skips the descriptor, as Intel's documentation says and QEMU does.
      // The descriptor goes back with status 0, then DD is published with an atomic store, so
      // the driver that sees DD also sees the length and the frame (QEMU's two pci_dma_writes).
      const status = d.status | E1000_RXD_STAT_DD;
      d.status = 0;
      this.dma.write(at, d.bytes, 0, E1000_DESC_SIZE);
      const sb = this.dma.byteAt(at + RXD_STATUS);
      if (sb !== null) Atomics.store(sb.page, sb.off, status);
      let h = c.reg(E1000_RDH) + 1;
      if (h >= n) h = 0;
      c.mac[E1000_RDH >> 2] = h;
      if (h === rdh0) {
        // A whole lap without finishing the frame: only a guest's nonsense ring does this.
        c.stats.rx_ring_errors++;
        c.missed();
        c.raise(E1000_ICR_RXO);
        p.release();
        return true;
      }
    } while (offset < total);
    c.stats.rx_frames++;
    c.stats.rx_bytes += p.len;
    c.inc(E1000_TPR);
    c.inc(E1000_GPRC);
    c.grow8(E1000_GORCL, size + 4);
    p.release();
    let cause = E1000_ICR_RXT0;
    let rdt = c.reg(E1000_RDT);
    const rdh = c.reg(E1000_RDH);
    if (rdt < rdh) rdt += n;
    const shift = ((rctl >>> E1000_RCTL_RDMTS_SHIFT) & 3) + 1;
    if ((rdt - rdh) * E1000_DESC_SIZE <= c.reg(E1000_RDLEN) >>> shift) cause |= E1000_ICR_RXDMT0;
    c.raise(cause);
    return true;
  }

  /** e1000_has_rxbufs. */
  private hasBuffers(total: number, bufSize: number, n: number): boolean {
    const rdh = this.core.reg(E1000_RDH);
    const rdt = this.core.reg(E1000_RDT);
    if (total <= bufSize) return rdh !== rdt;
    const bufs = rdh < rdt ? rdt - rdh : rdh > rdt ? n + rdt - rdh : 0;
    return total <= bufs * bufSize;
  }

  /** Bytes [from, from + len) of the frame (zero-padded to ETH_ZLEN) to guest-physical `gpa`. */
  private copyOut(p: Packet, from: number, gpa: number, len: number): boolean {
    if (p.len < ETH_ZLEN) {
      this.pad.fill(0);
      p.copyOut(this.pad);
      return this.dma.write(gpa, this.pad, from, len);
    }
    if (p.nFrags > 0) {
      if (from === 0) p.copyOut(this.linear);
      return this.dma.write(gpa, this.linear, from, len);
    }
    let done = 0;
    while (done < len) {
      const at = from + done;
      const page = p.pages[Math.floor(at / PAGE_SIZE)];
      const po = at & (PAGE_SIZE - 1);
      const n = Math.min(PAGE_SIZE - po, len - done);
      if (!this.dma.write(gpa + done, page, po, n)) return false;
      done += n;
    }
    return true;
  }

  /** e1000x_rx_group_filter: broadcast, multicast, unicast by RAL/RAH, else the MTA hash. */
  private accepts(frame: Uint8Array, rctl: number): boolean {
    const c = this.core;
    const bcast = frame[0] === 0xff && frame[1] === 0xff && frame[2] === 0xff && frame[3] === 0xff && frame[4] === 0xff && frame[5] === 0xff;
    if (bcast) { if ((rctl & E1000_RCTL_BAM) !== 0) return true; }
    else if ((frame[0] & 1) !== 0) { if ((rctl & E1000_RCTL_MPE) !== 0) return true; }
    else if ((rctl & E1000_RCTL_UPE) !== 0) return true;
    const lo = (frame[0] | (frame[1] << 8) | (frame[2] << 16) | (frame[3] << 24)) >>> 0;
    const hi = frame[4] | (frame[5] << 8);
    for (let r = 0; r < 16; r++) {
      const ral = c.reg(E1000_RAL0 + r * 8);
      const rah = c.reg(E1000_RAL0 + r * 8 + 4);
      if ((rah & E1000_RAH_AV) !== 0 && ral === lo && (rah & 0xffff) === hi) return true;
    }
    const shift = [4, 3, 2, 0][(rctl >>> E1000_RCTL_MO_SHIFT) & 3];
    const f = (((frame[5] << 8) | frame[4]) >>> shift) & 0xfff;
    return (c.reg(E1000_MTA + (f >>> 5) * 4) & (1 << (f & 31))) !== 0;
  }
}
