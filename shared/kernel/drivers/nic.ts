/*
 * The driver of the host's network card: its rings of descriptors and buffers in this domain's
 * memory, a frame in, a frame out. Dom0's bridge drives its uplink through it
 * (dom0/services/bridge/nic-uplink.ts).
 *
 * Xen/Linux: what Linux's e1000e is to the NIC the hypervisor assigned to the domain (Dom0 as the
 * hardware domain, or a network driver domain with `pci = [...]`): e1000_setup_tx_resources /
 * e1000_setup_rx_resources (one page of descriptors each way, a buffer per descriptor),
 * e1000_alloc_rx_buffers (give the device every RX descriptor: RDT), e1000_xmit_frame (fill
 * descriptors to an EOP, move TDT, ring), e1000_clean_rx_irq (take frames up to RDH, give the
 * buffers back) and e1000_clean_tx_irq (reclaim descriptors up to TDH). The device and its
 * layout: shared/public/hw/nic.ts, hypervisor/passthrough/nic.ts.
 *
 * Every address given to the card is a frame of this domain, by its bus address (its gfn: with
 * the IOMMU on, a domain programs its device with the addresses it knows). The interrupt is an
 * event channel this domain allocates for itself and names in the control block. Buffers are a
 * page each and are this driver's own; frames are copied into them to send, and out of them when
 * received, so no page of anyone else is ever given to the device.
 *
 * Use: `await up(port)` (the wire's UDP port; resolves with the one bound when the link is up),
 * addPeer(port), transmit(bytes, len) (false when the ring is full: the frame is dropped, as a
 * stopped netdev queue would hold it), and `onFrame(bytes, len)` for each frame received (the
 * bytes are the driver's scratch: copy them before returning). No host module: this file runs in
 * whichever domain the card is assigned to.
 */
import type { Kernel } from '../kernel.ts';
import {
  NIC_CTRL_WORD as W, NIC_DESC_BYTES, NIC_DESC_DD, NIC_DESC_EOP, NIC_DESC_ERR_IOMMU, NIC_DESC_ERR_LEN, NIC_MAGIC,
  NIC_MAX_FRAME, NIC_RING_SIZE, NIC_STATUS_LINK_UP, nic_desc,
} from '../../public/hw/nic.ts';
import { PAGE_SIZE } from '../../public/xen.ts';
import { dataViewOf } from '../../view.ts';

const DOMID_SELF = 0x7ff0;
const D_GFN = nic_desc.fields.gfn[1];
const D_OFFSET = nic_desc.fields.offset[1];
const D_LEN = nic_desc.fields.len[1];
const D_STATUS = nic_desc.fields.status[1];
const D_FLAGS = nic_desc.fields.flags[1];
const MASK = NIC_RING_SIZE - 1;

export class NicDriver {
  readonly stats = { tx_frames: 0, rx_frames: 0, tx_ring_full: 0, tx_lost: 0, tx_errors: 0, rx_errors: 0, interrupts: 0 };
  private readonly pages: number[] = [];
  private readonly ctrlGfn: number;
  private readonly ctrl: Int32Array;
  private readonly tx: DataView;
  private readonly rx: DataView;
  private readonly txBufs: Uint8Array[] = [];
  private readonly rxBufs: Uint8Array[] = [];
  private readonly scratch = new Uint8Array(NIC_MAX_FRAME);
  private readonly port: number;
  /** Free-running: next TX descriptor to fill, oldest not yet reclaimed, next RX descriptor to read. */
  private txTail = 0;
  private txClean = 0;
  private rxNext = 0;
  private linkWaiters: ((port: number) => void)[] = [];
  private closed = false;
  /** The card refused a doorbell: it is no longer this domain's. */
  private gone = false;
  onFrame: (bytes: Uint8Array, len: number) => void = () => undefined;

