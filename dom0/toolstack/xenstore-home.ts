/*
 * The toolstack's XenStore side: what Dom0 writes when it creates a domain, adds a device,
 * removes it, and destroys the domain.
 *
 * Xen: tools/libs/light (libxl__domain_make's XenStore part, libxl__domain_build's
 * xs_introduce_domain, libxl__device_generic_add, libxl__initiate_device_generic_remove,
 * libxl__destroy_domid) and tools/helpers/xen-init-dom0.c. The hypercalls are ringvisor's
 * domctls, made from Dom0's kernel as libxl makes them through privcmd; XenStore is reached
 * through Dom0's privileged client, so every write here is Dom0's, as libxl's are.
 *
 * Layout written for domain <id> (libxl's, trimmed to what ringvisor uses):
 *
 *   /local/domain/<id>            owner Dom0, <id> may read       name, domid, vm (with a uuid)
 *   /local/domain/<id>/data       owner <id>                      the guest's scratch space
 *   /local/domain/<id>/device     owner <id>                      frontend directories go here
 *   /local/domain/<id>/control    owner Dom0, <id> may read
 *   /local/domain/<id>/control/shutdown        owner <id>         the toolstack writes "poweroff",
 *                                                                  "reboot" or "halt"; the guest
 *                                                                  acknowledges by writing ""
 *   /local/domain/<id>/control/feature-poweroff, feature-reboot, feature-suspend   owner <id>: the guest writes "1"
 *                                                                  once it handles the requests
 *   /local/domain/<id>/console    owner Dom0, <id> may read       ring-ref, port, type
 *   /local/domain/<id>/cpu/<N>/availability   (Dom0's, <id> may read)  "online" / "offline" per vCPU
 *   /local/domain/<id>/memory     owner Dom0, <id> may read       static-max, target (KiB): the balloon's
 *   /vm/<uuid>                    owner Dom0, <id> may read       name, uuid (only with a uuid)
 *
 * These are the toolstack's XenStore calls; the xl-like toolstack that boots VMs from their
 * configs (./libxl.ts) builds on them, and harnesses call them directly (dom0/toolstack/control.ts).
 */
import { XsError, type XenbusClient } from '../../shared/kernel/xenbus/client.ts';
import {
  XS_CONTROL_FEATURE_POWEROFF, XS_CONTROL_FEATURE_REBOOT, XS_CONTROL_FEATURE_SUSPEND, XS_CONTROL_SHUTDOWN, XS_KEY_BACKEND, XS_KEY_BACKEND_ID,
  XS_KEY_FRONTEND, XS_KEY_FRONTEND_ID, XS_KEY_ONLINE, XS_KEY_STATE, XenbusState, backendPath, domainPath, frontendPath,
} from '../../shared/public/io/xenbus.ts';
import { GNTTAB_RESERVED_CONSOLE } from '../../shared/public/grant_table.ts';
import type { CreatedDomain, DomainConfig, Hypercalls } from '../../shared/public/hypercall.ts';
import { XS_PERM_NONE, XS_PERM_READ, type XsPermission } from '../../shared/public/io/xs_wire.ts';
import { errnoName } from '../../shared/public/xen.ts';
import { CPU_OFFLINE, CPU_ONLINE, xsCpuAvailability } from '../../shared/public/vcpu.ts';
import { XS_MEMORY_STATIC_MAX, XS_MEMORY_TARGET } from '../../shared/public/memory.ts';
import type { Xenconsoled } from '../services/xenconsoled.ts';
import { BlockHotplug } from './block-hotplug.ts';
import { DriverDomains } from './driver-domain.ts';

export interface GuestOptions {
  /** Where the console log goes (Xen: /var/log/xen/console/guest-<name>.log). */
  consoleLog?: string;
  /** The VM's UUID: libxl writes /vm/<uuid> and the home's `vm` key. */
  uuid?: string;
  /** pci = [...]: host devices assigned while it is paused (their indices, shared/public/hw/sc.ts). */
  pci?: number[];
  /** driver_domain = 1: once it runs, it takes over the devices a dead domain of its name served (./driver-domain.ts). */
  driverDomain?: boolean;
}

