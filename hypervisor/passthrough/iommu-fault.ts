/*
 * Reporting a passed-through device's DMA that the IOMMU refused.
 *
 * Xen: xen/drivers/passthrough/vtd/iommu.c (iommu_page_fault → iommu_page_fault_do_one:
 * "[VT-D]DMAR:[DMA Read] Request device [...] fault addr ..."), printed at a guest-rate-limited
 * log level (XENLOG_G_WARNING); here the first IOMMU_FAULTS_LOGGED per device are logged and the
 * rest only counted
 * (PD.FAULTS, ./pci.ts), so a guest can make faults but not flood the host's log.
 *
 * Apart from the hypercall table because it is the doorbell's cold path: the table keeps only
 * the check of the status.
 */
import { PCI_DEVICES } from '../../shared/public/hw/sc.ts';
import type { HypervisorState } from '../state.ts';
import { PD, pciWord } from './pci.ts';

/** IOMMU faults logged per device; the rest are counted only. */
const IOMMU_FAULTS_LOGGED = 8;

/* `dev`, owned by `domid`, faulted at `faultGfn` while serving the command at `cmdGfn`. */
export function report_iommu_fault(hv: HypervisorState, dev: number, domid: number, cmdGfn: number, faultGfn: number, xenLog: (text: string) => void): void {
  const n = Atomics.load(hv.pci, pciWord(dev, PD.FAULTS));
  if (n > IOMMU_FAULTS_LOGGED) return;
  xenLog(`(XEN) [VT-D] DMAR: DMA ${faultGfn === cmdGfn ? 'read' : 'access'} fault from device ${PCI_DEVICES[dev]} `
    + `(owner d${domid}): address 0x${(faultGfn * 4096).toString(16)} (gfn ${faultGfn}) is not in d${domid}'s IOMMU table; nothing transferred`
    + (n === IOMMU_FAULTS_LOGGED ? ' (further faults from this device are counted, not logged)' : ''));
}
