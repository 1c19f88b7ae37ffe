/*
 * An emulated Intel 82540EM behind the guest's one NetDevice interface: the same network stack and
 * workloads that run over netfront run here, register access by register access.
 *
 * Linux: drivers/net/ethernet/intel/e1000 (e1000_probe: reset, e1000_read_mac_addr and
 * e1000_validate_eeprom_checksum over EERD, e1000_rar_set, MTA cleared; e1000_open →
 * e1000_configure_tx / e1000_configure_rx / e1000_alloc_rx_buffers; e1000_xmit_frame with
 * xmit_more; e1000_intr → NAPI e1000_clean → e1000_clean_tx_irq / e1000_clean_rx_irq). The device
 * model is dom0/device-models/e1000; the registers shared/public/hw/e1000.ts; regs.ts traps.
 *
 * Rings: 256 legacy descriptors each way, each ring one page (as Linux's default ring sizes); every
 * descriptor owns a 2 KiB buffer in the guest's RAM (RCTL.BSIZE 2048), allocated once, so the
 * model's mapcache keeps them mapped. Transmit copies each fragment into its descriptor's buffer
 * (scatter-gather: one descriptor per fragment, EOP on the last) and asks for DD (RS); the tail
 * register TDT is written once per burst, at the end of the current microtask (Linux's xmit_more;
 * netfront publishes its ring the same way), and that one write sends the burst: the model runs
 * the ring inside the trapped write. With `txKick: 'each'` the driver writes TDT after every frame
 * instead, as Linux's e1000_xmit_frame did before xmit_more (Linux 3.18, 2014) and as a simple
 * driver without batching does: one synchronous trap per packet sent, the un-batched case. Receive takes every descriptor with DD, hands the frame up,
 * gives the buffer back, and writes RDT once per pass.
 *
 * Waiting, under the kernel's idle loop as every driver does: the NIC's ISA IRQ is bound as an
 * event channel (EVTCHNOP_bind_pirq, as the IDE driver binds IRQ 14). Its handler reads ICR (a
 * trap; reading it acknowledges and lowers the line) and cleans the rings. Between interrupts the
 * idle loop polls (IdlePoller): looking at the next rx descriptor's DD byte costs no trap, as NAPI
 * busy polling reads descriptors in memory. Before the vCPU sleeps, prepareToSleep reads ICR once,
 * so the line is low again and the next frame raises a fresh edge, then looks once more.
 *
 * Traps per packet, in the steady state: a burst of transmitted frames costs one TDT write; a pass
 * over received frames costs the ICR read that found them (if an interrupt did) and one RDT write.
 * With bufioreq=1 the RDT write does not wait for the model. Everything else is memory.
 */
import type { IdlePoller } from '../../shared/kernel/events.ts';
import type { Kernel } from '../../shared/kernel/kernel.ts';
import {
  E1000_CTRL, E1000_CTRL_RST, E1000_DESC_SIZE, E1000_EERD, E1000_EERD_ADDR_SHIFT, E1000_EERD_DATA_SHIFT,
  E1000_EERD_DONE, E1000_EERD_START, E1000_ICR, E1000_ICR_LSC, E1000_ICR_RXDMT0, E1000_ICR_RXO, E1000_ICR_RXT0,
  E1000_ICR_TXDW, E1000_IMC, E1000_IMS, E1000_IRQS, E1000_MAX_NICS, E1000_MTA, E1000_MTA_WORDS, E1000_RAH0, E1000_RAH_AV,
  E1000_RAL0, E1000_RCTL, E1000_RCTL_BAM, E1000_RCTL_EN, E1000_RCTL_SECRC, E1000_RDBAH, E1000_RDBAL, E1000_RDH,
  E1000_RDLEN, E1000_RDT, E1000_RXD_STAT_DD, E1000_RXD_STAT_EOP, E1000_STATUS, E1000_STATUS_LU, E1000_TCTL,
  E1000_TCTL_EN, E1000_TCTL_PSP, E1000_TDBAH, E1000_TDBAL, E1000_TDH, E1000_TDLEN, E1000_TDT, E1000_TXD_CMD_EOP,
  E1000_TXD_CMD_IFCS, E1000_TXD_CMD_RS, E1000_TXD_STAT_DD, EEPROM_CHECKSUM_REG, EEPROM_SUM, RXD_LENGTH, RXD_STATUS,
  TXD_CMD, TXD_LENGTH, TXD_STATUS,
} from '../../shared/public/hw/e1000.ts';
import { PAGE_SIZE } from '../../shared/public/xen.ts';
import type { NetDevice } from '../net/netdev.ts';
import { E1000Regs } from './regs.ts';
import { dataViewOf } from '../../shared/view.ts';

