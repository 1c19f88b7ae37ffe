/*
 * The ATA device: task-file registers, the command engine, and PIO data transfer.
 *
 * QEMU: hw/ide/core.c (ide_ioport_read / ide_ioport_write, ide_exec_cmd and its command table
 * ide_cmd_table, ide_data_readw / writew / readl / writel, ide_sector_read / _write,
 * ide_abort_command, ide_set_irq). The standard: [ATA-6] (shared/public/hw/ata.ts has the
 * registers and bits), with the command set in commands.ts. The DMA engine is bmdma.ts; the
 * wiring to ports and the interrupt line is piix.ts.
 *
 * Emulation is synchronous: a command runs to its next data block (or to its end) inside the
 * register write that issued it, so the device is never seen BSY, and by the time the guest
 * reads Status the next step is ready. One exception: TRIM (DATA SET MANAGEMENT), whose ranges
 * may name the whole disk; once its range list is transferred the device stays BSY while the
 * discard runs a bounded piece per turn of Dom0's loop (trim.ts), then interrupts, so a guest
 * cannot hold Dom0's one thread with it (as QEMU runs it from a bottom half, ide_trim_bh_cb). What the guest sees follows the protocols of [ATA-6]
 * clause 9:
 *   PIO data-in (9.5, READ SECTORS, IDENTIFY): each 512-byte block sets DRQ and raises INTRQ;
 *     the host reads Status (clearing INTRQ), then 256 words; after the last, DRQ clears and no
 *     interrupt follows.
 *   PIO data-out (9.6, WRITE SECTORS): DRQ is set at once, with no interrupt; after each block
 *     the device interrupts (DRQ again for the next block, or not after the last).
 *   DMA (9.7): DRQ while the command waits for the bus master; the transfer runs when both the
 *     command and the engine's Start bit are there, then the device interrupts.
 *   Non-data (9.4, FLUSH CACHE): done at once, then the interrupt.
 * The data register takes 16-bit accesses, and 32-bit ones as well (as PIIX and QEMU allow: two
 * words per trap); an 8-bit access to it is a protocol error.
 *
 * Errors never throw. A guest mistake, or a host I/O failure, aborts the command (each command's
 * "Error outputs" in [ATA-6] clause 8): Status = DRDY|ERR, Error = ABRT, DRQ clear, INTRQ raised;
 * the reason is counted in stats.errors. Out-of-range sectors abort with ABRT (the commands'
 * error outputs allow ABRT "if IDNF is not set", and QEMU does the same). Stricter than the
 * standard, on purpose: a data-register access with no transfer in progress, or in the wrong
 * direction, and a command written while DRQ is set (for which [ATA-6] leaves the result
 * indeterminate), abort
 * too, so that a broken driver sees an error status rather than garbage.
 *
 * Simplifications: one device (the master); commands addressed to device 1 are ignored and its
 * Status reads 0, as for an absent device. LBA addressing only: a command without the LBA bit
 * aborts (IDENTIFY's CHS words are informational). No READ/WRITE MULTIPLE, no queuing.
 */
import {
  ATA_ABRT, ATA_BSY, ATA_CMD_DSM, ATA_CMD_ID_ATA, ATA_DEV1, ATA_DRDY, ATA_DRQ, ATA_DSM_TRIM, ATA_ERR, ATA_HOB,
  ATA_LBA, ATA_NIEN, ATA_SECT_SIZE, ATA_SRST,
} from '../../../shared/public/hw/ata.ts';
import type { BusMaster, DmaSink } from './bmdma.ts';
import type { RawImage } from '../../lib/raw-image.ts';
import { COMMANDS } from './commands.ts';
import type { IoDevice } from '../xen-hvm.ts';
import { TaskFile, type PortReader, type PortWriter } from './taskfile.ts';
import { TrimJob, trimRanges } from './trim.ts';

const XFER_NONE = 0;
const XFER_PIO_IN = 1;
const XFER_PIO_OUT = 2;
const XFER_DMA_IN = 3;
const XFER_DMA_OUT = 4;

/** What the device needs from the controller around it (piix.ts). */
export interface IdeBus {
  /** The device's INTRQ output changed (nIEN already applied). */
  setIntrq(level: boolean): void;
  /** The bus master (bmdma.ts) for DMA commands. */
  readonly bm: BusMaster;
}

