/*
 * An emulated IDE disk behind the guest's one block-device interface: the same workload that
 * runs over blkfront runs here, register access by register access.
 *
 * Linux: what libata does for a PATA disk on ata_piix: ata_dev_read_id / ata_id_n_sectors at
 * probe, ata_build_rw_tf choosing 28- or 48-bit commands, and the host state machine
 * ata_sff_hsm_move that runs each command forward from the interrupt handler (libata-sff.c).
 * Register work is in channel.ts, descriptor tables in prd.ts; the device model it talks to is
 * dom0/device-models/ide (QEMU's PIIX IDE under Xen).
 *
 * Lifecycle: probeIde binds IRQ 14 (channel.ts), reads IDENTIFY DEVICE by PIO ([ATA-6] 8.15:
 * capacity in words 60-61 / 100-103, 48-bit addressing in word 83, TRIM in word 169) and, for
 * DMA, allocates the descriptor-table page. Requests then queue here (submit), and the channel
 * runs one command at a time, as IDE has no command queuing: the first is issued from a
 * microtask after submit (a request never completes inside submit), every later step from the
 * interrupt handler, which also issues the next queued request, so a busy disk never waits for
 * a turn of the event loop. Each request is split into commands of what one can move: 256
 * sectors for a 28-bit command; for a 48-bit one up to 65536 by PIO, and by DMA as many as one
 * page of descriptors describes for any buffer (2048 sectors, 1 MiB). Like libata, a command is
 * 28-bit when its sectors and count fit, else the EXT form (opts.lba48 = 'always' forces EXT).
 *
 * Two paths (BlockDevice.path):
 *   'emu-pio'  READ/WRITE SECTORS (EXT): every 16-bit word of data is one trap (every 32-bit
 *              word with opts.pio32), and every sector one interrupt ([ATA-6] 9.5, 9.6).
 *   'emu-dma'  READ/WRITE DMA (EXT) through the bus master ([BMIDE] programming sequence): a dozen register
 *              traps and one interrupt per command whatever its size; the model moves the data.
 * Traps per command (n sectors, 16-bit PIO; with 32-bit PIO, 129 per sector instead of 257):
 *   PIO read  6 + 257n      PIO write  7 + 257n      (48-bit commands: 4 more each)
 *   DMA read or write 13    (48-bit: 17)             flush 3       TRIM 19 per command
 *
 * Discard is ATA TRIM ([ACS-2] DATA SET MANAGEMENT), a DMA command with no PIO form: so
 * 'emu-dma' offers discard when IDENTIFY reports TRIM, and 'emu-pio' does not
 * (features.discard = false; a discard request fails with BLKIF_RSP_EOPNOTSUPP, saying why).
 *
 * Read-only: ATA has no write-protect flag to read, so readOnly is false and a write to a
 * read-only image fails with the device's abort, as on a write-protected disk.
 */
import type { Kernel } from '../../shared/kernel/kernel.ts';
import type { IdlePoller } from '../../shared/kernel/events.ts';
import {
  ATA_CMD_DSM, ATA_CMD_FLUSH, ATA_CMD_FLUSH_EXT, ATA_CMD_ID_ATA, ATA_CMD_READ_DMA, ATA_CMD_READ_DMA_EXT, ATA_CMD_READ_PIO,
  ATA_CMD_READ_PIO_EXT, ATA_CMD_WRITE_DMA, ATA_CMD_WRITE_DMA_EXT, ATA_CMD_WRITE_PIO, ATA_CMD_WRITE_PIO_EXT, ATA_DRQ,
  ATA_DSM_RANGE_BYTES, ATA_DSM_RANGE_MAX_SECTORS, ATA_DSM_TRIM, ATA_ERR, ATA_LBA28_LIMIT, ATA_MAX_SECTORS_28,
  ATA_MAX_SECTORS_48, ATA_SECT_SIZE,
} from '../../shared/public/hw/ata.ts';
import { BM_CMD_START, BM_CMD_WRITE, BM_STATUS_ERROR, BM_STATUS_INTR } from '../../shared/public/hw/bmide.ts';
import { PAGE_SHIFT, PAGE_SIZE } from '../../shared/public/xen.ts';
import {
  blockPromise, type BlockDevice, type BlockFeatures, type BlockOp, type BlockRequest, type IoBuffer,
} from '../block/blkdev.ts';
import { IdeChannel, type TaskFile } from './channel.ts';
import { parseIdentify, type IdeIdentity } from './identify.ts';
import { PRD_PER_PAGE, PrdTable } from './prd.ts';

