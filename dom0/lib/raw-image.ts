/*
 * A raw disk image on the host: the one class through which every Dom0 disk path does its file
 * I/O, so that blkback, the emulated IDE disk and the benchmark's native baseline make the same
 * system calls by construction.
 *
 * Xen/Linux: what xen-blkback submits its bios to (drivers/block/xen-blkback/blkback.c
 * dispatch_rw_block_io → submit_bio on the backing device, a loop device over libxl's `params`
 * file), and what QEMU's block layer does for a raw IDE drive (block/file-posix.c: preadv,
 * pwritev, fdatasync, and fallocate(PUNCH_HOLE) for a discard). Here: positional synchronous
 * calls on one file descriptor, straight into and out of the caller's views (for a guest,
 * views of granted or guest pages: data is copied once, file ↔ guest memory).
 *
 * API: `readv(sector, iov)` / `writev(sector, iov)` (512-byte sectors; bytes moved),
 * `readvAt(byte, iov)` / `writevAt(byte, iov)` (byte offsets, for DMA regions that need not start
 * on a sector), `readSector(sector, dst)` / `writeSector(sector, src)` (one sector, for PIO),
 * `readvAsync(sector, iov, done)` / `writevAsync(sector, iov, done)` (the same preadv / pwritev
 * on libuv's thread pool, for the benchmark's native baseline at a depth above one), `flush()` (fsync), `discard(sector, count)` (one bounded piece; see below),
 * `sectors`, `path`, `readOnly`, `close()`. Host I/O errors throw (an Error from node:fs): the
 * caller turns them into an error for its guest.
 *
 * Discard. Node has no fallocate(FALLOC_FL_PUNCH_HOLE), so a hole can be made only where a
 * truncation makes one: a range that runs to the end of the image is deallocated for real
 * (ftruncate down to its start, then back up to the image's size). Anywhere else the range is
 * read and only the 4 KiB blocks that hold data are overwritten with zeros: the guest gets what
 * discard promises (later reads return zeros), a block that is a hole stays a hole, so a
 * discard never allocates space in a sparse image, but the host space of data already written
 * is not given back. An image with no blocks allocated at all is not read. One call does at most
 * DISCARD_PIECE_SECTORS (1 MiB) of reading, so a caller can bound the work it does per turn and
 * call again for the rest.
 */
import { closeSync, fstatSync, fsyncSync, ftruncateSync, openSync, readSync, readv, readvSync, writeSync, writev, writevSync } from 'node:fs';

export const SECTOR_BYTES = 512;
/** The most a discard() call reads (or zeroes) at once. */
export const DISCARD_PIECE_SECTORS = 2048;
const BLOCK = 4096;
const ZEROS = new Uint8Array(BLOCK);
/** A piece of zeros to compare a piece of data with in one memcmp (Buffer.equals). */
const ZERO_PIECE = Buffer.alloc(DISCARD_PIECE_SECTORS * SECTOR_BYTES);

export class RawImage {
  readonly sectors: number;
  private fd: number;
  private readonly bytes: number;
  private readonly regular: boolean;
  /** Discard's look at the data, made on the first discard of a range not at the end. */
  private scratch: Buffer | null = null;
  readonly stats = { discardedSectors: 0, zeroedBytes: 0, truncations: 0 };

  constructor(readonly path: string, readonly readOnly: boolean) {
    this.fd = openSync(path, readOnly ? 'r' : 'r+');
    const st = fstatSync(this.fd);
    this.bytes = st.size;
    this.regular = st.isFile();
    this.sectors = Math.floor(st.size / SECTOR_BYTES);
  }

  /** preadv: fill `iov` in order from sector `sector`. Returns the bytes read. */
  readv(sector: number, iov: readonly Uint8Array[]): number {
    return readvSync(this.fd, iov as Uint8Array[], sector * SECTOR_BYTES);
  }

  /** pwritev: write `iov` in order at sector `sector`. Returns the bytes written. */
  writev(sector: number, iov: readonly Uint8Array[]): number {
    return writevSync(this.fd, iov as Uint8Array[], sector * SECTOR_BYTES);
  }

  /** preadv on libuv's thread pool; `done(err, bytes)` when it completes. */
  readvAsync(sector: number, iov: readonly Uint8Array[], done: (err: NodeJS.ErrnoException | null, bytes: number) => void): void {
    readv(this.fd, iov as Uint8Array[], sector * SECTOR_BYTES, done);
  }

  /** pwritev on libuv's thread pool. */
  writevAsync(sector: number, iov: readonly Uint8Array[], done: (err: NodeJS.ErrnoException | null, bytes: number) => void): void {
    writev(this.fd, iov as Uint8Array[], sector * SECTOR_BYTES, done);
  }

  readvAt(offset: number, iov: readonly Uint8Array[]): number {
    return readvSync(this.fd, iov as Uint8Array[], offset);
  }

  writevAt(offset: number, iov: readonly Uint8Array[]): number {
    return writevSync(this.fd, iov as Uint8Array[], offset);
  }

  /** pread of one sector into `dst`; a short read (a file shrunk under us) reads as zeros. */
  readSector(sector: number, dst: Uint8Array): void {
    const n = readSync(this.fd, dst, 0, SECTOR_BYTES, sector * SECTOR_BYTES);
    if (n < SECTOR_BYTES) dst.fill(0, n, SECTOR_BYTES);
  }

  /** pwrite of one sector from `src`. */
  writeSector(sector: number, src: Uint8Array): void {
    writeSync(this.fd, src, 0, SECTOR_BYTES, sector * SECTOR_BYTES);
  }

  flush(): void {
    fsyncSync(this.fd);
  }

  /**
   * Discard from `sector`, at most `count` sectors and at most one piece's worth of work: returns
   * how many sectors were handled (the caller calls again for the rest). The range must lie
   * within the image (the caller checked it).
   */
  discard(sector: number, count: number): number {
    if (count <= 0) return 0;
    const start = sector * SECTOR_BYTES;
    const end = (sector + count) * SECTOR_BYTES;
    if (this.regular && end >= this.bytes) {
      // To the end of the image: a real hole, made by truncation.
      ftruncateSync(this.fd, start);
      ftruncateSync(this.fd, this.bytes);
      this.stats.truncations++;
      this.stats.discardedSectors += count;
      return count;
    }
    const n = Math.min(count, DISCARD_PIECE_SECTORS);
    this.stats.discardedSectors += n;
    // Nothing allocated anywhere: every sector already reads as zeros.
    if (this.regular && fstatSync(this.fd).blocks === 0) return n;
    const len = n * SECTOR_BYTES;
    const buf = (this.scratch ??= Buffer.alloc(DISCARD_PIECE_SECTORS * SECTOR_BYTES));
    const got = readSync(this.fd, buf, 0, len, start);
    if (buf.equals(ZERO_PIECE) || (got < buf.length && buf.subarray(0, got).equals(ZERO_PIECE.subarray(0, got)))) return n;
    for (let off = 0; off < got; off += BLOCK) {
      const m = Math.min(BLOCK, got - off);
      if (buf.compare(ZERO_PIECE, 0, m, off, off + m) !== 0) {
        writeSync(this.fd, ZEROS, 0, m, start + off);
        this.stats.zeroedBytes += m;
      }
    }
    return n;
  }

  close(): void {
    if (this.fd >= 0) closeSync(this.fd);
    this.fd = -1;
  }
}
