/*
 * The host's network card itself: the hardware behind a bridge's uplink, moving frames between
 * its wire (a UDP socket on 127.0.0.1) and the memory of the domain that owns it, through the
 * IOMMU.
 *
 * Xen: none; this is the machine. Xen assigns a real NIC to the hardware domain (whose bridge
 * enslaves it as peth0) or, with `pci = [...]`, to a guest or a network driver domain; that
 * domain's driver (Linux's e1000e) programs it. The layout it reads is shared/public/hw/nic.ts;
 * the driver is shared/kernel/drivers/nic.ts; the IOMMU and device table are ./pci.ts.
 *
 * Unlike the storage controller, which works in its caller's thread, a NIC works beside the CPU:
 * frames arrive when the wire says so. This one runs in the control thread, where its socket is:
 * the owner's doorbell (pci_doorbell in the owner's vCPU thread) only records the control block's
 * address and bumps a doorbell word the device waits on (Atomics.waitAsync), as an MMIO write
 * posts to a device and returns. Then, here:
 *   - setup: read the control block by DMA; open the wire the first time (the port the driver
 *     asked for), and once it is bound write the port and LINK_UP back and raise LSC; add a named
 *     link partner;
 *   - transmit: the descriptors from TDH to TDT, gathered to each End Of Packet, every buffer
 *     translated before a byte is read; the frame goes to every link partner; each descriptor is
 *     written back Done (with ERR_IOMMU and nothing sent, when one address was refused);
 *   - receive, per datagram: enough descriptors from RDH for the frame, every buffer translated
 *     before a byte is written; a refused address drops the frame with ERR_IOMMU written back to
 *     its descriptors, and no memory changes; no descriptors: counted as missed (e1000's MPC).
 * Each refused address is an IOMMU fault, counted on the device (./pci.ts) and logged (the first
 * few, as the storage controller's are). The interrupt is the owner's event channel named in the
 * control block (send_device_irq). A change of owner or of control block resets the rings.
 */
import { createSocket, type Socket } from 'node:dgram';
import {
  NIC_CTRL_WORD as W, NIC_DESC_BYTES, NIC_DESC_DD, NIC_DESC_EOP, NIC_DESC_ERR_IOMMU, NIC_DESC_ERR_LEN, NIC_ICR_LSC,
  NIC_ICR_RXT0, NIC_ICR_TXDW, NIC_MAGIC, NIC_MAX_FRAME, NIC_RING_SIZE, NIC_STATUS_LINK_UP, nic_desc,
} from '../../shared/public/hw/nic.ts';
import { PCI_DEVICES } from '../../shared/public/hw/sc.ts';
import { PAGE_SIZE } from '../../shared/public/xen.ts';
import { send_device_irq } from '../event-channel.ts';
import type { HypervisorState } from '../state.ts';
import { PD, iommu_translate, pciWord, pci_owner } from './pci.ts';

const LOOPBACK = '127.0.0.1';
const FAULTS_LOGGED = 8;
const D_GFN = nic_desc.fields.gfn[1];
const D_OFFSET = nic_desc.fields.offset[1];
const D_LEN = nic_desc.fields.len[1];
const D_STATUS = nic_desc.fields.status[1];
const D_FLAGS = nic_desc.fields.flags[1];
const PAGE_WORDS = PAGE_SIZE >> 2;

/** The owner's doorbell, from its vCPU thread: the control block's address, and a wake-up for the card. */
export function nic_doorbell(hv: HypervisorState, dev: number, ctrlGfn: number): number {
  Atomics.store(hv.pci, pciWord(dev, PD.ARG), ctrlGfn | 0);
  Atomics.add(hv.pci, pciWord(dev, PD.BELL), 1);
  Atomics.notify(hv.pci, pciWord(dev, PD.BELL));
  return 0;
}

export class PassthroughNic {
  readonly name: string;
  readonly stats = { tx_frames: 0, rx_frames: 0, rx_missed: 0, rx_dropped: 0, iommu_faults: 0 };
  private sock: Socket | null = null;
  private port = 0;
  private readonly peers = new Set<number>();
  private readonly dv: DataView;
  private owner = -1;
  private ctrlGfn = -1;
  private txHead = 0;
  private rxHead = 0;
  private closed = false;
  /** Translated frames of the frame being moved (one per descriptor), reused. */
  private readonly mfns = new Int32Array(NIC_RING_SIZE);

  constructor(private readonly hv: HypervisorState, readonly dev: number, private readonly log: (line: string) => void) {
    this.name = `nic ${PCI_DEVICES[dev]}`;
    this.dv = new DataView(hv.mem8.buffer, hv.mem8.byteOffset, hv.mem8.byteLength);
    void this.serve();
  }

  /** The UDP port of the wire (0 until a driver brought the link up). */
  get wirePort(): number {
    return this.port;
  }