export type IdeMode = 'emu-dma' | 'emu-pio';

export interface IdeOptions {
  mode: IdeMode;
  /** 32-bit PIO data accesses (half the data traps); default 16-bit, as the ATA data register is. */
  pio32?: boolean;
  /** 'auto' (default): 28-bit commands where they reach; 'always': the EXT commands throughout. */
  lba48?: 'auto' | 'always';
  name?: string;
}

/** Largest DMA command: what one page of descriptors describes for any buffer (a page each). */
const MAX_DMA_SECTORS_48 = ((PRD_PER_PAGE / 2) * PAGE_SIZE) / ATA_SECT_SIZE;
const EIO = -1;          // blkif's BLKIF_RSP_ERROR
const EOPNOTSUPP = -2;   // BLKIF_RSP_EOPNOTSUPP
const TRIM_RANGES_PER_BLOCK = ATA_SECT_SIZE / ATA_DSM_RANGE_BYTES;

/** Where the host state machine is ([ATA-6] clause 9: the host side of each protocol). */
const HSM_IDLE = 0;
const HSM_PIO_IN = 2;
const HSM_PIO_OUT = 3;
const HSM_DMA = 4;
const HSM_NON_DATA = 5;

/** Probe the primary channel's master disk and return it as a block device. */
export async function probeIde(k: Kernel, opts: IdeOptions): Promise<IdeDisk> {
  const ch = new IdeChannel(k, { pio32: opts.pio32 });
  const raw = new Uint8Array(ATA_SECT_SIZE);
  // IDENTIFY DEVICE, PIO data-in: select, command, then on the interrupt Status and 256 words.
  const mark = ch.mark();
  ch.issueNonData(ATA_CMD_ID_ATA);
  await ch.waitIrq(mark);
  const st = ch.status();
  if ((st & ATA_ERR) !== 0 || (st & ATA_DRQ) === 0) {
    ch.close();
    throw new Error(`IDE: IDENTIFY DEVICE failed (status 0x${st.toString(16)})`);
  }
  ch.readBlock(raw, 0);
  try {
    const id = parseIdentify(raw);
    if (opts.mode === 'emu-dma' && !id.dma) throw new Error('IDE: the disk does not do DMA');
    return new IdeDisk(k, ch, id, opts);
  } catch (e) {
    ch.close();
    throw e;
  }
}

export class IdeDisk implements BlockDevice {
  readonly name: string;
  readonly path: IdeMode;
  readonly sectors: number;
  readonly sectorSize = ATA_SECT_SIZE;
  readonly readOnly = false;
  readonly features: BlockFeatures;
  private readonly queue: BlockRequest[] = [];
  private closed = false;
  private kickQueued = false;
  private readonly prd: PrdTable | null;
  private readonly dsmGfn: number;
  private readonly dsmPage: Uint8Array | null;
  private readonly dsmBuf: IoBuffer | null;
  private readonly maxSectors: number;
  private readonly counts = { requests: 0, commands: 0, sectors: 0, errors: 0, spurious: 0, prdEntries: 0, flushes: 0, trims: 0 };
  /* The request in progress and where its current command stands. */
  private cur: BlockRequest | null = null;
  private hsm = HSM_IDLE;
  private done = 0;        // sectors of `cur` finished by earlier commands
  private cmdCount = 0;    // sectors the current command covers
  private cmdBlock = 0;    // PIO blocks of the current command transferred so far
  private cmdOffset = 0;   // byte offset in cur.buf where the current command's data starts
  private bmDir = 0;       // the bus master's Read/Write control bit for the current DMA
  private readonly kick = (): void => {
    this.kickQueued = false;
    this.next();
  };
  /**
   * How this driver waits for its interrupt, under the run's waiting policy (shared/wait.ts): it
   * has no ring to look at, so it only tells the idle loop that a command is in flight; under
   * `poll` the loop then spins on the upcall word (cpuidle-haltpoll's way) before sleeping, as
   * it spins on blkfront's ring, and under `irq` it sleeps until IRQ 14's event. (With this device
   * model the interrupt is usually pending already when the access that started the command
   * returns, since the model finishes the transfer inside it: the waiting that matters on this
   * path is the trapping vCPU's, hypervisor/ioreq-send.ts.)
   */
  private readonly waiter: IdlePoller = { poll: () => false, prepareToSleep: () => false, busy: () => this.cur !== null };