  constructor(private readonly k: Kernel, readonly dev: number) {
    const page = () => {
      const g = k.pages.alloc();
      this.pages.push(g);
      return g;
    };
    this.ctrlGfn = page();
    this.ctrl = k.memory.pageWords(this.ctrlGfn, true);
    const txRing = page();
    const rxRing = page();
    this.tx = dataViewOf(k.memory.page(txRing, true));
    this.rx = dataViewOf(k.memory.page(rxRing, true));
    for (let i = 0; i < NIC_RING_SIZE; i++) {
      const t = page();
      this.txBufs.push(k.memory.page(t, true));
      this.tx.setUint32(i * NIC_DESC_BYTES + D_GFN, t, true);
      const r = page();
      this.rxBufs.push(k.memory.page(r, true));
      this.rx.setUint32(i * NIC_DESC_BYTES + D_GFN, r, true);
      this.rx.setUint16(i * NIC_DESC_BYTES + D_LEN, PAGE_SIZE, true);
    }
    this.port = k.events.allocUnbound(DOMID_SELF, () => this.interrupt());
    const c = this.ctrl;
    c.fill(0, 0, PAGE_SIZE >> 2);
    c[W.irq_port] = this.port;
    c[W.tx_ring] = txRing;
    c[W.rx_ring] = rxRing;
    c[W.rx_tail] = NIC_RING_SIZE; // every RX buffer is the device's (e1000_alloc_rx_buffers)
    Atomics.store(c, W.magic, NIC_MAGIC);
  }

  /** Bring the link up on UDP port `wirePort` (0: any); resolves with the port the wire has. */
  up(wirePort: number): Promise<number> {
    Atomics.store(this.ctrl, W.wire_port, wirePort);
    const p = new Promise<number>((resolve) => this.linkWaiters.push(resolve));
    this.doorbell();
    return p;
  }

  /** The wire's UDP port (0 until the link is up). */
  get wirePort(): number {
    return (Atomics.load(this.ctrl, W.status) & NIC_STATUS_LINK_UP) !== 0 ? Atomics.load(this.ctrl, W.wire_port) : 0;
  }

  /** Name a link partner, another card's wire port (see shared/public/hw/nic.ts, "The wire"). */
  addPeer(port: number): void {
    // The control block has one word for it, which the card empties when it takes the partner at
    // the doorbell it was rung with (posted: it works in its own thread). Naming two partners in a
    // row must not overwrite the first before the card has read it: wait for the word to be empty.
    if (Atomics.compareExchange(this.ctrl, W.peer_port, 0, port) === 0) this.doorbell();
    else void this.k.timers.sleep(1).then(() => { if (!this.closed) this.addPeer(port); });
  }

  /** e1000_xmit_frame: `len` bytes of `src` into free TX buffers, one descriptor per page. */
  transmit(src: Uint8Array, len: number): boolean {
    if (this.closed || this.gone) {
      this.stats.tx_lost++;
      return false;
    }
    this.cleanTx();
    const need = Math.ceil(len / PAGE_SIZE);
    if (len < 14 || len > NIC_MAX_FRAME || NIC_RING_SIZE - (this.txTail - this.txClean) < need) {
      this.stats.tx_ring_full++;
      return false;
    }
    for (let i = 0, at = 0; i < need; i++) {
      const idx = (this.txTail + i) & MASK;
      const n = Math.min(PAGE_SIZE, len - at);
      this.txBufs[idx].set(src.subarray(at, at + n));
      at += n;
      const d = idx * NIC_DESC_BYTES;
      this.tx.setUint16(d + D_OFFSET, 0, true);
      this.tx.setUint16(d + D_LEN, n, true);
      this.tx.setUint16(d + D_STATUS, 0, true);
      this.tx.setUint16(d + D_FLAGS, i === need - 1 ? NIC_DESC_EOP : 0, true);
    }
    this.txTail += need;
    // The descriptors before the tail: the doorbell's hypercall orders them before the device's read.
    Atomics.store(this.ctrl, W.tx_tail, this.txTail | 0);
    this.stats.tx_frames++;
    // One doorbell for a burst: frames the bridge hands over in one turn share it (as a driver
    // writes TDT once per batch, xmit_more).
    if (!this.bellScheduled) {
      this.bellScheduled = true;
      queueMicrotask(this.ringTx);
    }
    return true;
  }

