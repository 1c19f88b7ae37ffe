/*
 * The host's storage controller: a simple DMA-capable disk controller the hypervisor owns and
 * assigns to one domain (Dom0 by default), with its command block and its PCI-style identity.
 * What the driver (shared/kernel/drivers/sc-disk.ts) builds and the hardware
 * (hypervisor/passthrough/storage-controller.ts) reads.
 *
 * Not a Xen header: a device, modelled on NVMe's shape (a command fetched by DMA from the driver's
 * memory, a namespace per disk, data moved by DMA to and from a list of physical regions, a
 * doorbell to start it) and cut down to one command at a time and no queues. What is Xen's is how
 * it is reached: the device is assigned with `pci = [...]` (xl.cfg; XEN_DOMCTL_assign_device), its
 * doorbell BAR is mapped into its owner, and every DMA address it is given is translated by the
 * IOMMU through the owner's P2M, so it reaches only the owner's frames (and frames the owner has
 * mapped by grant, which Xen also enters in the IOMMU: gnttab_map's iommu_legacy_map).
 *
 * Device addresses ("bus addresses") are guest-physical frame numbers of the owner: with an
 * IOMMU on, the owner programs its device with the addresses it knows, as an HVM guest with a
 * passed-through device does.
 *
 *   struct sc_command {            // one page in the owner's memory, fetched by DMA
 *       uint8_t  opcode;           // @0  SC_OP_*
 *       uint8_t  flags;            // @1
 *       uint16_t nsid;             // @2  namespace (disk) number
 *       uint16_t nr_prp;           // @4  entries in prp[] (≤ SC_MAX_PRP)
 *       uint16_t pad;              // @6
 *       uint64_t slba;             // @8  first 512-byte sector
 *       uint32_t nr_sectors;       // @16 for DEALLOCATE; READ/WRITE move the bytes the PRPs name
 *       int32_t  status;           // @20 written back by the device: SC_STATUS_*
 *       uint64_t result;           // @24 IDENTIFY: the namespace's sectors; DEALLOCATE: sectors done
 *       struct { uint32_t gfn; uint16_t offset; uint16_t len; } prp[SC_MAX_PRP];  // @32, 8 bytes each
 *   };
 *
 * A region may not cross its page: offset + len ≤ 4096, len ≥ 1.
 */
import { defineStruct } from '../struct.ts';

export const sc_command = defineStruct('sc_command', 32, {
  opcode: ['u8', 0], flags: ['u8', 1], nsid: ['u16', 2], nr_prp: ['u16', 4], slba: ['u64', 8],
  nr_sectors: ['u32', 16], status: ['i32', 20], result: ['u64', 24],
});
export const SC_PRP_OFFSET = 32;
export const SC_PRP_BYTES = 8;
export const SC_MAX_PRP = (4096 - SC_PRP_OFFSET) / SC_PRP_BYTES; // 508
export const prp_gfn = (dv: DataView, i: number) => dv.getUint32(SC_PRP_OFFSET + i * SC_PRP_BYTES, true);
export const prp_offset = (dv: DataView, i: number) => dv.getUint16(SC_PRP_OFFSET + i * SC_PRP_BYTES + 4, true);
export const prp_len = (dv: DataView, i: number) => dv.getUint16(SC_PRP_OFFSET + i * SC_PRP_BYTES + 6, true);
export function set_prp(dv: DataView, i: number, gfn: number, offset: number, len: number): void {
  const at = SC_PRP_OFFSET + i * SC_PRP_BYTES;
  dv.setUint32(at, gfn, true);
  dv.setUint16(at + 4, offset, true);
  dv.setUint16(at + 6, len, true);
}

/* Opcodes (NVMe's names where NVMe has the operation). */
export const SC_OP_IDENTIFY = 0x06;   // result = sectors; flags out: SC_NS_READONLY
export const SC_OP_FLUSH = 0x00;
export const SC_OP_WRITE = 0x01;
export const SC_OP_READ = 0x02;
export const SC_OP_DEALLOCATE = 0x09; // NVMe's Dataset Management / deallocate: reads back as zeros

export const SC_NS_READONLY = 0x01;

/* Status, as the device writes it back (positive, as NVMe's are; the doorbell's -errno is apart). */
export const SC_STATUS_OK = 0;
export const SC_STATUS_INVALID = 2;       // bad opcode, namespace, range or region
export const SC_STATUS_IO_ERROR = 3;      // the medium (the image file) failed
export const SC_STATUS_READONLY = 4;      // a write to a read-only namespace
/** A DMA address the IOMMU does not map for the owner: nothing was transferred. */
export const SC_STATUS_IOMMU_FAULT = 5;

/* Devices the hypervisor has, by index (a PCI bus:device.function in Xen's `pci = ['00:1f.2']`). */
export const PCI_STORAGE0 = 0;    // the storage controller every disk is attached to
export const PCI_STORAGE1 = 1;    // a second one, for passthrough to a guest or a driver domain
export const PCI_STORAGE2 = 2;    // a third: two storage driver domains, each with its own controller
export const PCI_NIC0 = 3;        // the network card behind the bridge's uplink (shared/public/hw/nic.ts)
export const PCI_DEVICES = ['0000:00:1f.0', '0000:00:1f.1', '0000:00:1f.2', '0000:00:19.0'] as const;
/** The devices that are storage controllers (this file's layout); the others have their own (hw/nic.ts). */
export const PCI_STORAGE_CONTROLLERS: readonly number[] = [PCI_STORAGE0, PCI_STORAGE1, PCI_STORAGE2];
/**
 * Devices a Dom0 driver holds, so not assignable (as a device bound to a Dom0 driver is not, until
 * pci-assignable-add), with why: the controller Dom0's blkback drives, and the card its bridge's
 * uplink drives (no DomU kernel has a driver for the card yet: a network driver domain is not built).
 */
export const PCI_HELD_BY_DOM0: ReadonlyMap<number, string> = new Map([
  [PCI_STORAGE0, "Dom0's blkback drives every disk Dom0 serves through it"],
  [PCI_NIC0, "Dom0's bridge drives its uplink through it, and no guest kernel has a driver for it yet"],
]);
export const PCI_NONE = -1;

/** What the hypervisor tells the control domain about a device. */
export interface PciDeviceInfo {
  dev: number;
  bdf: string;
  owner: number;
  /** IOMMU faults: DMA to an address the owner's IOMMU table does not map. */
  faults: number;
  lastFault: { domid: number; gfn: number } | null;
  dmaOps: number;
}