  constructor(private readonly k: Kernel, readonly channel: IdeChannel, readonly id: IdeIdentity, private readonly opts: IdeOptions) {
    this.name = opts.name ?? 'hda';
    this.path = opts.mode;
    this.sectors = id.sectors;
    const dma = opts.mode === 'emu-dma';
    this.prd = dma ? new PrdTable(k) : null;
    this.dsmGfn = dma && id.trim ? k.pages.alloc() : -1;
    this.dsmPage = this.dsmGfn >= 0 ? k.memory.page(this.dsmGfn, true) : null;
    this.dsmBuf = this.dsmPage !== null ? { gfns: [this.dsmGfn], pages: [this.dsmPage], bytes: PAGE_SIZE } : null;
    this.maxSectors = !id.lba48 ? ATA_MAX_SECTORS_28 : dma ? MAX_DMA_SECTORS_48 : ATA_MAX_SECTORS_48;
    this.features = { flush: true, discard: dma && id.trim, maxInFlight: 64, maxRequestBytes: this.maxSectors * ATA_SECT_SIZE };
    channel.handler = () => this.interrupt();
    k.events.addPoller(this.waiter);
  }

  /* The promise forms, on top of submit(). */
  read(sector: number, count: number, buf: IoBuffer): Promise<void> { return this.promise('read', sector, count, buf); }
  write(sector: number, count: number, buf: IoBuffer): Promise<void> { return this.promise('write', sector, count, buf); }
  flush(): Promise<void> { return this.promise('flush', 0, 0, null); }
  discard(sector: number, count: number): Promise<void> { return this.promise('discard', sector, count, null); }
  private promise(op: BlockOp, sector: number, count: number, buf: IoBuffer | null): Promise<void> {
    return blockPromise(this, op, sector, count, buf, () => this.k.events.wakeAsync());
  }

  /** Queue a request; it runs when the channel is free (see the header). */
  submit(req: BlockRequest): void {
    const why = this.refuse(req);
    if (why !== null) {
      queueMicrotask(() => req.done(why[0], why[1]));
      return;
    }
    this.counts.requests++;
    this.queue.push(req);
    if (this.cur === null && !this.kickQueued) {
      this.kickQueued = true;
      queueMicrotask(this.kick);
    }
  }

  private refuse(r: BlockRequest): [number, string] | null {
    if (this.closed) return [EIO, 'the device is closed'];
    if (r.op === 'flush') return null;
    if (r.op === 'discard' && !this.features.discard) {
      return [EOPNOTSUPP, this.path === 'emu-pio'
        ? 'ATA TRIM (DATA SET MANAGEMENT) is a DMA command; the emu-pio path has no discard'
        : 'the disk does not report TRIM (IDENTIFY word 169)'];
    }
    if (!(Number.isInteger(r.sector) && Number.isInteger(r.count) && r.sector >= 0 && r.count > 0 && r.sector + r.count <= this.sectors)) {
      return [EIO, `sectors ${r.sector}+${r.count} are outside the disk (${this.sectors} sectors)`];
    }
    if (r.op !== 'discard' && (r.buf === null || r.buf.bytes < r.count * ATA_SECT_SIZE)) return [EIO, 'the buffer is smaller than the request'];
    return null;
  }

