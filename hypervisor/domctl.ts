/*
 * The domctl dispatch: the privileged operations a vCPU of the control domain forwards to the
 * control thread, each run there against the host's list of domains.
 *
 * Xen: xen/common/domctl.c (do_domctl's switch), and the few sysctls that need the list of domains
 * (xen/common/sysctl.c: XEN_SYSCTL_getdomaininfolist, XEN_SYSCTL_physinfo). The caller's privilege
 * was checked in its own thread (hypervisor/hypercall.ts, as Xen's XSM hook runs before the
 * switch); what arrives here is only dispatched, its arguments checked, and answered.
 *
 * Apart from host.ts, which owns the domains' lifecycle, because this is a table of operations on
 * top of that lifecycle: each case calls one of the host's public methods, or one of the
 * hypervisor's mechanisms (passthrough, memory daemons, the scheduler). The host hands it the
 * little of its private records it needs as DomainRecords.
 *
 * Errors: the caller gets an errno and nothing else (Xen's domctl returns an int); the reason, in
 * words, goes to the hypervisor's log.
 */
import type { DomainConfig } from '../shared/public/hypercall.ts';
import type { SchedOp } from '../shared/public/sched.ts';
import { PCI_DEVICES } from '../shared/public/hw/sc.ts';
import { SHUTDOWN_NAMES, XEN_EINVAL, XEN_ESRCH, type ShutdownReason } from '../shared/public/xen.ts';
import { DomctlError, checkedSettings } from './domctl-checks.ts';
import type { Host } from './host.ts';
import type { PagingSettings, SharingSettings } from './mm/mm-daemons.ts';
import { MD, md } from './mm/mm-state.ts';
import { pci_assign, pci_info, pci_owner, pci_reassign_to_dom0 } from './passthrough/pci.ts';
import { sc_attach, sc_detach } from './passthrough/storage-controller.ts';
import { D } from './state.ts';

/** What the dispatch needs of the host's private records of its domains. */
export interface DomainRecords {
  /** The host has the domain (a shut-down one included). */
  exists(domid: number): boolean;
  /** Per vCPU, settles once its thread has loaded the kernel (or is gone); null if no such domain. */
  loaded(domid: number): Promise<void>[] | null;
  /** How many vCPU threads the domain has; -1 if no such domain. */
  vcpuThreads(domid: number): number;
  /** A line in the hypervisor's log. */
  log(line: string): void;
}

/** domctl from a privileged vCPU (the privilege check was made in the caller's thread). */
export async function do_domctl(host: Host, records: DomainRecords, op: string, args: unknown[]): Promise<unknown> {
  const domid = args[0] as number;
  try {
    switch (op) {
      case 'createdomain': return host.built(await host.createDomain(args[0] as DomainConfig));
      case 'destroydomain': await host.destroy(domid); return 0;
      case 'pausedomain': if (domid === 0) return -XEN_EINVAL; host.pause(domid); return 0;
      // unpausedomain is answered in the caller's thread (./domctl-unpause.ts).
      case 'resumedomain': await host.resumeDomain(domid); return 0;
      case 'vcpus_loaded': {
        const loaded = records.loaded(domid);
        if (!loaded) return -XEN_ESRCH;
        await Promise.all(loaded);
        return 0;
      }
      case 'getdomaininfo': return host.info(domid) ?? -XEN_ESRCH;
      case 'getdomaininfolist': return host.list();
      case 'physinfo': return host.physinfo();
      case 'assign_device': {
        const [dev, to] = args as [number, number];
        if (!records.exists(to)) return -XEN_ESRCH;
        pci_assign(host.hv, dev, to);
        records.log(`(XEN) ${PCI_DEVICES[dev] ?? dev} assigned to d${to}; its DMA now reaches only d${to}'s frames`);
        return 0;
      }
      case 'deassign_device': {
        const [dev, from] = args as [number, number];
        if (pci_owner(host.hv, dev) !== from) return -XEN_EINVAL;
        pci_reassign_to_dom0(host.hv, from);
        return 0;
      }
      case 'storage_attach': return sc_attach(host.hv, args[0] as number, args[1] as string, args[2] as boolean);
      case 'storage_detach': sc_detach(host.hv, args[0] as number); return 0;
      case 'pci_info': return pci_info(host.hv);
      case 'scheduler_op': return host.sched.op(args[0] as SchedOp, (d) => records.vcpuThreads(d));
      case 'mem_sharing': return host.mm.setSharing(checkedSettings(args[0], { run: 'boolean', pages_to_scan: 'count', sleep_millisecs: 'count' }) as Partial<SharingSettings>);
      case 'mem_paging': return host.mm.setPaging(checkedSettings(args[0], { run: 'boolean', low_water_pages: 'count' }) as Partial<PagingSettings>);
      case 'set_pod_target': {
        const kib = args[1] as number;
        if (!records.exists(domid)) return -XEN_ESRCH;
        if (!(Number.isInteger(kib) && kib >= 0)) return -XEN_EINVAL;
        Atomics.store(host.hv.mm, md(domid, MD.POD_TARGET), Math.ceil(kib / 4));
        return 0;
      }
      case 'max_mem': {
        const kib = args[1] as number;
        if (!records.exists(domid)) return -XEN_ESRCH;
        if (!(Number.isInteger(kib) && kib >= 0)) return -XEN_EINVAL;
        Atomics.store(host.hv.domains, domid * D.WORDS + D.MAX_PAGES, Math.ceil(kib / 4));
        return 0;
      }
      case 'remote_shutdown': {
        if (domid === 0 || !records.exists(domid)) return domid === 0 ? -XEN_EINVAL : -XEN_ESRCH;
        const reason = args[1] as ShutdownReason;
        if (!SHUTDOWN_NAMES.includes(reason)) return -XEN_EINVAL;
        await host.shutdown(domid, reason);
        return 0;
      }
      default: return -XEN_EINVAL;
    }
  } catch (e) {
    // The caller gets the errno (Xen's domctl returns nothing else); the reason goes to the log.
    records.log(`(XEN) domctl ${op} failed: ${(e as Error).message}`);
    return e instanceof DomctlError ? -e.errno : -XEN_EINVAL;
  }
}
