/*
 * The Intel 82540EM (e1000) register interface and legacy descriptors: what the guest's driver
 * (domu/e1000) and the device model (dom0/device-models/e1000) both program against.
 *
 * Not a Xen header: this is the NIC an HVM guest sees with `vif = [ 'model=e1000' ]`, as QEMU
 * emulates it (hw/net/e1000.c, e1000_regs.h, e1000x_regs.h). Names follow Intel's 8254x Software
 * Developer's Manual [SDM] and Linux's drivers/net/ethernet/intel/e1000 (E1000_CTRL, E1000_RDT...),
 * so a reader can look them up in either.
 *
 * BAR0 is 128 KiB of 32-bit little-endian registers (only 4-byte accesses). Where it sits and which
 * interrupt line it uses would come from PCI configuration space, programmed by hvmloader (BARs in
 * the PCI hole below 4 GiB, INTx routed to ISA IRQs 5, 10, 11). ringvisor has no PCI config space,
 * so the platform places NIC n at E1000_MMIO_BASE + n × E1000_MMIO_SIZE on E1000_IRQS[n], and the
 * toolstack tells the guest how many there are on its command line (shared/public/cmdline.ts), as
 * firmware tables would.
 */
import { defineStruct } from '../struct.ts';

export const E1000_VENDOR_ID = 0x8086;
export const E1000_DEV_ID_82540EM = 0x100e;

/** BAR0 size (QEMU's PNPMMIO_SIZE). */
export const E1000_MMIO_SIZE = 0x20000;
/** NIC 0's BAR0, in the PCI hole where hvmloader starts placing BARs. */
export const E1000_MMIO_BASE = 0xf0000000;
/** ISA IRQ of NIC n (hvmloader's PCI link routing: 5, 10, 11), for at most this many NICs. */
export const E1000_IRQS = [11, 10, 5] as const;
export const E1000_MAX_NICS = E1000_IRQS.length;

export function e1000MmioBase(nic: number): number {
  return E1000_MMIO_BASE + nic * E1000_MMIO_SIZE;
}

/* Register offsets in BAR0 ([SDM] 13.4; QEMU e1000_regs.h). */
export const E1000_CTRL = 0x0000;
export const E1000_STATUS = 0x0008;
export const E1000_EECD = 0x0010;
export const E1000_EERD = 0x0014;
export const E1000_MDIC = 0x0020;
export const E1000_ICR = 0x00c0;
export const E1000_ITR = 0x00c4;
export const E1000_ICS = 0x00c8;
export const E1000_IMS = 0x00d0;
export const E1000_IMC = 0x00d8;
export const E1000_RCTL = 0x0100;
export const E1000_TCTL = 0x0400;
export const E1000_TIPG = 0x0410;
export const E1000_RDBAL = 0x2800;
export const E1000_RDBAH = 0x2804;
export const E1000_RDLEN = 0x2808;
export const E1000_RDH = 0x2810;
export const E1000_RDT = 0x2818;
export const E1000_RDTR = 0x2820;
export const E1000_RADV = 0x282c;
export const E1000_TDBAL = 0x3800;
export const E1000_TDBAH = 0x3804;
export const E1000_TDLEN = 0x3808;
export const E1000_TDH = 0x3810;
export const E1000_TDT = 0x3818;
export const E1000_TIDV = 0x3820;
export const E1000_TADV = 0x382c;
/** Statistics block: 0x4000-0x40FF, most of them clear-on-read ([SDM] 13.7). */
export const E1000_CRCERRS = 0x4000;
export const E1000_MPC = 0x4010;     // missed packets (no descriptor)
export const E1000_RNBC = 0x40a0;    // receive no buffers count
export const E1000_ROC = 0x40ac;     // receive oversize count
export const E1000_GPRC = 0x4074;    // good packets received
export const E1000_GPTC = 0x4080;    // good packets transmitted
export const E1000_GORCL = 0x4088;   // good octets received (low)
export const E1000_GOTCL = 0x4090;   // good octets transmitted (low)
export const E1000_TPR = 0x40d0;     // total packets received
export const E1000_TPT = 0x40d4;     // total packets transmitted
export const E1000_STATS_END = 0x4100;
export const E1000_MTA = 0x5200;     // multicast table, 128 words
export const E1000_MTA_WORDS = 128;
export const E1000_RAL0 = 0x5400;
export const E1000_RAH0 = 0x5404;