  stats(): Record<string, number> {
    return { ...this.counts, traps: this.channel.traps, interrupts: this.channel.interrupts };
  }

  /** Stop taking requests, let the queued ones finish, give the interrupt line and pages back. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    while (this.cur !== null || this.queue.length > 0) await new Promise<void>((r) => setImmediate(r));
    this.k.events.removePoller(this.waiter);
    this.channel.close();
    if (this.prd !== null) this.k.pages.release(this.prd.gfn);
    if (this.dsmGfn >= 0) this.k.pages.release(this.dsmGfn);
  }

  /** Start queued requests until one is in flight (or none is left). */
  private next(): void {
    while (this.cur === null && this.queue.length > 0) {
      this.cur = this.queue.shift()!;
      this.done = 0;
      this.startCommand();
    }
  }

  /** Issue the current request's next command. */
  private startCommand(): void {
    const r = this.cur!;
    const ch = this.channel;
    this.counts.commands++;
    if (r.op === 'flush') {
      this.hsm = HSM_NON_DATA;
      ch.issueNonData(this.id.lba48 ? ATA_CMD_FLUSH_EXT : ATA_CMD_FLUSH);
      return;
    }
    if (r.op === 'discard') return this.startTrim(r);
    const write = r.op === 'write';
    const n = Math.min(this.maxSectors, r.count - this.done);
    const lba = r.sector + this.done;
    const lba48 = this.opts.lba48 === 'always' || lba + n > ATA_LBA28_LIMIT || n > ATA_MAX_SECTORS_28;
    this.cmdCount = n;
    this.cmdOffset = this.done * ATA_SECT_SIZE;
    this.cmdBlock = 0;
    if (this.prd !== null) {
      const entries = this.prd.build(r.buf!, this.cmdOffset, n * ATA_SECT_SIZE);
      if (entries < 0) return this.finish(EIO, 'the buffer needs more descriptors than one table page holds');
      this.counts.prdEntries += entries;
      const command = write ? (lba48 ? ATA_CMD_WRITE_DMA_EXT : ATA_CMD_WRITE_DMA) : (lba48 ? ATA_CMD_READ_DMA_EXT : ATA_CMD_READ_DMA);
      // Read/Write control is the bus master's view: it writes memory when the disk is read.
      return this.startDma(write ? 0 : BM_CMD_WRITE, { command, lba, count: n, lba48 });
    }
    ch.issue({ command: write ? (lba48 ? ATA_CMD_WRITE_PIO_EXT : ATA_CMD_WRITE_PIO) : (lba48 ? ATA_CMD_READ_PIO_EXT : ATA_CMD_READ_PIO), lba, count: n, lba48 });
    if (!write) {
      this.hsm = HSM_PIO_IN; // the first block comes with an interrupt
      return;
    }
    // PIO data-out: no interrupt before the first block; Alternate Status shows DRQ ([ATA-6] 9.6).
    this.hsm = HSM_PIO_OUT;
    const st = ch.altStatus();
    if ((st & ATA_DRQ) === 0) return this.deviceError((st & ATA_ERR) !== 0 ? ch.status() : st);
    this.writeNextBlock();
  }

  /** [BMIDE] programming sequence: table address and direction, the ATA command, then Start. */
  private startDma(dir: number, tf: TaskFile): void {
    const ch = this.channel;
    this.bmDir = dir;
    this.hsm = HSM_DMA;
    ch.bmSetup(this.prd!.gpa, dir);
    ch.issue(tf);
    ch.bmWriteCommand(dir | BM_CMD_START);
  }