export interface AtaStats {
  commands: number;
  /** Commands accepted, by their [ATA-6] name. */
  byCommand: Record<string, number>;
  sectorsRead: number;
  sectorsWritten: number;
  flushes: number;
  trimmedSectors: number;
  errors: Record<string, number>;
}

export class AtaDevice implements IoDevice, DmaSink {
  readonly stats: AtaStats = { commands: 0, byCommand: {}, sectorsRead: 0, sectorsWritten: 0, flushes: 0, trimmedSectors: 0, errors: {} };
  /* The task file: current and "previous content" (HOB) bytes of each 48-bit register (taskfile.ts). */
  private readonly tf = new TaskFile();
  private status = ATA_DRDY;
  private error = 0x01; // diagnostic code 01h after power-on or reset: no error
  private devctl = 0;
  private intrq = false;
  private line = false;
  /* The command in progress. */
  private xfer = XFER_NONE;
  private lba = 0;
  private remaining = 0;
  private identifying = false;
  private dsm = false;
  private dmaBytes = 0;
  private readonly buf = new Uint8Array(ATA_SECT_SIZE);
  private pos = 0;
  private readonly dsmBuf: Uint8Array;
  /** The TRIM being carried out, a piece per turn; cleared by anything that ends the command. */
  private trimJob: TrimJob | null = null;
  /** Command-block registers, by offset: built once from the table in shared/public/hw/ata.ts (taskfile.ts). */
  private readonly rd: PortReader[];
  private readonly wr: PortWriter[];
  /** The control block (one port: Alternate Status / Device Control). */
  readonly control: IoDevice = {
    read: () => (this.tf.device & ATA_DEV1) !== 0 ? 0 : this.status,
    write: (_off, _size, v) => this.writeDevctl(v),
  };

  constructor(private readonly disk: RawImage, private readonly bus: IdeBus, private readonly identify: Uint8Array, readonly trimBlocks: number) {
    this.dsmBuf = new Uint8Array(Math.max(1, trimBlocks) * ATA_SECT_SIZE);
    ({ rd: this.rd, wr: this.wr } = this.tf.ports(() => this.hob(), {
      dataRead: (size) => this.dataRead(size), dataWrite: (v, size) => this.dataWrite(v, size),
      error: () => this.error, status: () => this.readStatus(), command: (v) => this.command(v),
    }));
  }

  /** A command-block access. Wider accesses to the byte registers are successive byte ports. */
  read(offset: number, size: 1 | 2 | 4): number {
    if (offset === 0) return this.rd[0](size);
    let v = 0;
    for (let i = size - 1; i >= 0; i--) v = (v << 8) | (this.rd[offset + i](1) & 0xff);
    return v >>> 0;
  }

  write(offset: number, size: 1 | 2 | 4, value: number): void {
    // [ATA-6] 7.8 (Device Control): a write to any command-block register clears HOB.
    this.devctl &= ~ATA_HOB;
    if (offset === 0) return this.wr[0](value, size);
    for (let i = 0; i < size; i++) this.wr[offset + i]((value >>> (8 * i)) & 0xff, 1);
  }

  private hob(): boolean {
    return (this.devctl & ATA_HOB) !== 0;
  }

  /** Status, read from the command block: also acknowledges the interrupt ([ATA-6] 7.15). */
  private readStatus(): number {
    if ((this.tf.device & ATA_DEV1) !== 0) return 0;
    this.setIntrq(false);
    return this.status;
  }

  private setIntrq(level: boolean): void {
    this.intrq = level;
    const line = level && (this.devctl & ATA_NIEN) === 0;
    if (line !== this.line) {
      this.line = line;
      this.bus.setIntrq(line);
    }
  }

  /** Device Control: nIEN gates INTRQ; SRST high resets, SRST low ends the reset ([ATA-6] 9.2, software reset protocol). */
  private writeDevctl(v: number): void {
    const wasReset = (this.devctl & ATA_SRST) !== 0;
    this.devctl = v;
    if ((v & ATA_SRST) !== 0) {
      this.xfer = XFER_NONE;
      this.trimJob = null;
      this.status = ATA_BSY;
      this.setIntrq(false);
    } else if (wasReset) {
      this.status = ATA_DRDY;
      this.error = 0x01;
      this.tf.signature();
    }
    this.setIntrq(this.intrq);
  }

