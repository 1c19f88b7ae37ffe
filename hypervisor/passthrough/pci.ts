/*
 * Devices the hypervisor owns and assigns, and the IOMMU that confines their DMA.
 *
 * Xen: xen/drivers/passthrough/pci.c (the device list, assign/deassign: XEN_DOMCTL_assign_device,
 * reassign to the hardware domain when an owner dies) and iommu.c / vtd/iommu.c (one IOMMU
 * context per domain whose page tables translate the device's DMA addresses through that
 * domain's P2M; a DMA remapping fault, "[VT-D]DMAR:[DMA Write] Request device [..] fault addr
 * ..", when an address has no entry). Xen lets each domain with a device use its P2M as the IOMMU
 * table (iommu_hap_pt_share) and enters grant mappings in it too, so a driver may DMA straight
 * into a page another domain granted it, and nowhere else.
 *
 * Here the IOMMU table of a device IS its owner's P2M: translate(owner, gfn) reads the owner's
 * entry; an address with no present entry, or a device write to a read-only one, is a fault,
 * counted on the device, its address kept, logged once by the caller, and nothing is transferred.
 * Nothing in ringvisor lets DMA bypass this (there is no "IOMMU off"): a passed-through device is
 * safe to give a guest exactly because of it.
 *
 * State, in one SharedArrayBuffer every thread sees (hv.pci): per device, its owner, its fault
 * count and last fault, and its DMA operations; the storage controller's namespaces follow
 * (./storage-controller.ts). Assignment changes run in the control thread (domctls); the data path
 * (a doorbell, in the owner's vCPU thread) only reads the owner word.
 */
import { PCI_DEVICES, PCI_NONE, type PciDeviceInfo } from '../../shared/public/hw/sc.ts';
import { MAX_GUEST_PAGES, P2M_MFN_MASK, P2M_PRESENT, P2M_READONLY, P2M_RESERVED, type HypervisorState } from '../state.ts';

/** Per-device words. BELL and ARG: a NIC's doorbell (./nic.ts), rung in a vCPU thread, served in the control thread. */
export const PD = { OWNER: 0, FAULTS: 1, FAULT_GFN: 2, FAULT_DOM: 3, DMA_OPS: 4, BELL: 5, ARG: 6, WORDS: 8 } as const;
export const NR_PCI = PCI_DEVICES.length;
/** Where the storage controller's namespace table starts in hv.pci. */
export const PCI_NS_BASE = NR_PCI * PD.WORDS;

export function pciWord(dev: number, w: number): number {
  return dev * PD.WORDS + w;
}

/** At boot every device belongs to the hardware domain, Dom0. */
export function pci_init(hv: HypervisorState): void {
  for (let d = 0; d < NR_PCI; d++) {
    hv.pci.fill(0, d * PD.WORDS, (d + 1) * PD.WORDS);
    hv.pci[pciWord(d, PD.OWNER)] = 0;
  }
}

export function pci_owner(hv: HypervisorState, dev: number): number {
  return dev >= 0 && dev < NR_PCI ? Atomics.load(hv.pci, pciWord(dev, PD.OWNER)) : PCI_NONE;
}

/**
 * XEN_DOMCTL_assign_device: give `dev` to `domid`. Xen refuses a device another guest holds
 * (EBUSY): only a device with the hardware domain (or none) can be assigned.
 */
export function pci_assign(hv: HypervisorState, dev: number, domid: number): void {
  if (dev < 0 || dev >= NR_PCI) throw new Error(`no PCI device ${dev}`);
  const w = pciWord(dev, PD.OWNER);
  const cur = Atomics.load(hv.pci, w);
  if (cur !== 0 && cur !== PCI_NONE && cur !== domid) throw new Error(`${PCI_DEVICES[dev]} is assigned to domain ${cur}`);
  Atomics.store(hv.pci, w, domid);
}

/** XEN_DOMCTL_deassign_device, and what a domain's death does: the device goes back to Dom0. */
export function pci_reassign_to_dom0(hv: HypervisorState, domid: number): number[] {
  const back: number[] = [];
  for (let dev = 0; dev < NR_PCI; dev++) {
    if (Atomics.compareExchange(hv.pci, pciWord(dev, PD.OWNER), domid, 0) === domid && domid !== 0) back.push(dev);
  }
  return back;
}

/**
 * The IOMMU: the machine frame behind bus address `gfn` for a device owned by `owner`, or -1 (a
 * fault, recorded on the device). `deviceWrites`: the device writes that memory (a disk read).
 */
export function iommu_translate(hv: HypervisorState, dev: number, owner: number, gfn: number, deviceWrites: boolean): number {
  const e = gfn >= 0 && gfn < MAX_GUEST_PAGES ? Atomics.load(hv.p2m, owner * MAX_GUEST_PAGES + gfn) >>> 0 : 0;
  if ((e & P2M_PRESENT) === 0 || (e & P2M_RESERVED) !== 0 || (deviceWrites && (e & P2M_READONLY) !== 0)) {
    Atomics.add(hv.pci, pciWord(dev, PD.FAULTS), 1);
    Atomics.store(hv.pci, pciWord(dev, PD.FAULT_GFN), gfn | 0);
    Atomics.store(hv.pci, pciWord(dev, PD.FAULT_DOM), owner);
    return -1;
  }
  return e & P2M_MFN_MASK;
}


export function pci_info(hv: HypervisorState): PciDeviceInfo[] {
  return PCI_DEVICES.map((bdf, dev) => {
    const faults = Atomics.load(hv.pci, pciWord(dev, PD.FAULTS));
    return {
      dev, bdf, owner: Atomics.load(hv.pci, pciWord(dev, PD.OWNER)), faults,
      lastFault: faults > 0 ? { domid: Atomics.load(hv.pci, pciWord(dev, PD.FAULT_DOM)), gfn: Atomics.load(hv.pci, pciWord(dev, PD.FAULT_GFN)) >>> 0 } : null,
      dmaOps: Atomics.load(hv.pci, pciWord(dev, PD.DMA_OPS)),
    };
  });
}
