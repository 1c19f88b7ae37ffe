/*
 * The "physical" disk behind a virtual block device: a raw image file on the host.
 *
 * Xen/Linux: what xen-blkback hands its bios to (drivers/block/xen-blkback/blkback.c
 * dispatch_rw_block_io → submit_bio on the backing block device or loop device), with libxl's
 * `params` naming the file. Here Dom0 does the file I/O itself, with the plain positional
 * system calls: preadv / pwritev straight into and out of the granted pages (no bounce buffer),
 * fsync for a flush. The benchmark's "native" path makes exactly these calls, so the ratio
 * between them measures the split driver alone.
 *
 * Discard: Node offers no fallocate(FALLOC_FL_PUNCH_HOLE), so a discarded range is overwritten
 * with zeros. The guest sees what blkif promises (later reads return zeros); the host file
 * does not shrink. Said here, and in the device's `discard-secure` = 0.
 */
import { closeSync, fstatSync, fsyncSync, openSync, readvSync, writevSync } from 'node:fs';
import { SECTOR_SHIFT } from '../../../shared/public/io/blkif.ts';

const ZERO = new Uint8Array(1 << 16);

export class DiskImage {
  readonly sectors: number;
  private fd: number;

  constructor(readonly path: string, readonly readOnly: boolean) {
    this.fd = openSync(path, readOnly ? 'r' : 'r+');
    const size = fstatSync(this.fd).size;
    this.sectors = Math.floor(size / 512);
  }

  /** preadv: fill `iov` in order from byte offset sector * 512. Returns the bytes read. */
  readv(sector: number, iov: readonly Uint8Array[]): number {
    return readvSync(this.fd, iov as Uint8Array[], sector * 2 ** SECTOR_SHIFT);
  }

  /** pwritev: write `iov` in order at byte offset sector * 512. */
  writev(sector: number, iov: readonly Uint8Array[]): number {
    return writevSync(this.fd, iov as Uint8Array[], sector * 2 ** SECTOR_SHIFT);
  }

  flush(): void {
    fsyncSync(this.fd);
  }

  /** Zero `count` sectors at `sector` (see the header on why not a hole). */
  discard(sector: number, count: number): void {
    let done = 0;
    const total = count * 512;
    while (done < total) {
      const n = Math.min(ZERO.length, total - done);
      writevSync(this.fd, [n === ZERO.length ? ZERO : ZERO.subarray(0, n)], sector * 512 + done);
      done += n;
    }
  }

  close(): void {
    if (this.fd >= 0) closeSync(this.fd);
    this.fd = -1;
  }
}