const RING = PAGE_SIZE / E1000_DESC_SIZE; // 256 descriptors: one page per ring
const BUF = 2048;                          // RCTL.BSIZE 00
const BUFS_PER_PAGE = PAGE_SIZE / BUF;
const ETH_HLEN = 14;
const MTU = 1500;
const IMS_ENABLE = E1000_ICR_RXT0 | E1000_ICR_RXO | E1000_ICR_RXDMT0 | E1000_ICR_LSC;

export interface E1000Options {
  /** Which emulated NIC (its BAR0 and IRQ, shared/public/hw/e1000.ts). */
  index: number;
  name?: string;
  /** When TDT is written: once per burst (xmit_more, the default) or after every frame. */
  txKick?: 'burst' | 'each';
}

/** Probe and open NIC `index`: reset it, read its MAC from the EEPROM, set up both rings. */
export function probeE1000(k: Kernel, opts: E1000Options): E1000Nic {
  if (!(Number.isInteger(opts.index) && opts.index >= 0 && opts.index < E1000_MAX_NICS)) {
    throw new Error(`e1000: no NIC slot ${opts.index} (at most ${E1000_MAX_NICS})`);
  }
  return new E1000Nic(k, opts);
}

export class E1000Nic implements NetDevice, IdlePoller {
  readonly name: string;
  readonly path = 'emu-e1000' as const;
  readonly mac = new Uint8Array(6);
  readonly mtu = MTU;
  readonly maxFrags = 4;
  onReceive: (frame: Uint8Array) => void = () => undefined;
  onTxRoom: () => void = () => undefined;
  readonly regs: E1000Regs;
  readonly irqPort: number;
  readonly counters = {
    tx_packets: 0, tx_bytes: 0, tx_busy: 0, tx_dropped: 0, tx_doorbells: 0, rx_packets: 0, rx_bytes: 0, rx_errors: 0,
    rx_doorbells: 0, interrupts: 0, spurious: 0, polled: 0,
  };
  private readonly ringGfns: number[];
  private readonly txRing: Uint8Array;
  private readonly rxRing: Uint8Array;
  private readonly txDv: DataView;
  private readonly rxDv: DataView;
  private readonly bufGfns: number[] = [];
  private readonly txBuf: Uint8Array[] = [];
  private readonly rxBuf: Uint8Array[] = [];
  private txTail = 0;        // next descriptor we fill (our copy of TDT)
  private txClean = 0;       // oldest descriptor not yet reclaimed
  private txPublished = 0;   // the TDT value the device last saw
  private rxClean = 0;       // next descriptor the device fills
  private rxTail = 0;        // our copy of RDT
  private txWaiting = false;
  private doorbellQueued = false;
  private closed = false;
  /** A received frame spanning descriptors is gathered here (RCTL.LPE frames; not used at MTU 1500). */
  private readonly gather = new Uint8Array(16384);
  /** TDT after every frame (no xmit_more). */
  readonly kickEach: boolean;

