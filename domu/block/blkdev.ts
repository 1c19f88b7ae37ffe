/*
 * The guest's one block-device interface: what a workload (or a filesystem) sees, whether the
 * disk behind it is paravirtual (blkfront) or emulated (an IDE controller the guest drives
 * register by register).
 *
 * Linux: the block layer's view of a disk (struct gendisk + blk-mq: submit a bio, get a
 * completion). ringvisor keeps the part a workload needs: read, write, flush and discard of
 * sector ranges, asynchronous, many in flight at once, on buffers made of the guest's own
 * pages (so a driver can grant them, or hand their addresses to a DMA engine).
 *
 * Sectors are always 512-byte units here, as on the blkif wire.
 */
import type { GuestMemory } from '../../shared/public/memory.ts';
import { PAGE_SIZE } from '../../shared/public/xen.ts';

/** A buffer of whole guest pages (Linux: the pages of a bio). */
export interface IoBuffer {
  /** The guest frames, in order; byte i of the buffer is in gfns[i >> 12] at offset i & 4095. */
  readonly gfns: readonly number[];
  /** The same pages as writable views, for the guest's own reads and writes of the data. */
  readonly pages: readonly Uint8Array[];
  readonly bytes: number;
}

export type BlockPath = 'pv' | 'emu-dma' | 'emu-pio';

export interface BlockFeatures {
  flush: boolean;
  discard: boolean;
  /** Requests the device can have in flight. */
  maxInFlight: number;
  /** Largest single request, in bytes (bigger ones are split by the driver). */
  maxRequestBytes: number;
}

/** A request the device refused or failed (the guest's EIO). */
export class BlockError extends Error {
  override readonly name = 'BlockError';
  constructor(readonly op: string, readonly sector: number, readonly count: number, readonly status: number, why: string) {
    super(`${op} of ${count} sector(s) at ${sector}: ${why} (status ${status})`);
  }
}

export type BlockOp = 'read' | 'write' | 'flush' | 'discard';

/**
 * A request on the device's low-level interface (Linux: a struct request and its end_io). The
 * caller owns it and may reuse it once done() has been called; no promise and no allocation per
 * request, which is what a queue depth of 32 on a fast disk needs.
 */
export interface BlockRequest {
  op: BlockOp;
  sector: number;
  count: number;
  /** The data (read, write); null for flush and discard. */
  buf: IoBuffer | null;
  /** Called once, with 0 or an error (a negative status), never from inside submit(). */
  done(status: number, why?: string): void;
}

export interface BlockDevice {
  readonly name: string;
  readonly path: BlockPath;
  /** Capacity in 512-byte sectors. */
  readonly sectors: number;
  /** Logical sector size the device reports (blkif's sector-size). */
  readonly sectorSize: number;
  readonly readOnly: boolean;
  readonly features: BlockFeatures;

  /** Queue a request; its done() runs when it completes. */
  submit(req: BlockRequest): void;
  /** Read `count` sectors at `sector` into the start of `buf`. */
  read(sector: number, count: number, buf: IoBuffer): Promise<void>;
  /** Write `count` sectors from the start of `buf` at `sector`. */
  write(sector: number, count: number, buf: IoBuffer): Promise<void>;
  /** Make every completed write durable. */
  flush(): Promise<void>;
  /** Release `count` sectors at `sector`; later reads return zeros. */
  discard(sector: number, count: number): Promise<void>;
  /** Counters a learner can see (requests, notifications, grant ops, traps, ...). */
  stats(): Record<string, number>;
  /** Stop using the device (tear down its connection). */
  close(): Promise<void>;
}

/** Allocate an I/O buffer of at least `bytes` from the kernel's pages. */
export function allocIoBuffer(memory: GuestMemory, allocPage: () => number, bytes: number): IoBuffer {
  const n = Math.max(1, Math.ceil(bytes / PAGE_SIZE));
  const gfns: number[] = [];
  const pages: Uint8Array[] = [];
  for (let i = 0; i < n; i++) {
    const gfn = allocPage();
    gfns.push(gfn);
    pages.push(memory.page(gfn, true));
  }
  return { gfns, pages, bytes: n * PAGE_SIZE };
}

/** Call `f(page, offsetInPage, doneSoFar, n)` for each page-sized piece of `len` bytes from `offset`. */
function eachPiece(buf: IoBuffer, offset: number, len: number, f: (page: Uint8Array, off: number, done: number, n: number) => void): void {
  for (let done = 0; done < len;) {
    const at = offset + done;
    const off = at % PAGE_SIZE;
    const n = Math.min(PAGE_SIZE - off, len - done);
    f(buf.pages[Math.floor(at / PAGE_SIZE)], off, done, n);
    done += n;
  }
}

/** Copy `src` into the buffer at byte `offset`. */
export function ioWrite(buf: IoBuffer, offset: number, src: Uint8Array): void {
  eachPiece(buf, offset, src.length, (page, off, done, n) => page.set(n === src.length ? src : src.subarray(done, done + n), off));
}

/** Copy `dst.length` bytes out of the buffer from byte `offset`. */
export function ioRead(buf: IoBuffer, offset: number, dst: Uint8Array): void {
  eachPiece(buf, offset, dst.length, (page, off, done, n) => dst.set(page.subarray(off, off + n), done));
}

/**
 * The promise form of a request, for callers that prefer await (built on submit()). `onSettle`
 * tells the kernel's idle loop that promise callbacks are now due (EventChannels.wakeAsync).
 */
export function blockPromise(dev: BlockDevice, op: BlockOp, sector: number, count: number, buf: IoBuffer | null, onSettle?: () => void): Promise<void> {
  return new Promise((resolve, reject) => {
    dev.submit({
      op, sector, count, buf,
      done: (status, why) => {
        onSettle?.();
        if (status === 0) resolve();
        else reject(new BlockError(op, sector, count, status, why ?? `${dev.name}: I/O error`));
      },
    });
  });
}