  /** One DATA SET MANAGEMENT command covering as much of the rest of the discard as fits. */
  private startTrim(r: BlockRequest): void {
    const page = this.dsmPage!;
    const perCommand = Math.min(this.id.trimBlocks, PAGE_SIZE / ATA_SECT_SIZE) * TRIM_RANGES_PER_BLOCK;
    page.fill(0);
    let ranges = 0;
    let covered = 0;
    while (ranges < perCommand && this.done + covered < r.count) {
      const n = Math.min(ATA_DSM_RANGE_MAX_SECTORS, r.count - this.done - covered);
      let lba = r.sector + this.done + covered;
      const o = ranges * ATA_DSM_RANGE_BYTES;
      for (let b = 0; b < 6; b++, lba = Math.floor(lba / 256)) page[o + b] = lba & 0xff;
      page[o + 6] = n & 0xff;
      page[o + 7] = n >>> 8;
      ranges++;
      covered += n;
    }
    const blocks = Math.ceil(ranges / TRIM_RANGES_PER_BLOCK);
    this.prd!.build(this.dsmBuf!, 0, blocks * ATA_SECT_SIZE);
    this.cmdCount = covered;
    this.counts.trims++;
    this.startDma(0, { command: ATA_CMD_DSM, lba: 0, count: blocks, lba48: true, features: ATA_DSM_TRIM });
  }

  /** The interrupt handler: move the command in progress forward (ata_sff_hsm_move). */
  private interrupt(): void {
    const ch = this.channel;
    switch (this.hsm) {
      case HSM_IDLE:
        this.counts.spurious++; // nothing of ours in flight (e.g. the event that binding the line leaves pending)
        return;
      case HSM_PIO_IN: {
        const st = ch.status();
        if ((st & ATA_ERR) !== 0) return this.deviceError(st);
        if ((st & ATA_DRQ) === 0) { this.counts.spurious++; return; }
        const at = this.cmdOffset + this.cmdBlock * ATA_SECT_SIZE;
        ch.readBlock(this.cur!.buf!.pages[at >>> PAGE_SHIFT], at & (PAGE_SIZE - 1));
        if (++this.cmdBlock === this.cmdCount) this.commandDone();
        return;
      }
      case HSM_PIO_OUT: {
        const st = ch.status();
        if ((st & ATA_ERR) !== 0) return this.deviceError(st);
        const more = this.cmdBlock < this.cmdCount;
        if (((st & ATA_DRQ) !== 0) !== more) { this.counts.spurious++; return; }
        if (more) this.writeNextBlock();
        else this.commandDone();
        return;
      }
      case HSM_DMA: {
        const bmst = ch.bmStatus();
        if ((bmst & BM_STATUS_INTR) === 0) { this.counts.spurious++; return; }
        ch.bmWriteCommand(this.bmDir); // Start off: the engine stops
        const st = ch.status();
        ch.bmWriteStatus(bmst);        // writing back what was read clears Interrupt and Error, keeps the rest
        if ((bmst & BM_STATUS_ERROR) !== 0 || (st & ATA_ERR) !== 0) return this.deviceError(st, bmst);
        return this.commandDone();
      }
      case HSM_NON_DATA: {
        const st = ch.status();
        if ((st & ATA_ERR) !== 0) return this.deviceError(st);
        this.counts.flushes++;
        return this.commandDone();
      }
    }
  }

  private writeNextBlock(): void {
    const at = this.cmdOffset + this.cmdBlock * ATA_SECT_SIZE;
    this.cmdBlock++;
    this.channel.writeBlock(this.cur!.buf!.pages[at >>> PAGE_SHIFT], at & (PAGE_SIZE - 1));
  }

  private commandDone(): void {
    const r = this.cur!;
    if (r.op !== 'flush') {
      this.done += this.cmdCount;
      if (r.op !== 'discard') this.counts.sectors += this.cmdCount;
      if (this.done < r.count) return this.startCommand();
    }
    this.finish(0);
  }

  /** The device said ERR (or the bus master Error): fail the request, with the registers in the message. */
  private deviceError(st: number, bmst?: number): void {
    const err = this.channel.error();
    this.finish(EIO, `ATA status 0x${st.toString(16)}, error 0x${err.toString(16)}${bmst === undefined ? '' : `, bus master status 0x${bmst.toString(16)}`}`);
  }

  /** Complete the current request and start the next. */
  private finish(status: number, why?: string): void {
    const r = this.cur!;
    this.cur = null;
    this.hsm = HSM_IDLE;
    if (status !== 0) this.counts.errors++;
    r.done(status, why);
    this.next();
  }
}

export type { IdeIdentity };