  constructor(private readonly k: Kernel, opts: E1000Options) {
    this.name = opts.name ?? `eth${opts.index}`;
    this.kickEach = opts.txKick === 'each';
    this.regs = new E1000Regs(k, opts.index);
    const port = k.hypercall.evtchn_bind_pirq(E1000_IRQS[opts.index]);
    if (port < 0) throw new Error(`e1000: cannot bind IRQ ${E1000_IRQS[opts.index]} (${port}): no device model for this NIC?`);
    this.irqPort = port;
    const r = this.regs;
    try {
      // e1000_reset_hw, then the MAC from the EEPROM, checked as e1000_validate_eeprom_checksum does.
      r.write(E1000_CTRL, E1000_CTRL_RST);
      let sum = 0;
      for (let w = 0; w <= EEPROM_CHECKSUM_REG; w++) {
        const v = this.eepromRead(w);
        sum = (sum + v) & 0xffff;
        if (w < 3) { this.mac[2 * w] = v & 0xff; this.mac[2 * w + 1] = v >>> 8; }
      }
      if (sum !== EEPROM_SUM) throw new Error(`e1000: EEPROM checksum is 0x${sum.toString(16)}, expected 0x${EEPROM_SUM.toString(16)}`);
      // e1000_rar_set and the multicast table cleared (e1000_init_hw).
      const m = this.mac;
      r.write(E1000_RAL0, m[0] | (m[1] << 8) | (m[2] << 16) | (m[3] << 24));
      r.write(E1000_RAH0, m[4] | (m[5] << 8) | E1000_RAH_AV);
      for (let i = 0; i < E1000_MTA_WORDS; i++) r.write(E1000_MTA + 4 * i, 0);
    } catch (e) {
      k.events.close(port);
      throw e;
    }
    // Rings and buffers: each a page of guest RAM, for the life of the device.
    this.ringGfns = k.pages.allocMany(2);
    this.txRing = k.memory.page(this.ringGfns[0], true);
    this.rxRing = k.memory.page(this.ringGfns[1], true);
    this.txRing.fill(0);
    this.rxRing.fill(0);
    this.txDv = dataViewOf(this.txRing, 0, PAGE_SIZE);
    this.rxDv = dataViewOf(this.rxRing, 0, PAGE_SIZE);
    for (let i = 0; i < (2 * RING) / BUFS_PER_PAGE; i++) {
      const gfn = k.pages.alloc();
      this.bufGfns.push(gfn);
      const page = k.memory.page(gfn, true);
      for (let b = 0; b < BUFS_PER_PAGE; b++) (i < RING / BUFS_PER_PAGE ? this.txBuf : this.rxBuf).push(page.subarray(b * BUF, (b + 1) * BUF));
    }
    // e1000_configure_tx.
    r.write(E1000_TDBAL, this.ringGfns[0] * PAGE_SIZE);
    r.write(E1000_TDBAH, 0);
    r.write(E1000_TDLEN, RING * E1000_DESC_SIZE);
    r.write(E1000_TDH, 0);
    r.write(E1000_TDT, 0);
    r.write(E1000_TCTL, E1000_TCTL_EN | E1000_TCTL_PSP);
    // e1000_configure_rx + e1000_alloc_rx_buffers: every descriptor gets its buffer; RDT one short
    // of RDH so that a full ring is never mistaken for an empty one.
    for (let i = 0; i < RING; i++) {
      const gpa = this.bufGpa(RING + i);
      this.rxDv.setUint32(i * E1000_DESC_SIZE, gpa >>> 0, true);
      this.rxDv.setUint32(i * E1000_DESC_SIZE + 4, Math.floor(gpa / 2 ** 32), true);
    }
    r.write(E1000_RDBAL, this.ringGfns[1] * PAGE_SIZE);
    r.write(E1000_RDBAH, 0);
    r.write(E1000_RDLEN, RING * E1000_DESC_SIZE);
    r.write(E1000_RDH, 0);
    r.write(E1000_RCTL, E1000_RCTL_EN | E1000_RCTL_BAM | E1000_RCTL_SECRC);
    this.rxTail = RING - 1;
    r.write(E1000_RDT, this.rxTail);
    // e1000_irq_enable, and the link state as the watchdog would read it.
    k.events.bind(port, this.onIrq);
    r.write(E1000_IMS, IMS_ENABLE);
    if ((r.read(E1000_STATUS) & E1000_STATUS_LU) === 0) k.log(`e1000 ${this.name}: link is down`);
    k.events.addPoller(this);
  }

  /** Guest-physical address of buffer `i` (tx 0..255, rx 256..511). */
  private bufGpa(i: number): number {
    return this.bufGfns[Math.floor(i / BUFS_PER_PAGE)] * PAGE_SIZE + (i % BUFS_PER_PAGE) * BUF;
  }