  private bellScheduled = false;
  private readonly ringTx = (): void => {
    this.bellScheduled = false;
    // The card was taken away (assigned elsewhere): what was queued is lost, and so is what follows.
    if (!this.closed && this.k.hypercall.pci_doorbell(this.dev, this.ctrlGfn) < 0) this.gone = true;
  };

  /** A doorbell a caller waits on (up, addPeer): refused means this domain does not own the card. */
  private doorbell(): void {
    const rc = this.k.hypercall.pci_doorbell(this.dev, this.ctrlGfn);
    if (rc < 0) throw new Error(`nic ${this.dev}: the card is not assigned to this domain (${rc})`);
  }

  /** The card's interrupt: link changes, sent frames to reclaim, frames received. */
  private interrupt(): void {
    if (this.closed) return;
    this.stats.interrupts++;
    Atomics.exchange(this.ctrl, W.icr, 0); // every cause is handled below, whatever it was
    if (this.linkWaiters.length > 0 && this.wirePort !== 0) {
      const port = this.wirePort;
      for (const w of this.linkWaiters.splice(0)) w(port);
    }
    this.cleanTx();
    this.cleanRx();
  }

  /** e1000_clean_tx_irq: descriptors up to TDH are done. */
  private cleanTx(): void {
    const head = Atomics.load(this.ctrl, W.tx_head);
    while (this.txClean !== head && this.txClean !== this.txTail) {
      const d = (this.txClean & MASK) * NIC_DESC_BYTES;
      const st = this.tx.getUint16(d + D_STATUS, true);
      if ((st & (NIC_DESC_ERR_IOMMU | NIC_DESC_ERR_LEN)) !== 0 && (this.tx.getUint16(d + D_FLAGS, true) & NIC_DESC_EOP) !== 0) this.stats.tx_errors++;
      this.txClean++;
    }
  }

  /** e1000_clean_rx_irq: frames up to RDH, each to onFrame; the buffers go back (RDT). */
  private cleanRx(): void {
    const head = Atomics.load(this.ctrl, W.rx_head); // acquire: the data and descriptors before it are visible
    let len = 0;
    let bad = false;
    while (this.rxNext !== head) {
      const idx = this.rxNext & MASK;
      const d = idx * NIC_DESC_BYTES;
      const st = this.rx.getUint16(d + D_STATUS, true);
      const n = this.rx.getUint16(d + D_LEN, true);
      if ((st & (NIC_DESC_ERR_IOMMU | NIC_DESC_ERR_LEN)) !== 0) bad = true;
      else if (len + n <= this.scratch.length) {
        this.scratch.set(this.rxBufs[idx].subarray(0, n), len);
        len += n;
      }
      // The buffer goes back whole to the device.
      this.rx.setUint16(d + D_STATUS, 0, true);
      this.rx.setUint16(d + D_LEN, PAGE_SIZE, true);
      this.rxNext++;
      if ((st & NIC_DESC_EOP) === 0) continue;
      if (bad) this.stats.rx_errors++;
      else {
        this.stats.rx_frames++;
        this.onFrame(this.scratch, len);
      }
      len = 0;
      bad = false;
    }
    Atomics.store(this.ctrl, W.rx_tail, (this.rxNext + NIC_RING_SIZE) | 0);
  }

  /** The control block's counters, as the card wrote them. */
  deviceCounters(): { tx_sent: number; rx_received: number; rx_missed: number } {
    return {
      tx_sent: Atomics.load(this.ctrl, W.tx_sent), rx_received: Atomics.load(this.ctrl, W.rx_received),
      rx_missed: Atomics.load(this.ctrl, W.rx_missed),
    };
  }

  /** Stop the card (magic cleared: it touches nothing more) and give the pages back. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    Atomics.store(this.ctrl, W.magic, 0);
    this.k.events.close(this.port);
    for (const g of this.pages) this.k.pages.release(g);
  }
}
