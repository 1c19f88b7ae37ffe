/*
 * The e1000's register file: what a read or write of BAR0 does, the interrupt cause and mask
 * registers, the EEPROM the driver reads its MAC from, and the statistics counters.
 *
 * QEMU: hw/net/e1000.c (mac_reg[], macreg_readops / macreg_writeops, set_interrupt_cause, set_ics,
 * mac_icr_read, set_ims / set_imc, set_rdt, set_tctl, set_dlen, set_16bit, flash_eerd_read,
 * e1000_reset_hold) and e1000x_common.c (e1000x_core_prepare_eeprom, e1000x_reset_mac_addr).
 * The register ABI is shared/public/hw/e1000.ts; the rings are tx.ts and rx.ts.
 *
 * Interrupts: the line's level is (ICR & IMS) ≠ 0, recomputed whenever either changes
 * (set_interrupt_cause); reading ICR returns it and clears it, which lowers the line; the model
 * hands level changes to its ioreq server as ISA IRQ changes (../xen-hvm.ts setIsaIrq), which the
 * hypervisor turns into an event on a rising edge. QEMU's interrupt mitigation (ITR, RADV, TADV:
 * a timer holding the line back at least 500 × 256 ns) is not modelled: it would be a delay built
 * into the measurement; ITR and the others are stored and read back, nothing more.
 *
 * What a guest can get wrong here costs it, not Dom0: accesses that are not 4-byte aligned
 * 4-byte accesses are ignored (read as 0) and counted; writes to unknown or read-only registers
 * go nowhere, as in QEMU. Ring mistakes are tx.ts's and rx.ts's to count.
 */
import {
  E1000_CTRL, E1000_CTRL_RST, E1000_CTRL_SLU, E1000_DEV_ID_82540EM, E1000_DLEN_MASK, E1000_EECD, E1000_EECD_GNT,
  E1000_EECD_PRES, E1000_EERD, E1000_EERD_ADDR_SHIFT, E1000_EERD_DATA_SHIFT, E1000_EERD_DONE, E1000_EERD_START,
  E1000_GORCL, E1000_GOTCL, E1000_GPRC, E1000_GPTC, E1000_ICR, E1000_ICS, E1000_IMC, E1000_IMS, E1000_ITR, E1000_MDIC,
  E1000_MMIO_SIZE, E1000_MPC, E1000_MTA, E1000_MTA_WORDS, E1000_RADV, E1000_RAH0, E1000_RAH_AV, E1000_RAL0, E1000_RCTL,
  E1000_RDBAH, E1000_RDBAL, E1000_RDH, E1000_RDLEN, E1000_RDT, E1000_RDTR, E1000_RNBC, E1000_ROC, E1000_STATUS,
  E1000_STATUS_FD, E1000_STATUS_LU, E1000_STATUS_SPEED_1000, E1000_TADV, E1000_TCTL, E1000_TDBAH, E1000_TDBAL, E1000_TDH,
  E1000_TDLEN, E1000_TDT, E1000_TIDV, E1000_TIPG, E1000_TPR, E1000_TPT, E1000_VENDOR_ID, EEPROM_CHECKSUM_REG, EEPROM_SUM,
  EEPROM_WORDS,
} from '../../../shared/public/hw/e1000.ts';
import type { IoDevice } from '../xen-hvm.ts';

/** What the guest did wrong, and what the device did, counted (the model's own statistics). */
export interface E1000Stats {
  mmio_reads: number; mmio_writes: number; bad_access: number;
  tx_frames: number; tx_bytes: number; tx_descs: number; tx_ring_errors: number; tx_dma_errors: number;
  tx_unsupported: number; tx_dropped: number;
  rx_frames: number; rx_bytes: number; rx_filtered: number; rx_oversize: number; rx_disabled: number;
  rx_no_buffers: number; rx_backlog_drops: number; rx_ring_errors: number; rx_dma_errors: number;
  irq_raises: number; resets: number;
}

/** A register's state lives in one word of `mac`, indexed by offset / 4, as QEMU's mac_reg[]. */
const R = (off: number) => off >> 2;