  /** e1000_read_eeprom via EERD: start, then poll for DONE (the model answers at once). */
  private eepromRead(word: number): number {
    this.regs.write(E1000_EERD, (word << E1000_EERD_ADDR_SHIFT) | E1000_EERD_START);
    for (let i = 0; i < 100; i++) {
      const v = this.regs.read(E1000_EERD);
      if ((v & E1000_EERD_DONE) !== 0) return v >>> E1000_EERD_DATA_SHIFT;
    }
    throw new Error(`e1000: EEPROM word ${word} never completed`);
  }

  /* ---- NetDevice: transmit ---- */

  /** Descriptors free for transmit (one is always kept empty: TDT = TDH means empty). */
  private get txFree(): number {
    return (this.txClean - this.txTail - 1 + RING) % RING;
  }

  transmit(frags: readonly Uint8Array[], n: number): boolean {
    let total = 0;
    for (let f = 0; f < n; f++) total += frags[f].length;
    if (this.closed || n < 1 || n > this.maxFrags || frags[0].length < ETH_HLEN || total > MTU + ETH_HLEN) {
      this.counters.tx_dropped++;
      return true;
    }
    if (this.txFree < n) this.reclaimTx();
    if (this.txFree < n) {
      this.counters.tx_busy++;
      if (!this.txWaiting) {
        this.txWaiting = true;
        this.regs.write(E1000_IMS, E1000_ICR_TXDW); // tell us when descriptors are done
      }
      return false;
    }
    let last = n - 1;
    while (last > 0 && frags[last].length === 0) last--;
    for (let f = 0; f <= last; f++) {
      const i = this.txTail;
      this.txBuf[i].set(frags[f]);
      const at = i * E1000_DESC_SIZE;
      const gpa = this.bufGpa(i);
      this.txDv.setUint32(at, gpa >>> 0, true);
      this.txDv.setUint32(at + 4, Math.floor(gpa / 2 ** 32), true);
      this.txDv.setUint16(at + TXD_LENGTH, frags[f].length, true);
      this.txRing[at + 10] = 0;
      this.txRing[at + TXD_CMD] = E1000_TXD_CMD_RS | E1000_TXD_CMD_IFCS | (f === last ? E1000_TXD_CMD_EOP : 0);
      Atomics.store(this.txRing, at + TXD_STATUS, 0);
      this.txTail = (i + 1) % RING;
    }
    this.counters.tx_packets++;
    this.counters.tx_bytes += total;
    if (this.kickEach) {
      this.doorbell(); // one trapped TDT write for this frame alone
    } else if (!this.doorbellQueued) {
      this.doorbellQueued = true;
      queueMicrotask(this.doorbell);
    }
    return true;
  }

  /** The tail write for everything queued in this burst (xmit_more: only the last frame rings). */
  private readonly doorbell = (): void => {
    this.doorbellQueued = false;
    if (this.closed || this.txTail === this.txPublished) return;
    this.txPublished = this.txTail;
    this.counters.tx_doorbells++;
    this.regs.write(E1000_TDT, this.txTail);
  };

  /** e1000_clean_tx_irq: descriptors the device marked DD are ours again. */
  private reclaimTx(): number {
    let n = 0;
    while (this.txClean !== this.txPublished && (Atomics.load(this.txRing, this.txClean * E1000_DESC_SIZE + TXD_STATUS) & E1000_TXD_STAT_DD) !== 0) {
      this.txClean = (this.txClean + 1) % RING;
      n++;
    }
    if (n > 0 && this.txWaiting) {
      this.txWaiting = false;
      this.regs.write(E1000_IMC, E1000_ICR_TXDW);
      this.onTxRoom();
    }
    return n;
  }

  /* ---- receive ---- */