  /** The Command register: refuse while a transfer is in progress, else run it. */
  private command(op: number): void {
    if ((this.tf.device & ATA_DEV1) !== 0) return; // no device 1: nobody answers
    if ((this.devctl & ATA_SRST) !== 0) return; // in reset: the device takes no commands
    if ((this.status & (ATA_BSY | ATA_DRQ)) !== 0) return this.abort('command-during-transfer');
    const cmd = COMMANDS.get(op);
    if (cmd === undefined) return this.abort('unknown-command');
    this.stats.commands++;
    this.stats.byCommand[cmd.name] = (this.stats.byCommand[cmd.name] ?? 0) + 1;
    this.error = 0;
    this.identifying = op === ATA_CMD_ID_ATA;
    this.dsm = op === ATA_CMD_DSM;
    if (this.identifying) return this.startPioIn(0, 1);
    if (cmd.proto === 'non-data') return this.flush();
    if (this.dsm) return this.startDsm();
    if ((this.tf.device & ATA_LBA) === 0) return this.abort('chs-addressing');
    const lba = cmd.lba48 ? this.tf.lba48() : this.tf.lba28();
    const count = cmd.lba48 ? this.tf.count48() : this.tf.count28();
    if (lba + count > this.disk.sectors) return this.abort('out-of-range');
    const writes = cmd.proto === 'pio-out' || cmd.proto === 'dma-out';
    if (writes && this.disk.readOnly) return this.abort('read-only');
    if (cmd.proto === 'pio-in') return this.startPioIn(lba, count);
    if (cmd.proto === 'pio-out') return this.startPioOut(lba, count);
    this.startDma(cmd.proto === 'dma-in' ? XFER_DMA_IN : XFER_DMA_OUT, lba, count * ATA_SECT_SIZE);
  }

  /** The command failed (see the header): ERR + ABRT, DRQ clear, interrupt. */
  private abort(reason: string): void {
    this.stats.errors[reason] = (this.stats.errors[reason] ?? 0) + 1;
    this.xfer = XFER_NONE;
    this.trimJob = null;
    this.status = ATA_DRDY | ATA_ERR;
    this.error = ATA_ABRT;
    this.setIntrq(true);
  }

  private complete(): void {
    this.xfer = XFER_NONE;
    this.status = ATA_DRDY;
    this.setIntrq(true);
  }

  private flush(): void {
    try {
      this.disk.flush();
    } catch {
      return this.abort('host-io');
    }
    this.stats.flushes++;
    this.complete();
  }

  /* PIO data-in: one block per DRQ, an interrupt per block. */
  private startPioIn(lba: number, count: number): void {
    this.xfer = XFER_PIO_IN;
    this.lba = lba;
    this.remaining = count;
    this.loadBlock();
  }

  private loadBlock(): void {
    if (this.identifying) {
      this.buf.set(this.identify);
    } else {
      try {
        this.disk.readSector(this.lba, this.buf);
      } catch {
        return this.abort('host-io');
      }
      this.stats.sectorsRead++;
    }
    this.pos = 0;
    this.status = ATA_DRDY | ATA_DRQ;
    this.setIntrq(true);
  }

  /* PIO data-out: DRQ at once; an interrupt after each block. */
  private startPioOut(lba: number, count: number): void {
    this.xfer = XFER_PIO_OUT;
    this.lba = lba;
    this.remaining = count;
    this.pos = 0;
    this.status = ATA_DRDY | ATA_DRQ;
  }

  private dataRead(size: 1 | 2 | 4): number {
    if (!this.dataAccessOk(XFER_PIO_IN, size)) return size === 4 ? 0xffff_ffff : 0xffff;
    const b = this.buf;
    const p = this.pos;
    const v = size === 2 ? b[p] | (b[p + 1] << 8) : (b[p] | (b[p + 1] << 8) | (b[p + 2] << 16) | (b[p + 3] << 24)) >>> 0;
    this.pos = p + size;
    if (this.pos === ATA_SECT_SIZE) {
      this.lba++;
      if (--this.remaining > 0) {
        this.loadBlock();
      } else {
        this.xfer = XFER_NONE;
        this.status = ATA_DRDY;
      }
    }
    return v;
  }

