/*
 * Bus-master IDE DMA: the engine that moves a DMA command's data between the disk and guest
 * memory, following a table of Physical Region Descriptors the guest built in its own RAM.
 *
 * QEMU: hw/ide/pci.c (bmdma_cmd_writeb, bmdma_addr_ioport_ops, bmdma_prepare_buf walking the
 * PRD table, ide_dma_cb). The standard: [BMIDE] "Programming Interface for Bus Master IDE
 * Controller" rev 1.0 (registers and PRD layout in shared/public/hw/bmide.ts).
 *
 * The guest's memory is reached through the mapcache (foreign mappings of its frames, made by
 * the hypervisor on Dom0's request), never by machine address: a PRD address is a guest-physical
 * address, and a region the guest has no RAM at is a bus error, not a crash.
 *
 * A DMA runs in two passes, as Firecracker's virtio devices parse a chain before executing it:
 *   1. prepare(): walk the table, copying each entry out of guest memory once into private
 *      arrays, and check the copy: a dword-aligned table (bits 1:0 of the address register are
 *      reserved, and ignored), even address and count, no region crossing a 64 KiB boundary
 *      ([BMIDE] "Physical Region Descriptor"), every page of every region present in the guest,
 *      an EOT before the table would cross its own 64 KiB boundary, and a total equal to the
 *      command's byte count;
 *   2. run(): hand each region, as views of the guest's pages, to the device's disk I/O.
 * So a malformed table moves no data at all, in either direction.
 *
 * Where ringvisor is stricter than the hardware, on purpose (a driver that does this is broken,
 * and a learner should see it rather than a silent partial transfer):
 *   - [BMIDE]'s table of Interrupt/Active outcomes lets the table be longer than the transfer
 *     (it ends with Active=1, Interrupt=1); here that is an error like any other mismatch;
 *   - a table shorter than the transfer ends, per the same table, with Active=0 and Interrupt=0,
 *     leaving the host to time out; here the command fails at once: Error set, Active clear, and
 *     the device aborts the command and interrupts, so a driver without timers learns of it.
 * Every failure sets the Error bit (status bit 1), clears Active, and the ATA engine (core.ts)
 * reports ERR with ABRT; the reason is counted in stats.errors.
 */
import {
  BM_CMD, BM_CMD_START, BM_CMD_WRITE, BM_PRDT, BM_REGS_BYTES, BM_STATUS, BM_STATUS_ACTIVE, BM_STATUS_DRV0_DMA,
  BM_STATUS_DRV1_DMA, BM_STATUS_ERROR, BM_STATUS_INTR, PRD_BOUNDARY, PRD_BYTES, PRD_EOT, PRD_MAX_ENTRIES,
  PRD_MAX_REGION,
} from '../../../shared/public/hw/bmide.ts';
import { PAGE_SHIFT, PAGE_SIZE } from '../../../shared/public/xen.ts';
import type { MapCache } from '../mapcache.ts';
import type { IoDevice } from '../xen-hvm.ts';

/** Why a DMA was refused (stats keys; the guest sees only the status bits). */
export type DmaError =
  | 'direction'            // the Read/Write control bit disagrees with the command
  | 'prd-no-eot'           // no end-of-table entry before the table would cross 64 KiB
  | 'prd-misaligned'       // odd region address or byte count
  | 'prd-crosses-64k'      // a region crossing a 64 KiB boundary
  | 'prd-too-short'        // the regions hold less than the command transfers
  | 'prd-too-long'         // ... or more
  | 'prd-not-guest-ram';   // the table or a region lies where the guest has no RAM

/** Where run() hands the regions: byte `offset` into the transfer, the region as page views. */
export interface DmaSink {
  dmaRegion(offset: number, iov: Uint8Array[]): void;
}

export interface BusMasterStats {
  starts: number;
  transfers: number;
  bytes: number;
  regions: number;
  errors: Partial<Record<DmaError, number>>;
}

const STATUS_RW = BM_STATUS_DRV0_DMA | BM_STATUS_DRV1_DMA; // read/write bits; Active and Simplex are read-only
const STATUS_W1C = BM_STATUS_ERROR | BM_STATUS_INTR;

export class BusMaster implements IoDevice {
  readonly stats: BusMasterStats = { starts: 0, transfers: 0, bytes: 0, regions: 0, errors: {} };
  /** The 8 register bytes of the primary channel, as the guest sees them. */
  private readonly regs = new Uint8Array(BM_REGS_BYTES);
  /** The validated copy of the table (prepare()), used by run(). */
  private readonly prdAddr = new Uint32Array(PRD_MAX_ENTRIES);
  private readonly prdLen = new Uint32Array(PRD_MAX_ENTRIES);
  private nprd = 0;
  private readonly iov: Uint8Array[] = [];

  /** `onStart` is called when the guest sets Start: the device may have a DMA command waiting. */
  constructor(private readonly mem: MapCache, private readonly onStart: () => void) {
    this.regs[BM_STATUS] = BM_STATUS_DRV0_DMA; // firmware marks drive 0 DMA-capable
  }

  get started(): boolean {
    return (this.regs[BM_CMD] & BM_CMD_START) !== 0;
  }

