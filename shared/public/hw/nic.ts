/*
 * The host's network card: a simple DMA-capable NIC the hypervisor owns and assigns to one domain
 * (Dom0 by default), its control block and its descriptor rings. What the driver
 * (shared/kernel/drivers/nic.ts) builds and the hardware (hypervisor/passthrough/nic.ts) reads.
 *
 * Not a Xen header: a device, modelled on the e1000's shape (Intel 8254x SDM, §3.2 receive and
 * §3.3 transmit descriptor rings: a ring of descriptors in the driver's memory, the driver moving
 * a tail index, the device a head index, a Descriptor Done bit written back, End Of Packet on a
 * frame's last buffer, an interrupt cause register) cut down to what the bridge needs: no
 * offloads, one ring each way, one page per descriptor ring. What is Xen's is how it is reached:
 * the device is assigned with `pci = [...]` (XEN_DOMCTL_assign_device), and every address it is
 * given is translated by the IOMMU through the owner's P2M, so it reaches only the owner's frames.
 * Its interrupt is an event channel of the owner (Xen delivers a passed-through device's MSI to a
 * PV domain as a pirq bound to an event channel).
 *
 * Registers. A real NIC's are MMIO; here the driver keeps them in a control block, one page of its
 * memory, and rings the doorbell (the pci_doorbell hypercall) with that page's bus address when it
 * moved a tail or changed a setting; the device reads the block by DMA and writes its heads,
 * status and interrupt causes back into it the same way. Each field is one aligned 32-bit word,
 * written by one side only (marked), read with Atomics by the other.
 *
 *   struct nic_ctrl {            // one page in the owner's memory
 *       uint32_t magic;          // @0   drv: NIC_MAGIC once the block is set up
 *       uint32_t irq_port;       // @4   drv: the owner's event channel the device raises
 *       uint32_t tx_ring;        // @8   drv: bus address (gfn) of the TX descriptor page
 *       uint32_t rx_ring;        // @12  drv: bus address (gfn) of the RX descriptor page
 *       uint32_t tx_tail;        // @16  drv: TDT, free-running; descriptors before it are to send
 *       uint32_t rx_tail;        // @20  drv: RDT, free-running; descriptors before it may be filled
 *       uint32_t tx_head;        // @24  dev: TDH, free-running; the next descriptor it sends
 *       uint32_t rx_head;        // @28  dev: RDH, free-running; the next descriptor it fills
 *       uint32_t status;         // @32  dev: NIC_STATUS_*
 *       uint32_t wire_port;      // @36  drv: the UDP port its wire should use (0: any); dev: the one it got
 *       uint32_t peer_port;      // @40  drv: a link partner's UDP port to add (0: none); see below
 *       uint32_t icr;            // @44  dev ORs NIC_ICR_* in; drv takes them with an exchange
 *       uint32_t rx_missed;      // @48  dev: frames dropped for want of a descriptor (e1000's MPC)
 *       uint32_t tx_sent;        // @52  dev: frames sent (e1000's GPTC)
 *       uint32_t rx_received;    // @56  dev: frames received (e1000's GPRC)
 *   };
 *   struct nic_desc {            // NIC_RING_SIZE of them fill a descriptor page; 16 bytes each
 *       uint32_t gfn;            // @0  drv: the buffer's bus address
 *       uint16_t offset;         // @4  drv: where in that page the buffer starts
 *       uint16_t len;            // @6  drv: TX: bytes to send; RX: the buffer's size. dev (RX): bytes written
 *       uint16_t status;         // @8  dev: NIC_DESC_DD, with EOP / ERR_IOMMU
 *       uint16_t flags;          // @10 drv (TX): NIC_DESC_EOP on a frame's last buffer
 *       uint32_t pad;            // @12
 *   };
 *
 * The wire. The card's port is a UDP socket on 127.0.0.1, one Ethernet frame per datagram (the
 * framing of QEMU's `-netdev dgram`), so two hosts' cards on one machine share a segment. A cable
 * has no address to configure; a UDP socket does, so the driver names a link partner (peer_port)
 * as an administrator would plug a cable, and the card also learns any loopback sender.
 */
import { defineStruct } from '../struct.ts';

export const nic_ctrl = defineStruct('nic_ctrl', 60, {
  magic: ['u32', 0], irq_port: ['u32', 4], tx_ring: ['u32', 8], rx_ring: ['u32', 12], tx_tail: ['u32', 16],
  rx_tail: ['u32', 20], tx_head: ['u32', 24], rx_head: ['u32', 28], status: ['u32', 32], wire_port: ['u32', 36],
  peer_port: ['u32', 40], icr: ['u32', 44], rx_missed: ['u32', 48], tx_sent: ['u32', 52], rx_received: ['u32', 56],
});
/** Each control field's index as a 32-bit word of the page (offset / 4), for Atomics. */
export const NIC_CTRL_WORD = Object.fromEntries(
  Object.entries(nic_ctrl.fields).map(([name, [, off]]) => [name, off >> 2]),
) as { readonly [K in keyof typeof nic_ctrl.fields]: number };

export const nic_desc = defineStruct('nic_desc', 16, {
  gfn: ['u32', 0], offset: ['u16', 4], len: ['u16', 6], status: ['u16', 8], flags: ['u16', 10],
});
export const NIC_DESC_BYTES = 16;
/** Descriptors per ring: one page of them. */
export const NIC_RING_SIZE = 4096 / NIC_DESC_BYTES; // 256

export const NIC_MAGIC = 0x4e494331; // "NIC1"

/* Descriptor status (written by the device) and flags (by the driver). */
export const NIC_DESC_DD = 0x01;        // Descriptor Done
export const NIC_DESC_EOP = 0x02;       // End Of Packet: a frame's last buffer
/** The buffer's address is not in the owner's IOMMU table: nothing was read or written there. */
export const NIC_DESC_ERR_IOMMU = 0x80;
/** RX: the frame did not fit the buffers the driver had given; it was dropped. */
export const NIC_DESC_ERR_LEN = 0x40;

/* status */
export const NIC_STATUS_LINK_UP = 0x01;

/* icr: interrupt causes (e1000's names) */
export const NIC_ICR_TXDW = 0x01;       // transmit descriptors written back
export const NIC_ICR_LSC = 0x04;        // link status change
export const NIC_ICR_RXT0 = 0x80;       // receive timer: frames are in the RX ring

/** The largest frame the card carries (a jumbo frame's worth of buffers at most). */
export const NIC_MAX_FRAME = 65535;