export interface DeviceSpec {
  type: string;
  frontend: number;
  devid: number;
  backend?: number;
  /** Extra keys for each end's directory (libxl's per-device-kind front and back entries). */
  frontKeys?: Record<string, string>;
  backKeys?: Record<string, string>;
}

/** A hypercall the toolstack made was refused: Xen's errno (XEN_E*, positive), kept for whoever can say which setting caused it. */
export class HypercallError extends Error {
  constructor(readonly errno: number, message: string) {
    super(message);
    this.name = 'HypercallError';
  }
}

const ro = (owner: number, reader: number): XsPermission[] => [{ id: owner, perms: XS_PERM_NONE }, { id: reader, perms: XS_PERM_READ }];
const own = (owner: number): XsPermission[] => [{ id: owner, perms: XS_PERM_NONE }];

export class Toolstack {
  /** The block hotplug step: disks attached to the storage controller (./block-hotplug.ts). */
  private readonly hotplug: BlockHotplug;
  /** Devices served by driver domains, and those waiting for one (./driver-domain.ts). */
  readonly driverDomains: DriverDomains;

  constructor(
    private readonly hypercall: Hypercalls,
    private readonly xs: XenbusClient,
    private readonly consoled: Xenconsoled,
    private readonly runDir: string,
    log: (line: string) => void = () => undefined,
  ) {
    this.hotplug = new BlockHotplug(hypercall);
    this.driverDomains = new DriverDomains(xs, log);
  }

  /** xen-init-dom0: Dom0's own home and name. */
  async initDom0(): Promise<void> {
    const home = domainPath(0);
    await this.xs.write(`${home}/name`, 'Domain-0');
    await this.xs.write(`${home}/domid`, '0');
  }

  /**
   * xl create, minus the config file: build the domain paused (as Xen always does), write its
   * XenStore home, attach its console, introduce it to xenstored, then let it run unless
   * config.paused. Returns the domid.
   */
  async createDomain(config: DomainConfig, opts: GuestOptions = {}): Promise<number> {
    const built = await this.buildDomain(config, opts);
    await this.assignDevices(built.domid, opts.pci ?? []).catch(async (e: unknown) => {
      await this.destroyDomain(built.domid).catch(() => undefined);
      throw e;
    });
    if (!config.paused) await this.unpause(built.domid, config.name);
    if (opts.driverDomain) await this.driverDomains.adopt(config.name, built.domid);
    return built.domid;
  }

  /**
   * The first half of createDomain: the domain built and paused, its home written, its console
   * served, xenstored introduced. Returns what the builder made; the caller adds devices (and
   * device models) and then unpauses, as libxl__domain_build + libxl's device stages do.
   */
  async buildDomain(config: DomainConfig, opts: GuestOptions = {}): Promise<CreatedDomain> {
    const built = await this.hypercall.domctl_createdomain({ ...config, paused: true });
    if (typeof built === 'number') throw new HypercallError(-built, `cannot create ${config.name}: ${errnoName(built)}`);
    const { domid } = built;
    const home = domainPath(domid);
    try {
      await this.xs.transaction(async (t) => {
        await makeDomainHome(this.xs, domid, config.name, t, opts.uuid);
        await mknod(this.xs, `${home}/console`, ro(0, domid), t);
        await this.xs.write(`${home}/console/ring-ref`, String(GNTTAB_RESERVED_CONSOLE), t);
        await this.xs.write(`${home}/console/port`, String(built.console_evtchn), t);
        await this.xs.write(`${home}/console/type`, 'xenconsoled', t);
        await writeVcpuAvailability(this.xs, domid, config.vcpus, config.max_vcpus ?? config.vcpus, t);
        // The balloon's keys (libxl__build_post): the most it may ever have, and its target, in KiB.
        await mknod(this.xs, `${home}/memory`, ro(0, domid), t);
        await this.xs.write(`${home}/${XS_MEMORY_STATIC_MAX}`, String(Math.max(config.memoryKiB, config.maxmemKiB ?? 0)), t);
        await this.xs.write(`${home}/${XS_MEMORY_TARGET}`, String(config.memoryKiB), t);
      });
      this.consoled.add(domid, built.console_evtchn, opts.consoleLog ?? `${this.runDir}/console/guest-${config.name}.log`);
      await this.xs.introduce(domid, built.store_gfn, built.store_evtchn);
    } catch (e) {
      await this.destroyDomain(domid).catch(() => undefined); // nothing half-made stays behind
      throw e;
    }
    return built;
  }