/* Bits. */
export const E1000_CTRL_SLU = 0x40;            // set link up
export const E1000_CTRL_RST = 0x04000000;      // device reset, self-clearing
export const E1000_STATUS_FD = 0x1;
export const E1000_STATUS_LU = 0x2;
export const E1000_STATUS_SPEED_1000 = 0x80;
export const E1000_RCTL_EN = 0x2;
export const E1000_RCTL_SBP = 0x4;             // store bad packets
export const E1000_RCTL_UPE = 0x8;             // unicast promiscuous
export const E1000_RCTL_MPE = 0x10;            // multicast promiscuous
export const E1000_RCTL_LPE = 0x20;            // long packets
export const E1000_RCTL_RDMTS_SHIFT = 8;       // free-descriptor threshold: 1/2, 1/4, 1/8 of the ring
export const E1000_RCTL_MO_SHIFT = 12;         // multicast offset (which 12 address bits index MTA)
export const E1000_RCTL_BAM = 0x8000;          // accept broadcast
export const E1000_RCTL_BSIZE_SHIFT = 16;      // 00 = 2048 (or 16384 with BSEX), 01 = 1024, 10 = 512, 11 = 256
export const E1000_RCTL_BSEX = 0x02000000;     // buffer size × 16 (01 = 16384, 10 = 8192, 11 = 4096)
export const E1000_RCTL_SECRC = 0x04000000;    // strip the CRC
export const E1000_TCTL_EN = 0x2;
export const E1000_TCTL_PSP = 0x8;             // pad short packets
export const E1000_RAH_AV = 0x80000000;        // receive address valid

/* ICR / ICS / IMS / IMC bits ([SDM] 13.4.17). */
export const E1000_ICR_TXDW = 0x01;            // a descriptor with RS was written back
export const E1000_ICR_TXQE = 0x02;            // the transmit queue ran empty
export const E1000_ICR_LSC = 0x04;             // link status change
export const E1000_ICR_RXSEQ = 0x08;
export const E1000_ICR_RXDMT0 = 0x10;          // free rx descriptors fell to the RDMTS threshold
export const E1000_ICR_RXO = 0x40;             // receiver overrun: a frame was missed
export const E1000_ICR_RXT0 = 0x80;            // a frame was received
export const E1000_ICR_INT_ASSERTED = 0x80000000;

/* EERD: reading the EEPROM a word at a time ([SDM] 13.4.4; QEMU flash_eerd_read). */
export const E1000_EERD_START = 0x1;
export const E1000_EERD_DONE = 0x10;
export const E1000_EERD_ADDR_SHIFT = 8;
export const E1000_EERD_DATA_SHIFT = 16;
/** EEPROM words: 0-2 the MAC (low byte first), 0x3F the checksum making words 0..0x3F sum to 0xBABA. */
export const EEPROM_WORDS = 64;
export const EEPROM_CHECKSUM_REG = 0x3f;
export const EEPROM_SUM = 0xbaba;
/** EECD bits a driver polls before using EERD (EEPROM present, access granted). */
export const E1000_EECD_PRES = 0x100;
export const E1000_EECD_GNT = 0x80;

/*
 * Legacy receive descriptor ([SDM] 3.2.3), 16 bytes, written back by the device:
 *   struct e1000_rx_desc {
 *       uint64_t buffer_addr;  // @0  guest-physical address of the buffer
 *       uint16_t length;       // @8  bytes the device put there
 *       uint16_t csum;         // @10 packet checksum
 *       uint8_t  status;       // @12 DD, EOP, ...
 *       uint8_t  errors;       // @13
 *       uint16_t special;      // @14 VLAN tag
 *   };
 */
export const e1000_rx_desc = defineStruct('e1000_rx_desc', 16, {
  buffer_addr: ['u64', 0],
  length: ['u16', 8],
  csum: ['u16', 10],
  status: ['u8', 12],
  errors: ['u8', 13],
  special: ['u16', 14],
});
export const E1000_RXD_STAT_DD = 0x01;   // descriptor done
export const E1000_RXD_STAT_EOP = 0x02;  // end of packet
export const E1000_RXD_STAT_IXSM = 0x04; // ignore checksum indication
export const E1000_RXD_STAT_VP = 0x08;

