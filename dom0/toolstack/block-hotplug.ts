/*
 * The block hotplug step: before blkback sees a vbd, attach its image file to the host's storage
 * controller and tell blkback which namespace to drive; when the vbd goes, detach it.
 *
 * Xen: tools/hotplug/Linux/block (run by libxl, or by `xl devd` in a driver domain): it sets up a
 * loop device over the `params` file and writes `physical-device` ("major:minor") into the backend
 * directory, which xen-blkback waits for before it opens the disk. ringvisor's "loop device" is a
 * namespace of the storage controller the backend's domain owns (shared/public/hw/sc.ts), made by
 * the control domain with the storage_attach domctl; blkback then drives the controller by DMA and
 * never opens a host file (so it can run in a driver domain).
 *
 * Which controller: the one the backend's domain owns; Dom0's is storage controller 0.
 * Detaching waits for nothing a guest can hold up: the hardware refuses new commands on a
 * detached namespace, and the file is closed once the commands in flight are done
 * (hypervisor/passthrough/storage-controller.ts).
 */
import type { Hypercalls } from '../../shared/public/hypercall.ts';
import { PCI_STORAGE0, PCI_STORAGE_CONTROLLERS } from '../../shared/public/hw/sc.ts';
import { XS_BLK } from '../../shared/public/io/blkif.ts';
import { errnoName } from '../../shared/public/xen.ts';
import { formatPhysicalDevice } from '../../shared/kernel/drivers/sc-disk.ts';

/** The parts of a device spec (./xenstore-home.ts DeviceSpec) this step reads and extends. */
interface DeviceSpec {
  type: string;
  frontend: number;
  devid: number;
  backend?: number;
  backKeys?: Record<string, string>;
}

interface Attached { nsid: number; frontend: number }

export class BlockHotplug {
  /** Namespaces attached, by "<backend domid>/<frontend domid>/<devid>". */
  private readonly attached = new Map<string, Attached>();

  constructor(private readonly hypercall: Hypercalls) {}

  private static key(d: DeviceSpec): string {
    return `${d.backend ?? 0}/${d.frontend}/${d.devid}`;
  }

  /** The controller the backend domain drives its disks through. */
  private async controllerOf(backend: number): Promise<number> {
    if (backend === 0) return PCI_STORAGE0;
    const info = await this.hypercall.sysctl_pci_info();
    if (typeof info === 'number') throw new Error(`cannot list PCI devices: ${errnoName(info)}`);
    const dev = info.find((p) => p.owner === backend && PCI_STORAGE_CONTROLLERS.includes(p.dev));
    if (dev === undefined) throw new Error(`domain ${backend} serves disks but owns no storage controller (pci = [...] in its config)`);
    return dev.dev;
  }

  /** The spec with physical-device added (a vbd with a params file and none yet), its namespace attached. */
  async add<T extends DeviceSpec>(d: T): Promise<T> {
    const keys = d.backKeys ?? {};
    const params = keys[XS_BLK.params];
    if (d.type !== 'vbd' || params === undefined || keys[XS_BLK.physical_device] !== undefined) return d;
    const dev = await this.controllerOf(d.backend ?? 0);
    const readOnly = !(keys[XS_BLK.mode] ?? 'w').startsWith('w');
    const nsid = await this.hypercall.domctl_storage_attach(dev, params, readOnly);
    if (nsid < 0) throw new Error(`cannot attach ${params} to storage controller ${dev}: ${errnoName(nsid)}`);
    this.attached.set(BlockHotplug.key(d), { nsid, frontend: d.frontend });
    return { ...d, backKeys: { ...keys, [XS_BLK.physical_device]: formatPhysicalDevice(dev, nsid) } };
  }

  /** The vbd is gone: its namespace goes too. */
  async remove(d: DeviceSpec): Promise<void> {
    const key = BlockHotplug.key(d);
    const a = this.attached.get(key);
    if (a === undefined) return;
    this.attached.delete(key);
    await this.hypercall.domctl_storage_detach(a.nsid);
  }

  /** A domain is gone: every namespace attached for its disks goes (libxl's device removal after death). */
  async forgetFrontend(domid: number): Promise<void> {
    for (const [key, a] of [...this.attached]) {
      if (a.frontend !== domid) continue;
      this.attached.delete(key);
      await this.hypercall.domctl_storage_detach(a.nsid);
    }
  }
}