  /** pci = [...]: XEN_DOMCTL_assign_device for each, while the domain is built and paused. */
  async assignDevices(domid: number, devs: readonly number[]): Promise<void> {
    for (const dev of devs) {
      const rc = await this.hypercall.domctl_assign_device(dev, domid);
      if (rc < 0) throw new HypercallError(-rc, `cannot assign PCI device ${dev} to domain ${domid}: ${errnoName(rc)}`);
    }
  }

  /** xl unpause (and the last step of create). */
  async unpause(domid: number, name = `domain ${domid}`): Promise<void> {
    const rc = await this.hypercall.domctl_unpausedomain(domid);
    if (rc < 0) throw new Error(`cannot unpause ${name}: ${errnoName(rc)}`);
  }

  /** xl destroy: stop the domain, then release its console and store, then remove its home. */
  async destroyDomain(domid: number): Promise<void> {
    const rc = await this.hypercall.domctl_destroydomain(domid);
    if (rc < 0) throw new Error(`cannot destroy domain ${domid}: ${errnoName(rc)}`);
    await this.forgetDomain(domid);
  }

  /**
   * What the toolstack does once a domain is gone, whoever ended it: Xen's xenstored learns of a
   * death through VIRQ_DOM_EXC, which ringvisor's hypervisor does not raise yet, so this is
   * called by whoever saw the domain die.
   */
  async forgetDomain(domid: number): Promise<void> {
    // A driver domain: the backends it ran say Closed before its home (and they) go.
    await this.driverDomains.backendGone(domid);
    this.consoled.remove(domid);
    // Idempotent: a domain may be forgotten by whoever saw it die and by destroyDomain both.
    await this.xs.release(domid).catch((e: unknown) => {
      if (!(e instanceof XsError && e.errno === 'ENOENT')) throw e;
    });
    const vm = await this.xs.tryRead(`${domainPath(domid)}/vm`);
    await this.xs.rm(domainPath(domid));
    if (vm !== null && vm.startsWith('/vm/')) await this.xs.rm(vm);
    await this.driverDomains.forgetFrontend(domid);
    await this.hotplug.forgetFrontend(domid);
  }

  /** libxl__device_generic_add (see addDeviceNodes). */
  async addDevice(d: DeviceSpec): Promise<{ frontend: string; backend: string }> {
    const spec = await this.hotplug.add(d);
    try {
      const paths = await addDeviceNodes(this.xs, spec);
      await this.driverDomains.record(spec);
      return paths;
    } catch (e) {
      await this.hotplug.remove(spec);
      throw e;
    }
  }

  /** libxl's device removal (see removeDeviceNodes), then the hotplug step's undo. */
  async removeDevice(d: DeviceSpec): Promise<void> {
    await removeDeviceNodes(this.xs, d);
    this.driverDomains.drop(d);
    await this.hotplug.remove(d);
  }

}

/** libxl__domain_make's XenStore part: the home and the directories the guest owns (see header). */
export async function makeDomainHome(xs: XenbusClient, domid: number, name: string, t: number, uuid?: string): Promise<void> {
  const home = domainPath(domid);
  await xs.rm(home, t);
  await mknod(xs, home, ro(0, domid), t);
  await xs.write(`${home}/name`, name, t);
  await xs.write(`${home}/domid`, String(domid), t);
  for (const dir of ['data', 'device']) await mknod(xs, `${home}/${dir}`, own(domid), t);
  await mknod(xs, `${home}/control`, ro(0, domid), t);
  // The guest writes these: it acknowledges a shutdown request, and says which ones it handles.
  for (const node of [XS_CONTROL_SHUTDOWN, XS_CONTROL_FEATURE_POWEROFF, XS_CONTROL_FEATURE_REBOOT, XS_CONTROL_FEATURE_SUSPEND]) {
    await mknod(xs, `${home}/${node}`, own(domid), t);
  }
  if (uuid !== undefined) {
    const vm = `/vm/${uuid}`;
    if ((await xs.tryRead(vm, t)) !== null) await xs.rm(vm, t);
    await mknod(xs, vm, ro(0, domid), t);
    await xs.write(`${vm}/name`, name, t);
    await xs.write(`${vm}/uuid`, uuid, t);
    await xs.write(`${home}/vm`, vm, t);
  }
}