  private async serve(): Promise<void> {
    const bell = pciWord(this.dev, PD.BELL);
    let seen = Atomics.load(this.hv.pci, bell);
    while (!this.closed) {
      const w = Atomics.waitAsync(this.hv.pci, bell, seen);
      if (w.async) await w.value;
      if (this.closed) return;
      seen = Atomics.load(this.hv.pci, bell);
      try {
        this.doorbell();
      } catch (e) {
        this.log(`(XEN) ${this.name}: ${(e as Error).message}`);
      }
    }
  }

  /** The control block's machine frame, if the owner (still) has a valid one; else null. */
  private ctrl(): number | null {
    const owner = pci_owner(this.hv, this.dev);
    if (owner < 0 || owner !== this.owner || this.ctrlGfn < 0) return null;
    const mfn = this.translate(this.ctrlGfn, true);
    if (mfn < 0) return null;
    const base = mfn * PAGE_WORDS;
    return Atomics.load(this.hv.mem32, base + W.magic) === NIC_MAGIC ? base : null;
  }

  private doorbell(): void {
    const owner = pci_owner(this.hv, this.dev);
    const gfn = Atomics.load(this.hv.pci, pciWord(this.dev, PD.ARG));
    if (owner !== this.owner || gfn !== this.ctrlGfn) {
      // A new owner or a new control block: the device is reset (a function-level reset).
      this.owner = owner;
      this.ctrlGfn = gfn;
      this.txHead = this.rxHead = 0;
    }
    const c = this.ctrl();
    if (c === null) return;
    const m = this.hv.mem32;
    const peer = Atomics.exchange(m, c + W.peer_port, 0) >>> 0;
    if (peer > 0 && peer <= 65535) this.peers.add(peer);
    if (this.sock === null) this.openWire(Atomics.load(m, c + W.wire_port) >>> 0);
    else this.linkUp(c);
    this.transmit(c);
  }

  private openWire(want: number): void {
    const sock = createSocket({ type: 'udp4', recvBufferSize: 4 << 20 });
    this.sock = sock;
    sock.on('message', (msg, from) => this.receive(msg, from));
    sock.on('error', (e) => this.log(`(XEN) ${this.name}: wire: ${e.message}`));
    sock.bind(want <= 65535 ? want : 0, LOOPBACK, () => {
      if (this.closed) return;
      this.port = sock.address().port;
      this.log(`(XEN) ${this.name}: link up, wire udp 127.0.0.1:${this.port}`);
      const c = this.ctrl();
      if (c !== null) this.linkUp(c);
    });
  }

  private linkUp(c: number): void {
    const m = this.hv.mem32;
    if (this.port === 0 || (Atomics.load(m, c + W.status) & NIC_STATUS_LINK_UP) !== 0) return;
    Atomics.store(m, c + W.wire_port, this.port);
    Atomics.or(m, c + W.status, NIC_STATUS_LINK_UP);
    this.interrupt(c, NIC_ICR_LSC);
  }

  /** TDH → TDT: each frame (descriptors to an EOP) checked whole, then sent, then written back. */
  private transmit(c: number): void {
    const m = this.hv.mem32;
    const ring = this.translate(Atomics.load(m, c + W.tx_ring) >>> 0, true);
    if (ring < 0) return;
    const tail = Atomics.load(m, c + W.tx_tail) >>> 0;
    let sent = 0;
    while (this.txHead !== tail) {
      // Gather one frame: up to its EOP, which must be before the tail (else wait for more).
      let n = 0;
      let bytes = 0;
      let fault = false;
      let eop = false;
      while (!eop && ((this.txHead + n) >>> 0) !== tail && n < NIC_RING_SIZE) {
        const d = this.desc(ring, this.txHead + n);
        const off = this.dv.getUint16(d + D_OFFSET, true);
        const len = this.dv.getUint16(d + D_LEN, true);
        eop = (this.dv.getUint16(d + D_FLAGS, true) & NIC_DESC_EOP) !== 0;
        const mfn = off + len > PAGE_SIZE ? -1 : this.translate(this.dv.getUint32(d + D_GFN, true), false);
        if (mfn < 0) fault = true;
        this.mfns[n++] = mfn;
        bytes += len;
      }
      if (!eop) break; // a frame still being queued
      let status = NIC_DESC_DD | NIC_DESC_EOP;
      if (fault || bytes > NIC_MAX_FRAME || bytes < 14) {
        status |= fault ? NIC_DESC_ERR_IOMMU : NIC_DESC_ERR_LEN;
      } else {
        const frame = Buffer.allocUnsafe(bytes); // the send is asynchronous: the datagram is its own copy
        let at = 0;
        for (let i = 0; i < n; i++) {
          const d = this.desc(ring, this.txHead + i);
          const off = this.dv.getUint16(d + D_OFFSET, true);
          const len = this.dv.getUint16(d + D_LEN, true);
          frame.set(this.hv.mem8.subarray(this.mfns[i] * PAGE_SIZE + off, this.mfns[i] * PAGE_SIZE + off + len), at);
          at += len;
        }
        for (const p of this.peers) this.sock?.send(frame, p, LOOPBACK);
        this.stats.tx_frames++;
        Atomics.add(m, c + W.tx_sent, 1);
        Atomics.add(this.hv.pci, pciWord(this.dev, PD.DMA_OPS), 1);
      }
      for (let i = 0; i < n; i++) this.dv.setUint16(this.desc(ring, this.txHead + i) + D_STATUS, status, true);
      this.txHead = (this.txHead + n) >>> 0;
      sent++;
    }
    if (sent === 0) return;
    Atomics.store(m, c + W.tx_head, this.txHead | 0);
    this.interrupt(c, NIC_ICR_TXDW);
  }