  /** e1000_clean_rx_irq: every descriptor with DD, frame by frame; then one RDT write. */
  private cleanRx(): number {
    let frames = 0;
    let len = 0;
    let multi = false;
    for (;;) {
      const i = this.rxClean;
      const at = i * E1000_DESC_SIZE;
      const status = Atomics.load(this.rxRing, at + RXD_STATUS);
      if ((status & E1000_RXD_STAT_DD) === 0) break;
      const n = Math.min(this.rxDv.getUint16(at + RXD_LENGTH, true), BUF);
      const errors = this.rxRing[at + RXD_STATUS + 1];
      const buf = this.rxBuf[i];
      if ((status & E1000_RXD_STAT_EOP) !== 0 && !multi) {
        if (errors !== 0 || n < ETH_HLEN) this.counters.rx_errors++;
        else {
          this.counters.rx_packets++;
          this.counters.rx_bytes += n;
          this.onReceive(buf.subarray(0, n));
        }
      } else {
        // A frame over several buffers: gather it (or drop it whole if it outgrows the gather buffer).
        if (len + n <= this.gather.length) this.gather.set(buf.subarray(0, n), len);
        len += n;
        multi = true;
        if ((status & E1000_RXD_STAT_EOP) !== 0) {
          if (errors !== 0 || len > this.gather.length) this.counters.rx_errors++;
          else {
            this.counters.rx_packets++;
            this.counters.rx_bytes += len;
            this.onReceive(this.gather.subarray(0, len));
          }
          len = 0;
          multi = false;
        }
      }
      // Give the buffer back: the descriptor keeps its address, status cleared.
      Atomics.store(this.rxRing, at + RXD_STATUS, 0);
      this.rxRing[at + RXD_STATUS + 1] = 0;
      this.rxTail = i;
      this.rxClean = (i + 1) % RING;
      frames++;
      if (frames === RING) break;
    }
    if (frames > 0) {
      this.counters.rx_doorbells++;
      this.regs.write(E1000_RDT, this.rxTail);
    }
    return frames;
  }

  private rxReady(): boolean {
    return (Atomics.load(this.rxRing, this.rxClean * E1000_DESC_SIZE + RXD_STATUS) & E1000_RXD_STAT_DD) !== 0;
  }

  /* ---- interrupts and the idle loop ---- */

  /** e1000_intr + e1000_clean: the causes, then the rings. */
  private readonly onIrq = (): void => {
    this.counters.interrupts++;
    if (this.closed) return;
    const icr = this.regs.read(E1000_ICR);
    if (icr === 0) {
      this.counters.spurious++;
      return;
    }
    this.service(icr);
  };

  private service(icr: number): boolean {
    let work = false;
    if (this.rxReady() || (icr & (E1000_ICR_RXT0 | E1000_ICR_RXO | E1000_ICR_RXDMT0)) !== 0) work = this.cleanRx() > 0 || work;
    if (this.txClean !== this.txPublished) work = this.reclaimTx() > 0 || work;
    if ((icr & E1000_ICR_LSC) !== 0 && (this.regs.read(E1000_STATUS) & E1000_STATUS_LU) === 0) this.k.log(`e1000 ${this.name}: link is down`);
    return work;
  }

  poll(): boolean {
    if (this.closed) return false;
    let work = false;
    if (this.rxReady()) {
      this.counters.polled++;
      work = this.cleanRx() > 0;
    }
    if (this.txWaiting && this.reclaimTx() > 0) work = true;
    return work;
  }

  /** About to sleep: acknowledge what is pending (the line goes low), then look once more. */
  prepareToSleep(): boolean {
    if (this.closed) return false;
    const icr = this.regs.read(E1000_ICR);
    return this.service(icr);
  }

  stats(): Record<string, number> {
    return { ...this.counters, traps: this.regs.traps };
  }

  /** e1000_down: receive and transmit off, interrupts masked, the line unbound, the pages back. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.doorbell();
    this.closed = true;
    this.k.events.removePoller(this);
    const r = this.regs;
    r.write(E1000_RCTL, 0);
    r.write(E1000_TCTL, 0);
    r.write(E1000_IMC, 0xffffffff);
    r.flush(); // the writes above have reached the device before its DMA targets are given back
    this.k.events.close(this.irqPort);
    for (const g of [...this.ringGfns, ...this.bufGfns]) this.k.pages.release(g);
  }

  /** Read back where the device's ring heads are (tests: a stuck ring shows here). */
  heads(): { tdh: number; rdh: number } {
    return { tdh: this.regs.read(E1000_TDH), rdh: this.regs.read(E1000_RDH) };
  }
}
