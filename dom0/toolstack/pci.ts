/*
 * `xl pci-list DOMAIN` and `xl pci-assignable-list`: which host devices a domain was given, and
 * which it could be given.
 *
 * Xen: tools/xl/xl_pci.c (main_pcilist: "Vdev Device" per device of the domain;
 * main_pciassignable_list: one BDF per line of the devices pciback holds for assignment) over
 * libxl_device_pci_list / libxl_device_pci_assignable_list. ringvisor's devices are the storage
 * controllers (shared/public/hw/sc.ts); the hypervisor's table says who owns each
 * (XEN_SYSCTL pci_info here). There is no guest PCI bus, so no Vdev; instead each row says what the
 * IOMMU saw: the device's DMA operations and its faults (DMA outside its owner's frames). A
 * device Dom0 owns and no Dom0 driver holds (PCI_HELD_BY_DOM0: its own controller and the network
 * card; ./config/passthrough.ts) is assignable.
 */
import type { Hypercalls } from '../../shared/public/hypercall.ts';
import { PCI_HELD_BY_DOM0, type PciDeviceInfo } from '../../shared/public/hw/sc.ts';
import { errnoName } from '../../shared/public/xen.ts';

export interface PciListRow {
  bdf: string;
  owner: number;
  dmaOps: number;
  faults: number;
}

async function info(hc: Hypercalls): Promise<PciDeviceInfo[]> {
  const all = await hc.sysctl_pci_info();
  if (typeof all === 'number') throw new Error(`cannot list PCI devices: ${errnoName(all)}`);
  return all;
}

/** The devices assigned to `domid` (Dom0: the ones it kept). */
export async function pciList(hc: Hypercalls, domid: number): Promise<PciListRow[]> {
  return (await info(hc)).filter((d) => d.owner === domid).map((d) => ({ bdf: d.bdf, owner: d.owner, dmaOps: d.dmaOps, faults: d.faults }));
}

/** The BDFs a config's pci = [...] may name now. */
export async function pciAssignableList(hc: Hypercalls): Promise<string[]> {
  return (await info(hc)).filter((d) => d.owner === 0 && !PCI_HELD_BY_DOM0.has(d.dev)).map((d) => d.bdf);
}
