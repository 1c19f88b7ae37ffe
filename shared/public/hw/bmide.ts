/*
 * Bus-master IDE: the PIIX DMA engine beside the ATA registers, and its descriptor table in
 * guest memory. What the guest's driver (domu/ide) builds and the device model
 * (dom0/device-models/ide/bmdma.ts) walks.
 *
 * Not a Xen header: the PC platform, as QEMU emulates it (hw/ide/pci.c bmdma_*, hw/ide/piix.c).
 *   [BMIDE]  "Programming Interface for Bus Master IDE Controller", rev 1.0 (Intel, 1994;
 *            SFF-8038i): the register layout, the Physical Region Descriptor, the standard
 *            programming sequence, and the table of Interrupt/Active outcomes. (Cited by name:
 *            section numbers differ between the Intel and SFF editions.)
 *
 * Registers of the primary channel, in the I/O BAR (PCI BAR4 of the IDE function). ringvisor
 * has no PCI configuration space, so the guest finds the BAR where SeaBIOS assigns it on QEMU's
 * i440FX machine, 0xC000: a platform constant, like the legacy task-file ports.
 */
import { defineStruct } from '../struct.ts';

export const PIIX_BMIDE_BASE = 0xc000;

/* [BMIDE] register layout: offsets from the base for the primary channel (the secondary's are +8). */
export const BM_CMD = 0;     // 1 byte, R/W
export const BM_STATUS = 2;  // 1 byte, R/W-1-to-clear
export const BM_PRDT = 4;    // 4 bytes, R/W: descriptor table address, dword aligned
export const BM_REGS_BYTES = 8;

/* Command register. */
export const BM_CMD_START = 0x01;  // 0 → 1 starts the engine, 1 → 0 stops it
/** Read/Write control: 1 = the bus master WRITES memory (a device read, READ DMA); 0 = it reads memory. */
export const BM_CMD_WRITE = 0x08;

/* Status register. */
export const BM_STATUS_ACTIVE = 0x01; // set by start, cleared when the table is exhausted or on error
export const BM_STATUS_ERROR = 0x02;  // a transfer to or from memory failed; write 1 to clear
export const BM_STATUS_INTR = 0x04;   // the device raised its interrupt line; write 1 to clear
export const BM_STATUS_DRV0_DMA = 0x20; // "drive 0 is DMA capable" (set by firmware, kept)
export const BM_STATUS_DRV1_DMA = 0x40;
export const BM_STATUS_SIMPLEX = 0x80;

/*
 * Physical Region Descriptor ([BMIDE]): each entry names one contiguous physical region.
 *
 *   struct prd {
 *       uint32_t addr;    // @0 physical (here: guest-physical) address, bit 0 must be 0
 *       uint16_t count;   // @4 byte count, even; 0 means 64 KiB
 *       uint16_t flags;   // @6 bit 15: EOT, the last entry of the table
 *   };
 *
 * "A region may not cross a 64K boundary", and "the descriptor table must be dword aligned and
 * must not cross a 64K boundary in memory" ([BMIDE]): a table therefore holds at most
 * 8192 entries, and the walk ends at the 64 KiB line at the latest.
 */
export const prd = defineStruct('prd', 8, { addr: ['u32', 0], count: ['u16', 4], flags: ['u16', 6] });
export const PRD_BYTES = prd.size;
export const PRD_EOT = 0x8000;
export const PRD_MAX_REGION = 0x10000;
export const PRD_BOUNDARY = 0x10000;
export const PRD_MAX_ENTRIES = PRD_BOUNDARY / PRD_BYTES;
