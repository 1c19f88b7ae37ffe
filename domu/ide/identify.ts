/*
 * Reading IDENTIFY DEVICE: what the guest learns about its disk from the disk itself.
 *
 * Linux: include/linux/ata.h (ata_id_has_lba, ata_id_has_lba48, ata_id_n_sectors,
 * ata_id_has_trim) and libata-core.c ata_dev_configure. The standard: [ATA-6] 8.15 and
 * [ACS-2] for TRIM; word indices in shared/public/hw/ata.ts. The model's side, which writes
 * these words, is dom0/device-models/ide/identify.ts.
 */
import {
  ATA_ID, ATA_ID_CAP_DMA, ATA_ID_CAP_LBA, ATA_ID_CS2_LBA48, ATA_ID_DSM_TRIM,
} from '../../shared/public/hw/ata.ts';

/** What IDENTIFY DEVICE said. */
export interface IdeIdentity {
  /** Capacity in sectors (words 100-103 when 48-bit addressing is supported, else 60-61). */
  sectors: number;
  lba48: boolean;
  dma: boolean;
  trim: boolean;
  /** 512-byte blocks of TRIM ranges one DATA SET MANAGEMENT command may carry (word 105). */
  trimBlocks: number;
  model: string;
  serial: string;
}

/** Parse the 512 bytes of IDENTIFY DEVICE data. Throws if the disk cannot do LBA (this driver needs it). */
export function parseIdentify(raw: Uint8Array): IdeIdentity {
  const w = (i: number) => raw[2 * i] | (raw[2 * i + 1] << 8);
  // ATA strings hold two characters per word, the first in the high byte.
  const str = (i: number, len: number) => {
    let s = '';
    for (let c = 0; c < len / 2; c++) s += String.fromCharCode(raw[2 * (i + c) + 1], raw[2 * (i + c)]);
    return s.trim();
  };
  if ((w(ATA_ID.CAPABILITY) & ATA_ID_CAP_LBA) === 0) throw new Error('IDE: the disk does not do LBA addressing');
  const lba48 = (w(ATA_ID.COMMAND_SET_2) & ATA_ID_CS2_LBA48) !== 0;
  let sectors = w(ATA_ID.LBA_CAPACITY) + w(ATA_ID.LBA_CAPACITY + 1) * 2 ** 16;
  if (lba48) {
    sectors = 0;
    for (let i = 3; i >= 0; i--) sectors = sectors * 2 ** 16 + w(ATA_ID.LBA_CAPACITY_2 + i);
  }
  const trim = (w(ATA_ID.DATA_SET_MGMT) & ATA_ID_DSM_TRIM) !== 0;
  return {
    sectors,
    lba48,
    dma: (w(ATA_ID.CAPABILITY) & ATA_ID_CAP_DMA) !== 0,
    trim,
    trimBlocks: trim ? w(ATA_ID.DSM_MAX_BLOCKS) : 0,
    model: str(ATA_ID.PROD, ATA_ID.PROD_LEN),
    serial: str(ATA_ID.SERNO, ATA_ID.SERNO_LEN),
  };
}
