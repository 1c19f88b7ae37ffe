/*
 * The ATA register interface of the emulated disk: what the guest's driver (domu/ide) and the
 * device model (dom0/device-models/ide) both program against.
 *
 * Not a Xen header: this is the PC platform an HVM guest sees, as QEMU emulates it (hw/ide/core.c,
 * hw/ide/piix.c, include/hw/ide/internal.h). Names and numbers follow the standard:
 *   [ATA-6]  T13/1410D, AT Attachment with Packet Interface - 6 (rev 3a): registers in clause 7,
 *            commands in clause 8, protocols in clause 9 (section numbers as v86's src/ide.js cites them);
 *   [ACS-2]  T13/2015-D, ATA/ATAPI Command Set - 2: DATA SET MANAGEMENT (TRIM) and its IDENTIFY words.
 * Linux's include/linux/ata.h uses the same names (ATA_CMD_*, ATA_ID_*), so a reader can look
 * them up there too.
 *
 * The device sits on the legacy primary channel, as a PIIX IDE function in compatibility mode
 * puts it: command block at 0x1F0-0x1F7, control block at 0x3F6, interrupt on ISA IRQ 14.
 * Only a master device (device 0) is present; LBA addressing only (see dom0/device-models/ide/core.ts).
 */

export const ATA_PRIMARY_CMD_BASE = 0x1f0;
export const ATA_PRIMARY_CTL_BASE = 0x3f6;
export const ATA_PRIMARY_IRQ = 14;

/*
 * Command block registers, by offset from the base ([ATA-6] clause 7). One port is two
 * registers when read and written (error/features, status/command). Declared once: the model
 * builds its dispatch table from this list and the driver takes its port numbers from it.
 */
export const ATA_CMD_BLOCK = [
  { off: 0, bytes: 2, read: 'data', write: 'data' },         // 7.6: 16-bit PIO data (32-bit too here)
  { off: 1, bytes: 1, read: 'error', write: 'features' },    // 7.9 Error / 7.10 Features
  { off: 2, bytes: 1, read: 'nsector', write: 'nsector' },   // 7.14 Sector Count
  { off: 3, bytes: 1, read: 'lbal', write: 'lbal' },         // 7.12 LBA Low (Sector Number)
  { off: 4, bytes: 1, read: 'lbam', write: 'lbam' },         // 7.13 LBA Mid (Cylinder Low)
  { off: 5, bytes: 1, read: 'lbah', write: 'lbah' },         // 7.11 LBA High (Cylinder High)
  { off: 6, bytes: 1, read: 'device', write: 'device' },     // 7.7 Device (Device/Head)
  { off: 7, bytes: 1, read: 'status', write: 'command' },    // 7.15 Status / 7.4 Command
] as const;
export type AtaRegister = (typeof ATA_CMD_BLOCK)[number]['read'] | (typeof ATA_CMD_BLOCK)[number]['write'];
/** Port offsets by register name, derived from the table. */
export const ATA_REG = Object.fromEntries(ATA_CMD_BLOCK.flatMap((r) => [[r.read, r.off], [r.write, r.off]])) as Readonly<Record<AtaRegister, number>>;

/* Control block: one port, Alternate Status when read, Device Control when written. */
export const ATA_CTL_ALTSTATUS = 0; // [ATA-6] 7.3: Status without clearing a pending interrupt
export const ATA_CTL_DEVCTL = 0;    // [ATA-6] 7.8

/* Status ([ATA-6] 7.15). DSC and CORR are obsolete/vendor bits this device never sets. */
export const ATA_BSY = 0x80;
export const ATA_DRDY = 0x40;
export const ATA_DF = 0x20;
export const ATA_DRQ = 0x08;
export const ATA_ERR = 0x01;

/* Error ([ATA-6] 7.9). */
export const ATA_ABRT = 0x04;  // command aborted: unsupported, invalid parameters, or failed
export const ATA_IDNF = 0x10;
export const ATA_UNC = 0x40;

/* Device register ([ATA-6] 7.7): bit 6 selects LBA addressing, bit 4 the device (0 = master). */
export const ATA_LBA = 0x40;
export const ATA_DEV1 = 0x10;
export const ATA_DEVICE_OBS = 0xa0; // bits 7 and 5, obsolete, traditionally written as ones

/* Device Control ([ATA-6] 7.8). */
export const ATA_NIEN = 0x02;  // 1: the device's INTRQ is disabled
export const ATA_SRST = 0x04;  // software reset while 1
export const ATA_HOB = 0x80;   // read the "previous" (high-order) bytes of a 48-bit command