const STATUS_INIT = 0x80000000 | E1000_STATUS_SPEED_1000 | E1000_STATUS_FD | E1000_STATUS_LU;
/* Statistics cleared by reading them (QEMU mac_read_clr4 / clr8: the high half clears both). */
const CLEAR_ON_READ = [E1000_GPRC, E1000_GPTC, E1000_TPR, E1000_TPT, E1000_ROC];
const CLEAR_PAIR_ON_READ = [E1000_GORCL + 4, E1000_GOTCL + 4];
/* Registers a guest may write as plain storage (QEMU's putreg list and set_16bit ones). */
const PLAIN = [E1000_TDBAL, E1000_TDBAH, E1000_RDBAL, E1000_RDBAH, E1000_TIPG];
const LOW16 = [E1000_TDH, E1000_RDH, E1000_RDTR, E1000_RADV, E1000_TADV, E1000_ITR, E1000_TIDV];

export interface E1000Hooks {
  /** The interrupt line's level changed. */
  setIrq(level: boolean): void;
  /** TDT or TCTL was written: run the transmit ring (tx.ts). */
  startXmit(): void;
  /** RDT was written: there may be buffers for frames waiting (rx.ts). */
  rxBuffersPosted(): void;
}

export class E1000Core implements IoDevice {
  /** mac_reg[]: every register of BAR0 as a word. */
  readonly mac = new Uint32Array(E1000_MMIO_SIZE >> 2);
  readonly eeprom = new Uint16Array(EEPROM_WORDS);
  readonly stats: E1000Stats = {
    mmio_reads: 0, mmio_writes: 0, bad_access: 0,
    tx_frames: 0, tx_bytes: 0, tx_descs: 0, tx_ring_errors: 0, tx_dma_errors: 0, tx_unsupported: 0, tx_dropped: 0,
    rx_frames: 0, rx_bytes: 0, rx_filtered: 0, rx_oversize: 0, rx_disabled: 0, rx_no_buffers: 0, rx_backlog_drops: 0,
    rx_ring_errors: 0, rx_dma_errors: 0, irq_raises: 0, resets: 0,
  };
  private irqLevel = false;
  hooks: E1000Hooks | null = null;

  constructor(readonly macAddr: Uint8Array) {
    // e1000x_core_prepare_eeprom: the MAC in words 0-2, the device id, and a checksum word.
    for (let i = 0; i < 3; i++) this.eeprom[i] = macAddr[2 * i] | (macAddr[2 * i + 1] << 8);
    this.eeprom[11] = this.eeprom[13] = E1000_DEV_ID_82540EM;
    this.eeprom[12] = this.eeprom[14] = E1000_VENDOR_ID;
    let sum = 0;
    for (let i = 0; i < EEPROM_CHECKSUM_REG; i++) sum += this.eeprom[i];
    this.eeprom[EEPROM_CHECKSUM_REG] = (EEPROM_SUM - sum) & 0xffff;
    this.reset();
  }

  /** e1000_reset_hold: registers to their power-on values, the MAC back in RAL0/RAH0. */
  reset(): void {
    this.mac.fill(0);
    this.mac[R(E1000_CTRL)] = E1000_CTRL_SLU;
    this.mac[R(E1000_STATUS)] = STATUS_INIT;
    const m = this.macAddr;
    this.mac[R(E1000_RAL0)] = (m[0] | (m[1] << 8) | (m[2] << 16) | (m[3] << 24)) >>> 0;
    this.mac[R(E1000_RAH0)] = (m[4] | (m[5] << 8) | E1000_RAH_AV) >>> 0;
    this.updateIrq();
  }

  reg(off: number): number {
    return this.mac[off >> 2];
  }

  /* ---- IoDevice: BAR0 accesses from the ioreq server (or drained from the buffered page) ---- */

  read(offset: number, size: 1 | 2 | 4): number {
    this.stats.mmio_reads++;
    if (size !== 4 || (offset & 3) !== 0) {
      this.stats.bad_access++;
      return 0;
    }
    const i = offset >> 2;
    switch (offset) {
      case E1000_ICR: {
        // mac_icr_read: return the causes and clear them, which lowers the line.
        const v = this.mac[i];
        this.mac[i] = 0;
        this.mac[R(E1000_ICS)] = 0;
        this.updateIrq();
        return v;
      }
      case E1000_EECD:
        return E1000_EECD_PRES | E1000_EECD_GNT; // EERD only; the bit-banged Microwire interface is not modelled
      case E1000_EERD: {
        const v = this.mac[i];
        if ((v & E1000_EERD_START) === 0) return v;
        const r = v & ~E1000_EERD_START;
        const index = r >>> E1000_EERD_ADDR_SHIFT;
        if (index > EEPROM_CHECKSUM_REG) return (E1000_EERD_DONE | r) >>> 0;
        return ((this.eeprom[index] << E1000_EERD_DATA_SHIFT) | E1000_EERD_DONE | r) >>> 0;
      }
    }
    const v = this.mac[i];
    if (CLEAR_ON_READ.includes(offset)) this.mac[i] = 0;
    else if (CLEAR_PAIR_ON_READ.includes(offset)) { this.mac[i] = 0; this.mac[i - 1] = 0; }
    return v;
  }

