/*
 * The emulated disk's backing store: a raw image file on the host, 512-byte sectors.
 *
 * QEMU: the block layer under an IDE drive (block/block-backend.c blk_pread / blk_pwrite /
 * blk_flush over block/file-posix.c, format "raw"). Here, positional synchronous system calls on
 * one file descriptor, the same kind the PV backend makes (dom0/backends/blkback): pread / preadv straight
 * into the buffers the caller names (for DMA those are views of the guest's own pages, so data
 * is copied once, file ↔ guest memory), pwrite / pwritev, fsync for a flush.
 *
 * Discard writes zeros: Node has no fallocate(FALLOC_FL_PUNCH_HOLE), and ATA's TRIM as this
 * device reports it promises deterministic zeros afterwards ([ACS-2] IDENTIFY word 69 bits 14
 * and 5), which zeros keep. The file does not shrink.
 *
 * Host I/O errors throw (an Error from node:fs); the ATA engine turns them into an aborted
 * command for the guest.
 */
import { closeSync, fstatSync, fsyncSync, openSync, readSync, readvSync, writeSync, writevSync } from 'node:fs';
import { ATA_SECT_SIZE } from '../../../shared/public/hw/ata.ts';

const ZEROS = new Uint8Array(64 * 1024);

export class RawImage {
  readonly sectors: number;
  private fd: number;

  constructor(readonly path: string, readonly readOnly: boolean) {
    this.fd = openSync(path, readOnly ? 'r' : 'r+');
    this.sectors = Math.floor(fstatSync(this.fd).size / ATA_SECT_SIZE);
  }

  /** One sector into `dst` (512 bytes); a short read (a file shrunk under us) reads as zeros. */
  readSector(sector: number, dst: Uint8Array): void {
    const n = readSync(this.fd, dst, 0, ATA_SECT_SIZE, sector * ATA_SECT_SIZE);
    if (n < ATA_SECT_SIZE) dst.fill(0, n);
  }

  writeSector(sector: number, src: Uint8Array): void {
    writeSync(this.fd, src, 0, ATA_SECT_SIZE, sector * ATA_SECT_SIZE);
  }

  /** preadv at byte `offset` into the views of `iov`, in order. */
  readv(offset: number, iov: Uint8Array[]): number {
    return readvSync(this.fd, iov, offset);
  }

  /** pwritev at byte `offset` from the views of `iov`. */
  writev(offset: number, iov: Uint8Array[]): number {
    return writevSync(this.fd, iov, offset);
  }

  flush(): void {
    fsyncSync(this.fd);
  }

  /** Zero `count` sectors from `sector` (TRIM; see the header). */
  zero(sector: number, count: number): void {
    let done = 0;
    const total = count * ATA_SECT_SIZE;
    while (done < total) {
      const n = Math.min(ZEROS.length, total - done);
      writeSync(this.fd, ZEROS, 0, n, sector * ATA_SECT_SIZE + done);
      done += n;
    }
  }

  close(): void {
    if (this.fd >= 0) closeSync(this.fd);
    this.fd = -1;
  }
}