  private dataWrite(v: number, size: 1 | 2 | 4): void {
    if (!this.dataAccessOk(XFER_PIO_OUT, size)) return;
    const b = this.buf;
    const p = this.pos;
    for (let i = 0; i < size; i++) b[p + i] = (v >>> (8 * i)) & 0xff;
    this.pos = p + size;
    if (this.pos < ATA_SECT_SIZE) return;
    try {
      this.disk.writeSector(this.lba, b);
    } catch {
      return this.abort('host-io');
    }
    this.stats.sectorsWritten++;
    this.lba++;
    this.pos = 0;
    if (--this.remaining > 0) {
      this.status = ATA_DRDY | ATA_DRQ;
      this.setIntrq(true);
    } else {
      this.complete();
    }
  }

  /** The data register is usable only during a PIO transfer in that direction, 16 or 32 bits wide. */
  private dataAccessOk(want: number, size: 1 | 2 | 4): boolean {
    if (this.xfer !== want || (this.status & ATA_DRQ) === 0) {
      this.abort(this.xfer === XFER_NONE ? 'data-without-drq' : 'data-wrong-direction');
      return false;
    }
    if (size === 1 || this.pos + size > ATA_SECT_SIZE) {
      this.abort('data-access-width');
      return false;
    }
    return true;
  }

  /* DMA: wait for the bus master, then move everything at once (bmdma.ts). */
  private startDma(xfer: number, lba: number, bytes: number): void {
    this.xfer = xfer;
    this.lba = lba;
    this.dmaBytes = bytes;
    this.status = ATA_DRDY | ATA_DRQ;
    if (this.bus.bm.started) this.runDma();
  }

  /** The bus master's Start bit went up (piix.ts routes BusMaster's onStart here). */
  dmaStarted(): void {
    if (this.xfer === XFER_DMA_IN || this.xfer === XFER_DMA_OUT) this.runDma();
  }

  private runDma(): void {
    const bm = this.bus.bm;
    const bad = bm.prepare(this.dmaBytes, this.xfer === XFER_DMA_IN);
    if (bad !== null) {
      bm.finish(bad);
      return this.abort(bad);
    }
    let moved: boolean;
    try {
      moved = bm.run(this);
    } catch {
      bm.finish(null);
      return this.abort('host-io');
    }
    if (!moved) {
      bm.finish('prd-not-guest-ram');
      return this.abort('prd-not-guest-ram');
    }
    bm.finish(null);
    const sectors = this.dmaBytes / ATA_SECT_SIZE;
    if (this.dsm) {
      const ranges = trimRanges(this.dsmBuf, this.dmaBytes, this.disk.sectors);
      if (ranges === 'out-of-range') return this.abort(ranges);
      this.xfer = XFER_NONE;
      this.status = ATA_BSY;
      const job = new TrimJob(this.disk, ranges);
      this.trimJob = job;
      return job.run(() => this.trimJob === job, () => this.trimDone(job), () => this.abort('host-io'));
    } else if (this.xfer === XFER_DMA_IN) {
      this.stats.sectorsRead += sectors;
    } else {
      this.stats.sectorsWritten += sectors;
    }
    this.complete();
  }

  /** The TRIM in progress is done (a piece per turn: trim.ts), unless the command was ended meanwhile. */
  private trimDone(job: TrimJob): void {
    this.trimJob = null;
    this.stats.trimmedSectors += job.sectors;
    this.complete();
  }

  /** The device model is going away: a TRIM in progress stops where it is. */
  stop(): void {
    this.trimJob = null;
  }

  /** DmaSink: one region of the transfer, `offset` bytes into it. */
  dmaRegion(offset: number, iov: Uint8Array[]): void {
    const at = this.lba * ATA_SECT_SIZE + offset;
    if (this.dsm) {
      let o = offset;
      for (const v of iov) { this.dsmBuf.set(v, o); o += v.length; }
    } else if (this.xfer === XFER_DMA_IN) {
      this.disk.readvAt(at, iov);
    } else {
      this.disk.writevAt(at, iov);
    }
  }

  /** DATA SET MANAGEMENT: TRIM only, up to trimBlocks blocks of ranges, DMA data-out. */
  private startDsm(): void {
    const blocks = this.tf.blocks16();
    if (this.trimBlocks === 0 || (this.tf.feature & ATA_DSM_TRIM) === 0) return this.abort('dsm-not-trim');
    if (blocks === 0 || blocks > this.trimBlocks) return this.abort('dsm-too-many-blocks');
    if (this.disk.readOnly) return this.abort('read-only');
    this.startDma(XFER_DMA_OUT, 0, blocks * ATA_SECT_SIZE);
  }
}
