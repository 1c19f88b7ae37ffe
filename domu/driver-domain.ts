/*
 * A storage driver domain's part of the DomU kernel: load blkback, and serve the disks of other
 * guests through the storage controller this domain was given.
 *
 * Xen: a driver domain is an ordinary unprivileged guest whose config says `driver_domain=1` and
 * which is given the hardware with `pci = [...]` (xl.cfg); its Linux has xen-blkback, probes the
 * backend/vbd/<fe>/<devid> directories the toolstack creates under its own home
 * (/local/domain/<dd>/backend/...), maps the frontends' grants and binds their event channels
 * domain to domain, exactly as Dom0's blkback does; nothing in the data path involves Dom0
 * (XEN-FACTS Part 2 §6; the Xen wiki's "Driver Domain" page). Its disks are the namespaces of the
 * passed-through controller (shared/kernel/drivers/sc-disk.ts): every DMA address it programs is
 * translated by the IOMMU through this domain's P2M, so the controller reaches its frames and the
 * pages frontends granted it, nothing else (hypervisor/passthrough/pci.ts).
 *
 * The hotplug step (Xen: `xl devd` running tools/hotplug/Linux/block inside the driver domain)
 * stays with the toolstack in Dom0 here: attaching an image file as a namespace of the controller
 * is the machine's business (a disk put in the drive), done by the control domain's storage_attach
 * domctl, and the driver domain only ever sees the namespace number in `physical-device`. It opens
 * no file and could not: this is guest code (test/boundaries.test.ts).
 *
 * Its devices' statistics (xen-blkback's sysfs counters, which only this kernel has) are written
 * into each device's backend directory once a second (backends/lib/devstats-publish.ts), where
 * Dom0's `ringvisor top` and web view read them.
 *
 * This is the one file of domu/ that may name backends/ (test/boundaries.test.ts): a frontend
 * never calls a backend as a function.
 */
import type { Kernel } from '../shared/kernel/kernel.ts';
import type { XenbusClient } from '../shared/kernel/xenbus/client.ts';
import { init as blkbackInit } from '../backends/blkback/module.ts';
import { publishDeviceStats } from '../backends/lib/devstats-publish.ts';

/** modprobe xen-blkback in the driver domain: from now on it serves backend/vbd under its home. */
export async function driverDomainInit(k: Kernel, xs: XenbusClient, log: (line: string) => void): Promise<void> {
  // A kernel panic, as sysrq-c at the console does it (domu/kernel.ts): the exception leaves the
  // kernel and the hypervisor crashes the domain; on_crash decides what follows.
  const panic = (why: string) => queueMicrotask(() => { throw new Error(`Kernel panic: ${why}`); });
  await blkbackInit({ k, xs, panic });
  // Its devices' counters are this kernel's; Dom0's top and web view read them from XenStore.
  publishDeviceStats(k, xs);
  log('driver domain: blkback loaded; serving backend/vbd through the storage controller passed through to this domain');
}
