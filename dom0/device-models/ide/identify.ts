/*
 * IDENTIFY DEVICE data: the 512 bytes by which the emulated disk tells the guest what it is.
 *
 * QEMU: hw/ide/core.c ide_identify. The standard: [ATA-6] 8.15 (table 16) and [ACS-2] for the
 * TRIM words; word indices are named in shared/public/hw/ata.ts (ATA_ID, as Linux's ATA_ID_*).
 *
 * What this device claims, and why:
 *   - LBA (word 49 bit 9) and the 48-bit Address feature set (83/86 bit 10), with the capacity in
 *     words 60-61 (capped at 2^28 - 1, as 28-bit commands can reach) and 100-103;
 *   - DMA (49 bit 8) in multiword mode 2 (word 63), the PIIX's mode, and PIO modes 3-4 (word 64);
 *     no Ultra DMA: transfer timing means nothing here;
 *   - FLUSH CACHE and FLUSH CACHE EXT (83/86 bits 12, 13): a flush is an fsync of the image;
 *   - TRIM through DATA SET MANAGEMENT (169 bit 0) with up to DSM_MAX_BLOCKS blocks of ranges
 *     per command (105), deterministic zeros after TRIM (69 bits 14, 5), if discard is on;
 *   - no READ/WRITE MULTIPLE (47 = 0): every PIO sector is its own DRQ block and interrupt;
 *   - ATA/ATAPI-6 compliance (word 80 bits 1-6), and the integrity word 255 (signature A5h,
 *     checksum making all 512 bytes sum to zero), which Linux checks when present.
 */
import {
  ATA_ID, ATA_ID_ADD_DRAT, ATA_ID_ADD_RZAT, ATA_ID_CAP_DMA, ATA_ID_CAP_LBA, ATA_ID_CS2_FLUSH, ATA_ID_CS2_FLUSH_EXT,
  ATA_ID_CS2_LBA48, ATA_ID_CS2_VALID, ATA_ID_DSM_TRIM, ATA_ID_INTEGRITY_SIG, ATA_LBA28_LIMIT,
} from '../../../shared/public/hw/ata.ts';

/** 512-byte blocks of TRIM ranges one DATA SET MANAGEMENT command may carry (64 ranges each). */
export const DSM_MAX_BLOCKS = 8;

export interface IdentifyOptions {
  sectors: number;
  serial: string;
  model: string;
  firmware: string;
  trim: boolean;
}

export function buildIdentify(o: IdentifyOptions): Uint8Array {
  const bytes = new Uint8Array(ATA_ID.WORDS * 2);
  const w = (i: number, v: number) => { bytes[2 * i] = v & 0xff; bytes[2 * i + 1] = (v >>> 8) & 0xff; };
  // ATA strings: space-padded, two characters per word, the first in the high byte.
  const str = (i: number, len: number, s: string) => {
    const padded = s.padEnd(len, ' ').slice(0, len);
    for (let c = 0; c < len; c += 2) w(i + c / 2, (padded.charCodeAt(c) << 8) | padded.charCodeAt(c + 1));
  };
  const lba28 = Math.min(o.sectors, ATA_LBA28_LIMIT - 1);
  // Obsolete CHS geometry, 16 heads × 63 sectors, only so that old readers see something sane.
  const cyls = Math.min(16383, Math.floor(o.sectors / (16 * 63)));
  w(ATA_ID.CONFIG, 0x0040);             // fixed device, not removable
  w(ATA_ID.CYLS, cyls);
  w(ATA_ID.HEADS, 16);
  w(ATA_ID.SECTORS, 63);
  str(ATA_ID.SERNO, ATA_ID.SERNO_LEN, o.serial);
  str(ATA_ID.FW_REV, ATA_ID.FW_REV_LEN, o.firmware);
  str(ATA_ID.PROD, ATA_ID.PROD_LEN, o.model);
  w(ATA_ID.MAX_MULTSECT, 0x8000);        // bit 15 set by the standard; no multiple mode
  w(ATA_ID.CAPABILITY, ATA_ID_CAP_LBA | ATA_ID_CAP_DMA);
  w(ATA_ID.FIELD_VALID, 0x0002);         // words 64-70 valid
  w(ATA_ID.LBA_CAPACITY, lba28 & 0xffff);
  w(ATA_ID.LBA_CAPACITY + 1, lba28 >>> 16);
  w(ATA_ID.MWDMA_MODES, 0x0407);         // modes 0-2 supported, mode 2 selected
  w(ATA_ID.PIO_MODES, 0x0003);           // PIO 3 and 4
  if (o.trim) w(ATA_ID.ADDITIONAL_SUPP, ATA_ID_ADD_DRAT | ATA_ID_ADD_RZAT);
  w(ATA_ID.MAJOR_VER, 0x007e);           // ATA-1 .. ATA/ATAPI-6
  const cs2 = ATA_ID_CS2_LBA48 | ATA_ID_CS2_FLUSH | ATA_ID_CS2_FLUSH_EXT;
  w(ATA_ID.COMMAND_SET_2, ATA_ID_CS2_VALID | cs2);
  w(ATA_ID.CFSSE, ATA_ID_CS2_VALID);
  w(ATA_ID.CFS_ENABLE_2, cs2);
  w(ATA_ID.CSF_DEFAULT, ATA_ID_CS2_VALID);
  for (let i = 0; i < 4; i++) w(ATA_ID.LBA_CAPACITY_2 + i, Math.floor(o.sectors / 2 ** (16 * i)) & 0xffff);
  if (o.trim) {
    w(ATA_ID.DSM_MAX_BLOCKS, DSM_MAX_BLOCKS);
    w(ATA_ID.DATA_SET_MGMT, ATA_ID_DSM_TRIM);
  }
  let sum = ATA_ID_INTEGRITY_SIG;
  for (let i = 0; i < 510; i++) sum += bytes[i];
  w(ATA_ID.INTEGRITY, ATA_ID_INTEGRITY_SIG | (((256 - (sum & 0xff)) & 0xff) << 8));
  return bytes;
}
