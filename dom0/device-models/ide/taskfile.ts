/*
 * The ATA task file: the command-block registers a command is written into (Features, Sector
 * Count, LBA Low/Mid/High, Device), each with its "previous content" byte for 48-bit commands,
 * and what a command reads from them: its LBA and sector count, 28-bit or 48-bit.
 *
 * QEMU: hw/ide/core.c, IDEState's feature / nsector / sector / lcyl / hcyl / select fields and
 * their hob_* copies, shifted on each write by ide_ioport_write and read back with the HOB bit by
 * ide_ioport_read (which also route each port offset to its register); ide_get_sector's LBA
 * decoding. The standard: [ATA-6] 7.x (the registers) and
 * 6.20 (48-bit addressing: each register is a two-byte FIFO, the HOB bit of Device Control
 * selecting which byte a read returns).
 */
import { ATA_CMD_BLOCK } from '../../../shared/public/hw/ata.ts';

export type PortReader = (size: 1 | 2 | 4) => number;
export type PortWriter = (value: number, size: 1 | 2 | 4) => void;

/** The registers of the command block that are the device's, not the task file's. */
export interface DeviceRegisters {
  dataRead: PortReader;
  dataWrite: PortWriter;
  error(): number;
  status(): number;
  command(op: number): void;
}

export class TaskFile {
  feature = 0; // write-only: its "previous content" is never read back, so not kept
  nsector = 0; hobNsector = 0;
  lbal = 0; hobLbal = 0;
  lbam = 0; hobLbam = 0;
  lbah = 0; hobLbah = 0;
  device = 0;

  /* A write to a 48-bit register pushes its current byte to "previous content". */
  writeNsector(v: number): void { this.hobNsector = this.nsector; this.nsector = v; }
  writeLbal(v: number): void { this.hobLbal = this.lbal; this.lbal = v; }
  writeLbam(v: number): void { this.hobLbam = this.lbam; this.lbam = v; }
  writeLbah(v: number): void { this.hobLbah = this.lbah; this.lbah = v; }

  /** A 48-bit command's starting LBA: the previous bytes are bits 24-47. */
  lba48(): number {
    return (this.hobLbah * 2 ** 40) + (this.hobLbam * 2 ** 32) + (this.hobLbal * 2 ** 24) + ((this.lbah << 16) | (this.lbam << 8) | this.lbal);
  }

  /** A 48-bit command's sector count: 0 means 65536. */
  count48(): number {
    return this.blocks16() || 65536;
  }

  /** A 28-bit command's LBA: bits 24-27 are the Device register's low nibble. */
  lba28(): number {
    return ((this.device & 0x0f) * 2 ** 24) + ((this.lbah << 16) | (this.lbam << 8) | this.lbal);
  }

  /** A 28-bit command's sector count: 0 means 256. */
  count28(): number {
    return this.nsector || 256;
  }

  /** Sector Count's two bytes as one 16-bit count (DATA SET MANAGEMENT's blocks of ranges). */
  blocks16(): number {
    return (this.hobNsector << 8) | this.nsector;
  }

  /**
   * Each command-block port's reader and writer, by offset (the table in shared/public/hw/ata.ts):
   * the task file's own registers here, with the HOB byte when `hob()` says so; Data, Error,
   * Status and Command from the device.
   */
  ports(hob: () => boolean, dev: DeviceRegisters): { rd: PortReader[]; wr: PortWriter[] } {
    const readers = {
      data: dev.dataRead,
      error: () => dev.error(),
      nsector: () => hob() ? this.hobNsector : this.nsector,
      lbal: () => hob() ? this.hobLbal : this.lbal,
      lbam: () => hob() ? this.hobLbam : this.lbam,
      lbah: () => hob() ? this.hobLbah : this.lbah,
      device: () => this.device,
      status: () => dev.status(),
    };
    const writers = {
      data: dev.dataWrite,
      features: (v: number) => { this.feature = v; },
      nsector: (v: number) => this.writeNsector(v),
      lbal: (v: number) => this.writeLbal(v),
      lbam: (v: number) => this.writeLbam(v),
      lbah: (v: number) => this.writeLbah(v),
      device: (v: number) => { this.device = v; },
      command: (v: number) => dev.command(v),
    };
    return { rd: ATA_CMD_BLOCK.map((r) => readers[r.read]), wr: ATA_CMD_BLOCK.map((r) => writers[r.write]) };
  }

  /** After a reset: the ATA signature ([ATA-6] 9.12: Sector Count and LBA Low 01h, the rest 0). */
  signature(): void {
    this.nsector = this.lbal = 1;
    this.lbam = this.lbah = this.device = 0;
  }
}