/*
 * Legacy transmit descriptor ([SDM] 3.3.3), 16 bytes, written by the driver; the device writes
 * back only `status` (DD), and only if RS or RPS was set:
 *   struct e1000_tx_desc {
 *       uint64_t buffer_addr;  // @0  guest-physical address of the data
 *       uint16_t length;       // @8  bytes in this descriptor
 *       uint8_t  cso;          // @10 checksum offset
 *       uint8_t  cmd;          // @11 EOP, IFCS, IC, RS, RPS, DEXT (0: legacy), VLE, IDE
 *       uint8_t  status;       // @12 DD
 *       uint8_t  css;          // @13 checksum start
 *       uint16_t special;      // @14
 *   };
 */
export const e1000_tx_desc = defineStruct('e1000_tx_desc', 16, {
  buffer_addr: ['u64', 0],
  length: ['u16', 8],
  cso: ['u8', 10],
  cmd: ['u8', 11],
  status: ['u8', 12],
  css: ['u8', 13],
  special: ['u16', 14],
});
export const E1000_DESC_SIZE = 16;
export const E1000_TXD_CMD_EOP = 0x01;
export const E1000_TXD_CMD_IFCS = 0x02;
export const E1000_TXD_CMD_IC = 0x04;
export const E1000_TXD_CMD_RS = 0x08;
export const E1000_TXD_CMD_RPS = 0x10;
export const E1000_TXD_CMD_DEXT = 0x20;
export const E1000_TXD_CMD_VLE = 0x40;
export const E1000_TXD_CMD_IDE = 0x80;
export const E1000_TXD_STAT_DD = 0x01;

/** Byte offsets of the fields the device model and driver touch in guest memory. */
export const RXD_LENGTH = e1000_rx_desc.fields.length[1];
export const RXD_STATUS = e1000_rx_desc.fields.status[1];
export const RXD_ERRORS = e1000_rx_desc.fields.errors[1];
export const TXD_LENGTH = e1000_tx_desc.fields.length[1];
export const TXD_CMD = e1000_tx_desc.fields.cmd[1];
export const TXD_STATUS = e1000_tx_desc.fields.status[1];

/** RDLEN / TDLEN keep bits 19:7 (QEMU set_dlen): a multiple of 128 bytes, 8 descriptors. */
export const E1000_DLEN_MASK = 0xfff80;
/** Largest frame the device takes from a tx ring (QEMU's tx.data buffer). */
export const E1000_TX_MAX_FRAME = 0x10000;

/** Rx buffer size for an RCTL value ([SDM] 13.4.22; QEMU e1000x_rxbufsize). */
export function e1000RxBufSize(rctl: number): number {
  const sz = (rctl >>> E1000_RCTL_BSIZE_SHIFT) & 3;
  if ((rctl & E1000_RCTL_BSEX) !== 0) return sz === 1 ? 16384 : sz === 2 ? 8192 : sz === 3 ? 4096 : 2048;
  return sz === 1 ? 1024 : sz === 2 ? 512 : sz === 3 ? 256 : 2048;
}

/*
 * Which register writes may be batched (QEMU e1000_mmio_setup): all of BAR0 is coalesced MMIO
 * except these, whose writes have side effects the guest waits on (MDIC completes a PHY access;
 * ICR/ICS/IMS/IMC change the interrupt line; TCTL and TDT start transmission). Reads are never
 * batched: the guest needs the value.
 */
export const E1000_SYNC_WRITE_REGS = [E1000_MDIC, E1000_ICR, E1000_ICS, E1000_IMS, E1000_IMC, E1000_TCTL, E1000_TDT] as const;

/** The coalesced zones of BAR0 as [offset, bytes] pairs: everything between the sync registers. */
export function e1000CoalescedZones(): [number, number][] {
  const zones: [number, number][] = [];
  let at = 0;
  for (const reg of [...E1000_SYNC_WRITE_REGS].sort((a, b) => a - b)) {
    if (reg > at) zones.push([at, reg - at]);
    at = reg + 4;
  }
  zones.push([at, E1000_MMIO_SIZE - at]);
  return zones;
}
