/*
 * TRIM: carrying out a DATA SET MANAGEMENT command's list of ranges on the image.
 *
 * QEMU: hw/ide/core.c ide_issue_trim / ide_trim_bh_cb (which checks each range against the
 * drive's size and turns the good ones into blk_aio_pdiscard). The standard: [ACS-2] DATA SET
 * MANAGEMENT (TRIM bit in Features) and its LBA Range Entry (bits 47:0 the first LBA, bits
 * 63:48 the number of sectors, 0 meaning "unused entry"), little-endian, 64 per 512-byte block.
 *
 * The whole list is checked before any range is discarded, so a list with one bad entry changes
 * nothing. The ranges are then sorted and merged, so a list naming the same sectors many times
 * (64 entries per block, each up to 65,535 sectors, all overlapping) costs what the sectors it
 * covers cost, once: at most the whole disk, never more. A discarded range reads as zeros
 * afterwards and no space is allocated for it (dom0/lib/raw-image.ts says how).
 *
 * The work is a TrimJob, done a bounded number of RawImage.discard() calls at a time: the device
 * (core.ts) stays BSY and runs one step per turn of Dom0's loop, so a TRIM of the whole disk
 * never holds Dom0's one thread for longer than a step.
 */
import { ATA_DSM_RANGE_BYTES } from '../../../shared/public/hw/ata.ts';
import type { RawImage } from '../../lib/raw-image.ts';

export interface TrimRange {
  lba: number;
  count: number;
}

/**
 * The ranges in the first `bytes` of `payload`, checked against `sectors`, sorted and merged;
 * 'out-of-range' if any entry runs past the end.
 */
export function trimRanges(payload: Uint8Array, bytes: number, sectors: number): TrimRange[] | 'out-of-range' {
  const entries = Math.floor(bytes / ATA_DSM_RANGE_BYTES);
  const list: TrimRange[] = [];
  for (let i = 0; i < entries; i++) {
    const o = i * ATA_DSM_RANGE_BYTES;
    const count = payload[o + 6] | (payload[o + 7] << 8);
    if (count === 0) continue;
    let lba = 0;
    for (let b = 5; b >= 0; b--) lba = lba * 256 + payload[o + b];
    if (lba + count > sectors) return 'out-of-range';
    list.push({ lba, count });
  }
  list.sort((a, b) => a.lba - b.lba);
  const merged: TrimRange[] = [];
  for (const r of list) {
    const last = merged[merged.length - 1];
    if (last !== undefined && r.lba <= last.lba + last.count) {
      last.count = Math.max(last.count, r.lba + r.count - last.lba);
    } else {
      merged.push({ ...r });
    }
  }
  return merged;
}

/** RawImage.discard() calls per step. */
export const TRIM_STEP_PIECES = 16;

/** A checked, merged list of ranges, discarded a step at a time. */
export class TrimJob {
  private range = 0;
  private done = 0;
  /** The distinct sectors the job covers. */
  readonly sectors: number;

  constructor(private readonly disk: RawImage, private readonly ranges: readonly TrimRange[]) {
    this.sectors = ranges.reduce((n, r) => n + r.count, 0);
  }

  /** Up to TRIM_STEP_PIECES discard calls; true when every range is done. Host I/O errors throw. */
  step(): boolean {
    for (let i = 0; i < TRIM_STEP_PIECES && this.range < this.ranges.length; i++) {
      const r = this.ranges[this.range];
      this.done += this.disk.discard(r.lba + this.done, r.count - this.done);
      if (this.done >= r.count) {
        this.range++;
        this.done = 0;
      }
    }
    return this.range === this.ranges.length;
  }

  /**
   * Run to the end a step per turn of the host's event loop (QEMU's ide_trim_bh_cb, a bottom
   * half), while `current()` says the command still owns the job; then `done()`, or `failed()` on
   * a host I/O error. The first step runs now.
   */
  run(current: () => boolean, done: () => void, failed: () => void): void {
    if (!current()) return;
    let finished: boolean;
    try {
      finished = this.step();
    } catch {
      return failed();
    }
    if (finished) done();
    else setImmediate(() => this.run(current, done, failed));
  }
}

/** Discard every range in the first `bytes` of `payload` at once: the distinct sectors discarded, or why not. */
export function trim(disk: RawImage, payload: Uint8Array, bytes: number): number | 'out-of-range' | 'host-io' {
  const ranges = trimRanges(payload, bytes, disk.sectors);
  if (ranges === 'out-of-range') return ranges;
  const job = new TrimJob(disk, ranges);
  try {
    while (!job.step());
  } catch {
    return 'host-io';
  }
  return job.sectors;
}