/**
 * libxl__build_post's `cpu/<N>/availability` for each of the domain's `max` vCPUs, the first
 * `online` "online" and the rest "offline" (shared/public/vcpu.ts; xl vcpu-set rewrites them:
 * ./vcpu-set.ts). They inherit the home's permissions: Dom0's, readable by the guest.
 */
export async function writeVcpuAvailability(xs: XenbusClient, domid: number, online: number, max: number, t = 0): Promise<void> {
  const home = domainPath(domid);
  for (let v = 0; v < max; v++) await xs.write(`${home}/${xsCpuAvailability(v)}`, v < online ? CPU_ONLINE : CPU_OFFLINE, t);
}

/** libxl__xs_mknod: an empty node with exactly these permissions. */
async function mknod(xs: XenbusClient, path: string, perms: XsPermission[], t: number): Promise<void> {
  await xs.mkdir(path, t);
  await xs.setPerms(path, perms, t);
}

/**
 * libxl__device_generic_add: both directories in one transaction, each owned by its end and
 * readable by the other, both ends in state Initialising. The backend's driver (watching its
 * backend/ directory) and the frontend's (watching device/) take it from there.
 */
export async function addDeviceNodes(xs: XenbusClient, d: DeviceSpec): Promise<{ frontend: string; backend: string }> {
  const be = d.backend ?? 0;
  const fe = frontendPath(d.frontend, d.type, d.devid);
  const bk = backendPath(be, d.type, d.frontend, d.devid);
  await xs.transaction(async (t) => {
    await mknod(xs, fe, ro(d.frontend, be), t);
    await mknod(xs, bk, ro(be, d.frontend), t);
    const front = { [XS_KEY_BACKEND]: bk, [XS_KEY_BACKEND_ID]: String(be), [XS_KEY_STATE]: String(XenbusState.Initialising), ...d.frontKeys };
    const back = {
      [XS_KEY_FRONTEND]: fe, [XS_KEY_FRONTEND_ID]: String(d.frontend), [XS_KEY_ONLINE]: '1',
      [XS_KEY_STATE]: String(XenbusState.Initialising), ...d.backKeys,
    };
    for (const [k, v] of Object.entries(front)) await xs.write(`${fe}/${k}`, v, t);
    for (const [k, v] of Object.entries(back)) await xs.write(`${bk}/${k}`, v, t);
  });
  return { frontend: fe, backend: bk };
}

/**
 * libxl__initiate_device_generic_remove + the wait for the backend: online = 0 and the
 * backend's state to Closing, then wait until the backend reports Closed, then remove both
 * directories.
 */
export async function removeDeviceNodes(xs: XenbusClient, d: DeviceSpec): Promise<void> {
  const be = d.backend ?? 0;
  const fe = frontendPath(d.frontend, d.type, d.devid);
  const bk = backendPath(be, d.type, d.frontend, d.devid);
  await xs.transaction(async (t) => {
    await xs.write(`${bk}/${XS_KEY_ONLINE}`, '0', t);
    await xs.write(`${bk}/${XS_KEY_STATE}`, String(XenbusState.Closing), t);
  });
  await new Promise<void>((resolve, reject) => {
    let done = false;
    xs.watch(`${bk}/${XS_KEY_STATE}`, async (_p, token) => {
      const s = await xs.tryRead(`${bk}/${XS_KEY_STATE}`);
      if (done || (s !== null && Number(s) !== XenbusState.Closed)) return;
      done = true;
      await xs.unwatch(`${bk}/${XS_KEY_STATE}`, token).catch(() => undefined);
      resolve();
    }).catch(reject);
  });
  await xs.rm(bk);
  await xs.rm(fe);
}