/* Commands ([ATA-6] clause 8, section numbers in dom0/device-models/ide/commands.ts; [ACS-2] DATA SET MANAGEMENT). */
export const ATA_CMD_DSM = 0x06;              // DATA SET MANAGEMENT (TRIM), DMA data-out, 48-bit
export const ATA_CMD_READ_PIO = 0x20;         // 8.27 READ SECTORS
export const ATA_CMD_READ_PIO_EXT = 0x24;     // 8.28 READ SECTORS EXT
export const ATA_CMD_READ_DMA_EXT = 0x25;     // 8.25 READ DMA EXT
export const ATA_CMD_WRITE_PIO = 0x30;        // 8.62 WRITE SECTORS
export const ATA_CMD_WRITE_PIO_EXT = 0x34;    // 8.63 WRITE SECTORS EXT
export const ATA_CMD_WRITE_DMA_EXT = 0x35;    // 8.59 WRITE DMA EXT
export const ATA_CMD_READ_DMA = 0xc8;         // 8.24 READ DMA
export const ATA_CMD_WRITE_DMA = 0xca;        // 8.58 WRITE DMA
export const ATA_CMD_FLUSH = 0xe7;            // 8.9 FLUSH CACHE
export const ATA_CMD_FLUSH_EXT = 0xea;        // 8.10 FLUSH CACHE EXT
export const ATA_CMD_ID_ATA = 0xec;           // 8.15 IDENTIFY DEVICE

/* DATA SET MANAGEMENT: Features bit 0 = TRIM; the data is 512-byte blocks of 8-byte entries. */
export const ATA_DSM_TRIM = 0x01;
export const ATA_DSM_RANGE_BYTES = 8;          // LBA in bits 47:0, sector count in bits 63:48 (0 = unused)
export const ATA_DSM_RANGE_MAX_SECTORS = 0xffff;

/* Transfer limits: a 28-bit command moves up to 256 sectors (count 0 = 256), a 48-bit up to 65536. */
export const ATA_SECT_SIZE = 512;
export const ATA_MAX_SECTORS_28 = 256;
export const ATA_MAX_SECTORS_48 = 65536;
export const ATA_LBA28_LIMIT = 1 << 28;

/*
 * IDENTIFY DEVICE data ([ATA-6] 8.15; [ACS-2] for words 69, 105, 169), word indices as Linux's
 * ATA_ID_*: 256 little-endian words, strings as big-endian byte pairs.
 */
export const ATA_ID = {
  CONFIG: 0,            // bit 15 clear: an ATA device
  CYLS: 1, HEADS: 3, SECTORS: 6, // obsolete CHS geometry, still filled for old readers
  SERNO: 10, SERNO_LEN: 20,
  FW_REV: 23, FW_REV_LEN: 8,
  PROD: 27, PROD_LEN: 40,
  MAX_MULTSECT: 47,
  CAPABILITY: 49,       // bit 9 LBA, bit 8 DMA
  FIELD_VALID: 53,      // bit 1: words 64-70 valid, bit 2: word 88 valid
  LBA_CAPACITY: 60,     // words 60-61: sectors addressable by 28-bit commands
  MWDMA_MODES: 63,      // supported modes in bits 0-2, selected in bits 8-10
  PIO_MODES: 64,
  ADDITIONAL_SUPP: 69,  // [ACS-2]: bit 14 deterministic read after TRIM, bit 5 reads zeros after TRIM
  MAJOR_VER: 80,
  COMMAND_SET_1: 82, COMMAND_SET_2: 83, CFSSE: 84,
  CFS_ENABLE_1: 85, CFS_ENABLE_2: 86, CSF_DEFAULT: 87,
  LBA_CAPACITY_2: 100,  // words 100-103: sectors addressable by 48-bit commands
  DSM_MAX_BLOCKS: 105,  // [ACS-2]: 512-byte blocks of ranges one DATA SET MANAGEMENT may carry
  DATA_SET_MGMT: 169,   // [ACS-2]: bit 0 TRIM supported
  INTEGRITY: 255,       // 0xA5 in the low byte, checksum in the high byte (IDENTIFY's integrity word)
  WORDS: 256,
} as const;
export const ATA_ID_CAP_LBA = 1 << 9;
export const ATA_ID_CAP_DMA = 1 << 8;
export const ATA_ID_CS2_LBA48 = 1 << 10;       // words 83/86: 48-bit Address feature set
export const ATA_ID_CS2_FLUSH = 1 << 12;       // FLUSH CACHE
export const ATA_ID_CS2_FLUSH_EXT = 1 << 13;   // FLUSH CACHE EXT
export const ATA_ID_CS2_VALID = 1 << 14;       // words 83, 84, 87: bit 14 one, bit 15 zero
export const ATA_ID_DSM_TRIM = 1 << 0;
export const ATA_ID_ADD_DRAT = 1 << 14;
export const ATA_ID_ADD_RZAT = 1 << 5;
export const ATA_ID_INTEGRITY_SIG = 0xa5;
