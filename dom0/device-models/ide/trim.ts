/*
 * TRIM: carrying out a DATA SET MANAGEMENT command's list of ranges on the image.
 *
 * QEMU: hw/ide/core.c ide_issue_trim / ide_trim_bh_cb. The standard: [ACS-2] DATA SET
 * MANAGEMENT (TRIM bit in Features) and its LBA Range Entry (bits 47:0 the first LBA,
 * bits 63:48 the number of sectors, 0 meaning "unused entry"), little-endian, 64 per 512-byte block.
 *
 * The whole list is checked before any range is discarded, so a list with one bad entry changes
 * nothing. A discarded range reads as zeros afterwards (block.ts says how).
 */
import { ATA_DSM_RANGE_BYTES } from '../../../shared/public/hw/ata.ts';
import type { RawImage } from './block.ts';

/** Discard every range in the first `bytes` of `payload`: the sectors discarded, or why not. */
export function trim(disk: RawImage, payload: Uint8Array, bytes: number): number | 'out-of-range' | 'host-io' {
  const entries = bytes / ATA_DSM_RANGE_BYTES;
  for (let pass = 0; pass < 2; pass++) {
    let total = 0;
    for (let i = 0; i < entries; i++) {
      const o = i * ATA_DSM_RANGE_BYTES;
      const count = payload[o + 6] | (payload[o + 7] << 8);
      if (count === 0) continue;
      let lba = 0;
      for (let b = 5; b >= 0; b--) lba = lba * 256 + payload[o + b];
      if (pass === 0 && lba + count > disk.sectors) return 'out-of-range';
      if (pass === 1) {
        try {
          disk.zero(lba, count);
        } catch {
          return 'host-io';
        }
      }
      total += count;
    }
    if (pass === 1) return total;
  }
  return 0;
}