  /** A datagram off the wire: into the owner's RX buffers from RDH, or dropped. */
  private receive(msg: Buffer, from: { address: string; port: number }): void {
    if (from.address !== LOOPBACK || msg.length < 14 || msg.length > NIC_MAX_FRAME) {
      this.stats.rx_dropped++;
      return;
    }
    this.peers.add(from.port);
    const c = this.ctrl();
    if (c === null) {
      this.stats.rx_dropped++;
      return;
    }
    const m = this.hv.mem32;
    const ring = this.translate(Atomics.load(m, c + W.rx_ring) >>> 0, true);
    if (ring < 0) return;
    const tail = Atomics.load(m, c + W.rx_tail) >>> 0;
    // Enough descriptors for the whole frame, each buffer translated before anything is written.
    let n = 0;
    let room = 0;
    let fault = false;
    while (room < msg.length && ((this.rxHead + n) >>> 0) !== tail && n < NIC_RING_SIZE) {
      const d = this.desc(ring, this.rxHead + n);
      const off = this.dv.getUint16(d + D_OFFSET, true);
      const len = this.dv.getUint16(d + D_LEN, true);
      const mfn = off + len > PAGE_SIZE ? -1 : this.translate(this.dv.getUint32(d + D_GFN, true), true);
      if (mfn < 0) fault = true;
      this.mfns[n++] = mfn;
      room += len;
    }
    if (!fault && room < msg.length) {
      if (((this.rxHead + n) >>> 0) === tail) {
        this.stats.rx_missed++;
        Atomics.add(m, c + W.rx_missed, 1);
        return; // no descriptors (or not enough yet): missed, as e1000's MPC counts
      }
    }
    let at = 0;
    for (let i = 0; i < n; i++) {
      const d = this.desc(ring, this.rxHead + i);
      let status = NIC_DESC_DD | (i === n - 1 ? NIC_DESC_EOP : 0);
      if (fault || room < msg.length) {
        status |= fault ? NIC_DESC_ERR_IOMMU : NIC_DESC_ERR_LEN;
        this.dv.setUint16(d + D_LEN, 0, true);
      } else {
        const off = this.dv.getUint16(d + D_OFFSET, true);
        const len = Math.min(this.dv.getUint16(d + D_LEN, true), msg.length - at);
        this.hv.mem8.set(msg.subarray(at, at + len), this.mfns[i] * PAGE_SIZE + off);
        this.dv.setUint16(d + D_LEN, len, true);
        at += len;
      }
      this.dv.setUint16(d + D_STATUS, status, true);
    }
    if (!fault && room >= msg.length) {
      this.stats.rx_frames++;
      Atomics.add(m, c + W.rx_received, 1);
      Atomics.add(this.hv.pci, pciWord(this.dev, PD.DMA_OPS), 1);
    }
    this.rxHead = (this.rxHead + n) >>> 0;
    Atomics.store(m, c + W.rx_head, this.rxHead | 0); // after the data and the descriptors: the driver's acquire
    this.interrupt(c, NIC_ICR_RXT0);
  }

  private desc(ringMfn: number, index: number): number {
    return ringMfn * PAGE_SIZE + (index % NIC_RING_SIZE) * NIC_DESC_BYTES;
  }

  /** The IOMMU, and the log line a refused address earns (the first few per device). */
  private translate(gfn: number, deviceWrites: boolean): number {
    const mfn = iommu_translate(this.hv, this.dev, this.owner, gfn, deviceWrites);
    if (mfn >= 0) return mfn;
    this.stats.iommu_faults++;
    const n = Atomics.load(this.hv.pci, pciWord(this.dev, PD.FAULTS));
    if (n <= FAULTS_LOGGED) {
      this.log(`(XEN) [VT-D] DMAR: DMA ${deviceWrites ? 'write' : 'read'} fault from device ${PCI_DEVICES[this.dev]} (owner d${this.owner}): `
        + `address 0x${(gfn * PAGE_SIZE).toString(16)} (gfn ${gfn}) is not in d${this.owner}'s IOMMU table; nothing transferred`
        + (n === FAULTS_LOGGED ? ' (further faults from this device are counted, not logged)' : ''));
    }
    return -1;
  }

  private interrupt(c: number, cause: number): void {
    Atomics.or(this.hv.mem32, c + W.icr, cause);
    send_device_irq(this.hv, this.owner, Atomics.load(this.hv.mem32, c + W.irq_port));
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    Atomics.add(this.hv.pci, pciWord(this.dev, PD.BELL), 1);
    Atomics.notify(this.hv.pci, pciWord(this.dev, PD.BELL));
    this.sock?.close();
    this.sock = null;
  }
}
