/*
 * The guest's IDE channel, register by register: the part of an ATA driver that touches the
 * hardware. Every method here is a few port accesses, and every port access traps to the
 * hypervisor and makes one round trip to the device model in Dom0 (hypervisor/ioreq-send.ts),
 * which is the cost this driver exists to show.
 *
 * Linux: drivers/ata/libata-sff.c (ata_sff_tf_load, ata_sff_exec_command, ata_sff_check_status,
 * ata_sff_altstatus, ata_sff_data_xfer / data_xfer32, ata_bmdma_setup / _start / _stop /
 * _status / _irq_clear) with drivers/ata/ata_piix.c's port layout; the register ABI is
 * shared/public/hw/ata.ts and bmide.ts. disk.ts builds the block device on top; prd.ts builds
 * DMA descriptor tables.
 *
 * The interrupt line. In compatibility mode the primary channel interrupts on ISA IRQ 14; a
 * PVHVM guest binds that line to an event channel (EVTCHNOP_bind_pirq), and the device model's
 * XEN_DMOP_set_isa_irq_level then arrives as an event (hypervisor/hvm-irq.ts). So the driver
 * needs no configuration to find its interrupt, as a legacy IDE driver needs none: it binds
 * IRQ 14 and reads IDENTIFY for the rest. An event is a hint, not a fact: the driver takes a
 * mark before the access that will make the device interrupt, waits for an event after it, and
 * then believes the status registers, so a stale or coalesced event costs nothing but a look.
 *
 * Counting: `traps` counts every port access made here, so a caller can compare it with the
 * hypervisor's own count (host.counters(domid).traps).
 */
import type { Kernel } from '../../shared/kernel/kernel.ts';
import {
  ATA_DEVICE_OBS, ATA_LBA, ATA_PRIMARY_CMD_BASE, ATA_PRIMARY_CTL_BASE, ATA_PRIMARY_IRQ, ATA_REG, ATA_SECT_SIZE,
} from '../../shared/public/hw/ata.ts';
import { BM_CMD, BM_PRDT, BM_STATUS, PIIX_BMIDE_BASE } from '../../shared/public/hw/bmide.ts';

const DATA = ATA_PRIMARY_CMD_BASE + ATA_REG.data;
const FEATURES = ATA_PRIMARY_CMD_BASE + ATA_REG.features;
const ERROR = ATA_PRIMARY_CMD_BASE + ATA_REG.error;
const NSECTOR = ATA_PRIMARY_CMD_BASE + ATA_REG.nsector;
const LBAL = ATA_PRIMARY_CMD_BASE + ATA_REG.lbal;
const LBAM = ATA_PRIMARY_CMD_BASE + ATA_REG.lbam;
const LBAH = ATA_PRIMARY_CMD_BASE + ATA_REG.lbah;
const DEVICE = ATA_PRIMARY_CMD_BASE + ATA_REG.device;
const STATUS = ATA_PRIMARY_CMD_BASE + ATA_REG.status;
const COMMAND = ATA_PRIMARY_CMD_BASE + ATA_REG.command;
const ALTSTATUS = ATA_PRIMARY_CTL_BASE;
const DEVCTL = ATA_PRIMARY_CTL_BASE;
/** Device register for the master with LBA addressing (bits 7 and 5 obsolete, written as ones). */
export const ATA_DEVICE_LBA = ATA_DEVICE_OBS | ATA_LBA;

/** One command's task file ([ATA-6] clause 7: the registers written before the Command register). */
export interface TaskFile {
  command: number;
  lba: number;
  /** Sectors (or, for DATA SET MANAGEMENT, 512-byte blocks); 256 / 65536 are written as 0. */
  count: number;
  lba48: boolean;
  features?: number;
}

export interface IdeChannelOptions {
  /** Move PIO data with 32-bit accesses (inl/outl: 128 traps per sector instead of 256). */
  pio32?: boolean;
}

export class IdeChannel {
  /** Port accesses made (each one a trap). */
  traps = 0;
  /** Interrupt events received. */
  interrupts = 0;
  readonly irqPort: number;
  readonly pio32: boolean;
  /** The driver's interrupt handler (disk.ts's state machine), run for every event. */
  handler: (() => void) | null = null;
  private waiter: (() => void) | null = null;
  private readonly onIrq = (): void => {
    this.interrupts++;
    const w = this.waiter;
    this.waiter = null;
    w?.();
    this.handler?.();
  };

  constructor(private readonly k: Kernel, opts: IdeChannelOptions = {}) {
    this.pio32 = opts.pio32 ?? false;
    const port = k.hypercall.evtchn_bind_pirq(ATA_PRIMARY_IRQ);
    if (port < 0) throw new Error(`IDE: cannot bind IRQ ${ATA_PRIMARY_IRQ} (${port}): no device model for this guest?`);
    this.irqPort = port;
    k.events.bind(port, this.onIrq);
  }

  /* Counted port accesses. */
  outb(port: number, v: number): void { this.traps++; this.k.cpu.outb(port, v); }
  outl(port: number, v: number): void { this.traps++; this.k.cpu.outl(port, v); }
  inb(port: number): number { this.traps++; return this.k.cpu.inb(port); }

