/*
 * The ATA command set of the emulated disk, declared once: opcode, name, protocol, addressing,
 * and the section of the standard that specifies it.
 *
 * QEMU: hw/ide/core.c's ide_cmd_table (handler and flags per opcode). ringvisor keeps only the
 * data here; core.ts runs every command of a protocol the same way, so adding a read or write
 * variant is one row. An opcode not in the table is aborted: ABRT is what a device reports for a
 * command it does not support (each command's Error outputs in [ATA-6] clause 8).
 */
import {
  ATA_CMD_DSM, ATA_CMD_FLUSH, ATA_CMD_FLUSH_EXT, ATA_CMD_ID_ATA, ATA_CMD_READ_DMA, ATA_CMD_READ_DMA_EXT, ATA_CMD_READ_PIO,
  ATA_CMD_READ_PIO_EXT, ATA_CMD_WRITE_DMA, ATA_CMD_WRITE_DMA_EXT, ATA_CMD_WRITE_PIO, ATA_CMD_WRITE_PIO_EXT,
} from '../../../shared/public/hw/ata.ts';

/** [ATA-6] clause 9: the protocol a command's data (if any) moves by. */
export type Protocol = 'pio-in' | 'pio-out' | 'dma-in' | 'dma-out' | 'non-data';

export const COMMANDS = new Map<number, { name: string; proto: Protocol; lba48: boolean; spec: string }>([
  [ATA_CMD_READ_PIO, { name: 'READ SECTORS', proto: 'pio-in', lba48: false, spec: '[ATA-6] 8.34' }],
  [ATA_CMD_READ_PIO_EXT, { name: 'READ SECTORS EXT', proto: 'pio-in', lba48: true, spec: '[ATA-6] 8.35' }],
  [ATA_CMD_WRITE_PIO, { name: 'WRITE SECTORS', proto: 'pio-out', lba48: false, spec: '[ATA-6] 8.62' }],
  [ATA_CMD_WRITE_PIO_EXT, { name: 'WRITE SECTORS EXT', proto: 'pio-out', lba48: true, spec: '[ATA-6] 8.63' }],
  [ATA_CMD_READ_DMA, { name: 'READ DMA', proto: 'dma-in', lba48: false, spec: '[ATA-6] 8.26' }],
  [ATA_CMD_READ_DMA_EXT, { name: 'READ DMA EXT', proto: 'dma-in', lba48: true, spec: '[ATA-6] 8.25' }],
  [ATA_CMD_WRITE_DMA, { name: 'WRITE DMA', proto: 'dma-out', lba48: false, spec: '[ATA-6] 8.55' }],
  [ATA_CMD_WRITE_DMA_EXT, { name: 'WRITE DMA EXT', proto: 'dma-out', lba48: true, spec: '[ATA-6] 8.56' }],
  [ATA_CMD_ID_ATA, { name: 'IDENTIFY DEVICE', proto: 'pio-in', lba48: false, spec: '[ATA-6] 8.15' }],
  [ATA_CMD_FLUSH, { name: 'FLUSH CACHE', proto: 'non-data', lba48: false, spec: '[ATA-6] 8.12' }],
  [ATA_CMD_FLUSH_EXT, { name: 'FLUSH CACHE EXT', proto: 'non-data', lba48: true, spec: '[ATA-6] 8.13' }],
  [ATA_CMD_DSM, { name: 'DATA SET MANAGEMENT', proto: 'dma-out', lba48: true, spec: '[ACS-2] DATA SET MANAGEMENT' }],
]);