  write(offset: number, size: 1 | 2 | 4, value: number): void {
    this.stats.mmio_writes++;
    if (size !== 4 || (offset & 3) !== 0) {
      this.stats.bad_access++;
      return;
    }
    const i = offset >> 2;
    const v = value >>> 0;
    switch (offset) {
      case E1000_CTRL:
        if ((v & E1000_CTRL_RST) !== 0) {
          this.stats.resets++;
          this.reset();
        } else {
          this.mac[i] = v;
        }
        return;
      case E1000_EERD: this.mac[i] = v; return;
      case E1000_MDIC: this.mac[i] = v | 0x10000000; return; // MDIC_READY at once; the PHY is not modelled
      case E1000_ICR: this.setCause(this.mac[i] & ~v); return;   // set_icr: write 1 to clear
      case E1000_ICS: this.setCause(this.mac[i] | v); return;    // set_ics
      case E1000_IMS: this.mac[R(E1000_IMS)] |= v; this.updateIrq(); return;
      case E1000_IMC: this.mac[R(E1000_IMS)] &= ~v; this.updateIrq(); return;
      case E1000_RCTL: this.mac[i] = v; this.hooks?.rxBuffersPosted(); return;
      case E1000_RDLEN: case E1000_TDLEN: this.mac[i] = v & E1000_DLEN_MASK; return;
      case E1000_RDT:
        this.mac[i] = v & 0xffff;
        this.hooks?.rxBuffersPosted();
        return;
      case E1000_TDT:
      case E1000_TCTL:
        // set_tctl: TDT keeps 16 bits, and either write runs the transmit ring.
        this.mac[i] = offset === E1000_TDT ? v & 0xffff : v;
        this.hooks?.startXmit();
        return;
    }
    if (PLAIN.includes(offset) || (offset >= E1000_RAL0 && offset < E1000_RAL0 + 32 * 4)
      || (offset >= E1000_MTA && offset < E1000_MTA + E1000_MTA_WORDS * 4)) {
      this.mac[i] = v;
    } else if (LOW16.includes(offset)) {
      this.mac[i] = v & 0xffff;
    }
    // Anything else (STATUS, statistics, unknown offsets) is read-only or absent: the write goes nowhere.
  }

  /* ---- interrupts ---- */

  /** set_ics from the rings: add causes. */
  raise(cause: number): void {
    this.setCause(this.mac[R(E1000_ICR)] | cause);
  }

  /** set_interrupt_cause: ICR (and ICS, which reads the same) = val; the line follows ICR & IMS. */
  private setCause(val: number): void {
    this.mac[R(E1000_ICR)] = val >>> 0;
    this.mac[R(E1000_ICS)] = val >>> 0;
    this.updateIrq();
  }

  private updateIrq(): void {
    const level = (this.mac[R(E1000_ICR)] & this.mac[R(E1000_IMS)]) !== 0;
    if (level === this.irqLevel) return;
    this.irqLevel = level;
    if (level) this.stats.irq_raises++;
    this.hooks?.setIrq(level);
  }

  /* ---- statistics registers (e1000x_inc_reg_if_not_full, e1000x_grow_8reg_if_not_full) ---- */

  inc(off: number, by = 1): void {
    const i = off >> 2;
    if (this.mac[i] !== 0xffffffff) this.mac[i] = Math.min(0xffffffff, this.mac[i] + by);
  }

  grow8(offLow: number, by: number): void {
    const i = offLow >> 2;
    const sum = this.mac[i] + by;
    if (this.mac[i + 1] === 0xffffffff && sum > 0xffffffff) return;
    this.mac[i] = sum >>> 0;
    if (sum > 0xffffffff) this.mac[i + 1]++;
  }

  /** Frames missed for want of a descriptor (e1000_receiver_overrun's counters). */
  missed(): void {
    this.inc(E1000_RNBC);
    this.inc(E1000_MPC);
  }

  get linkUp(): boolean {
    return (this.mac[R(E1000_STATUS)] & E1000_STATUS_LU) !== 0;
  }
}