  /** Reads of 1, 2 or 4 bytes at any offset: the registers are a little-endian byte file. */
  read(offset: number, size: 1 | 2 | 4): number {
    let v = 0;
    for (let i = size - 1; i >= 0; i--) v = (v << 8) | this.regs[offset + i];
    return v >>> 0;
  }

  write(offset: number, size: 1 | 2 | 4, value: number): void {
    for (let i = 0; i < size; i++) this.writeByte(offset + i, (value >>> (8 * i)) & 0xff);
  }

  private writeByte(off: number, v: number): void {
    const r = this.regs;
    if (off === BM_CMD) {
      const was = r[BM_CMD];
      r[BM_CMD] = v & (BM_CMD_START | BM_CMD_WRITE);
      if ((was & BM_CMD_START) === 0 && (v & BM_CMD_START) !== 0) {
        this.stats.starts++;
        r[BM_STATUS] |= BM_STATUS_ACTIVE;
        this.onStart();
      } else if ((was & BM_CMD_START) !== 0 && (v & BM_CMD_START) === 0) {
        r[BM_STATUS] &= ~BM_STATUS_ACTIVE; // [BMIDE] Command register: stopping the engine discards its state
      }
    } else if (off === BM_STATUS) {
      r[BM_STATUS] = (r[BM_STATUS] & ~STATUS_RW & ~(v & STATUS_W1C)) | (v & STATUS_RW);
    } else if (off >= BM_PRDT && off < BM_PRDT + 4) {
      r[off] = off === BM_PRDT ? v & ~3 : v; // bits 1:0 reserved: the table is dword aligned
    }
  }

  /** The device raised its interrupt line ([BMIDE] status bit 2 follows the rising edge). */
  interrupt(): void {
    this.regs[BM_STATUS] |= BM_STATUS_INTR;
  }

  /** The transfer is over: Active clears; Error too if it failed ([BMIDE] Status register). */
  finish(error: DmaError | null): void {
    this.regs[BM_STATUS] &= ~BM_STATUS_ACTIVE;
    if (error !== null) {
      this.regs[BM_STATUS] |= BM_STATUS_ERROR;
      this.stats.errors[error] = (this.stats.errors[error] ?? 0) + 1;
    }
  }

  /** Pass 1 (see the header): copy and check the table for `bytes` moved `toMemory` or from it. */
  prepare(bytes: number, toMemory: boolean): DmaError | null {
    if (((this.regs[BM_CMD] & BM_CMD_WRITE) !== 0) !== toMemory) return 'direction';
    let at = this.read(BM_PRDT, 4);
    let total = 0;
    let n = 0;
    for (;;) {
      if (n > 0 && at % PRD_BOUNDARY === 0) return 'prd-no-eot';
      const page = this.mem.page(at >>> PAGE_SHIFT); // an 8-byte entry never straddles a page: `at` is 8-aligned
      if (page === null) return 'prd-not-guest-ram';
      const o = at & (PAGE_SIZE - 1);
      const addr = (page[o] | (page[o + 1] << 8) | (page[o + 2] << 16) | (page[o + 3] << 24)) >>> 0;
      const count = (page[o + 4] | (page[o + 5] << 8)) || PRD_MAX_REGION;
      const flags = page[o + 6] | (page[o + 7] << 8);
      if ((addr & 1) !== 0 || (count & 1) !== 0) return 'prd-misaligned';
      if ((addr % PRD_BOUNDARY) + count > PRD_BOUNDARY) return 'prd-crosses-64k';
      for (let gfn = addr >>> PAGE_SHIFT; gfn <= (addr + count - 1) >>> PAGE_SHIFT; gfn++) {
        if (this.mem.page(gfn) === null) return 'prd-not-guest-ram';
      }
      this.prdAddr[n] = addr;
      this.prdLen[n] = count;
      n++;
      total += count;
      if (total > bytes) return 'prd-too-long';
      at += PRD_BYTES;
      if ((flags & PRD_EOT) !== 0) break;
    }
    if (total < bytes) return 'prd-too-short';
    this.nprd = n;
    return null;
  }

  /**
   * Pass 2: each region of the checked table, as views of guest pages (a whole-page view where
   * the region covers the page, else a sub-view), to `sink`. False if a page vanished meanwhile.
   */
  run(sink: DmaSink): boolean {
    let offset = 0;
    try {
      for (let i = 0; i < this.nprd; i++) {
        // Pin just this region's buckets: a region is at most 64 KiB, so at most two.
        this.mem.lock();
        this.iov.length = 0;
        let a = this.prdAddr[i];
        let left = this.prdLen[i];
        while (left > 0) {
          const page = this.mem.page(a >>> PAGE_SHIFT);
          if (page === null) return false;
          const off = a & (PAGE_SIZE - 1);
          const len = Math.min(PAGE_SIZE - off, left);
          this.iov.push(len === PAGE_SIZE ? page : page.subarray(off, off + len));
          a += len;
          left -= len;
        }
        sink.dmaRegion(offset, this.iov);
        offset += this.prdLen[i];
      }
    } finally {
      this.mem.unlock();
    }
    this.stats.transfers++;
    this.stats.regions += this.nprd;
    this.stats.bytes += offset;
    return true;
  }
}