  /** Status: reading it acknowledges the interrupt ([ATA-6] 7.15). */
  status(): number { return this.inb(STATUS); }
  /** Alternate Status: the same bits, the interrupt left pending ([ATA-6] 7.3). */
  altStatus(): number { return this.inb(ALTSTATUS); }
  error(): number { return this.inb(ERROR); }
  setDevctl(v: number): void { this.outb(DEVCTL, v); }
  selectDevice(v = ATA_DEVICE_LBA): void { this.outb(DEVICE, v); }

  /** The interrupt count now: take it before the access that will make the device interrupt. */
  mark(): number {
    return this.interrupts;
  }

  /** Wait until an interrupt has arrived since `mark`. */
  async waitIrq(mark: number): Promise<void> {
    while (this.interrupts === mark) await new Promise<void>((resolve) => { this.waiter = resolve; });
  }

  /**
   * Load the task file and issue the command ([ATA-6] clause 9: write the Command Block registers,
   * then Command). A 48-bit command writes each register twice, high byte first: the device keeps
   * the first write as the register's "previous content" ([ATA-6] 48-bit Address feature set).
   * 28-bit: 6 traps; 48-bit: 10 (12 with features).
   */
  issue(tf: TaskFile): void {
    const count = tf.count & 0xffff;
    if (tf.lba48) {
      if (tf.features !== undefined) {
        this.outb(FEATURES, 0);
        this.outb(FEATURES, tf.features);
      }
      this.outb(NSECTOR, count >>> 8);
      this.outb(LBAL, Math.floor(tf.lba / 2 ** 24) & 0xff);
      this.outb(LBAM, Math.floor(tf.lba / 2 ** 32) & 0xff);
      this.outb(LBAH, Math.floor(tf.lba / 2 ** 40) & 0xff);
      this.outb(NSECTOR, count & 0xff);
      this.outb(LBAL, tf.lba & 0xff);
      this.outb(LBAM, (tf.lba >>> 8) & 0xff);
      this.outb(LBAH, (tf.lba >>> 16) & 0xff);
      this.outb(DEVICE, ATA_DEVICE_LBA);
    } else {
      if (tf.features !== undefined) this.outb(FEATURES, tf.features);
      this.outb(NSECTOR, count & 0xff);
      this.outb(LBAL, tf.lba & 0xff);
      this.outb(LBAM, (tf.lba >>> 8) & 0xff);
      this.outb(LBAH, (tf.lba >>> 16) & 0xff);
      this.outb(DEVICE, ATA_DEVICE_LBA | (Math.floor(tf.lba / 2 ** 24) & 0x0f));
    }
    this.outb(COMMAND, tf.command);
  }

  /** A command without parameters (FLUSH CACHE): select the device, write Command. 2 traps. */
  issueNonData(command: number): void {
    this.selectDevice();
    this.outb(COMMAND, command);
  }

  /** Write only the Command register (for tests of register sequences). */
  writeCommand(command: number): void {
    this.outb(COMMAND, command);
  }

  /** One 512-byte PIO block from the data register into `dst` at `off` (256 or 128 traps). */
  readBlock(dst: Uint8Array, off: number): void {
    const cpu = this.k.cpu;
    if (this.pio32) {
      for (let o = off; o < off + ATA_SECT_SIZE; o += 4) {
        const v = cpu.inl(DATA);
        dst[o] = v; dst[o + 1] = v >>> 8; dst[o + 2] = v >>> 16; dst[o + 3] = v >>> 24;
      }
      this.traps += ATA_SECT_SIZE / 4;
    } else {
      for (let o = off; o < off + ATA_SECT_SIZE; o += 2) {
        const v = cpu.inw(DATA);
        dst[o] = v; dst[o + 1] = v >>> 8;
      }
      this.traps += ATA_SECT_SIZE / 2;
    }
  }

  /** One 512-byte PIO block from `src` at `off` to the data register. */
  writeBlock(src: Uint8Array, off: number): void {
    const cpu = this.k.cpu;
    if (this.pio32) {
      for (let o = off; o < off + ATA_SECT_SIZE; o += 4) cpu.outl(DATA, (src[o] | (src[o + 1] << 8) | (src[o + 2] << 16) | (src[o + 3] << 24)) >>> 0);
      this.traps += ATA_SECT_SIZE / 4;
    } else {
      for (let o = off; o < off + ATA_SECT_SIZE; o += 2) cpu.outw(DATA, src[o] | (src[o + 1] << 8));
      this.traps += ATA_SECT_SIZE / 2;
    }
  }

  /* Bus master ([BMIDE] standard programming sequence). `cmd` is the Read/Write control bit. */
  bmSetup(prdGpa: number, cmd: number): void {
    this.outl(PIIX_BMIDE_BASE + BM_PRDT, prdGpa);
    this.outb(PIIX_BMIDE_BASE + BM_CMD, cmd);
  }
  bmWriteCommand(v: number): void { this.outb(PIIX_BMIDE_BASE + BM_CMD, v); }
  bmStatus(): number { return this.inb(PIIX_BMIDE_BASE + BM_STATUS); }
  /** Write a status value back: its Interrupt and Error bits clear, the rest stays (R/W bits as read). */
  bmWriteStatus(v: number): void { this.outb(PIIX_BMIDE_BASE + BM_STATUS, v); }

  close(): void {
    this.k.events.close(this.irqPort);
  }
}
