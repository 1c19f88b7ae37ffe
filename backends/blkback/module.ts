/*
 * Loading blkback into a backend domain (Dom0, or a storage driver domain): register the vbd
 * backend driver on the xenbus backend bus.
 *
 * Linux: `modprobe xen-blkback` (xen_blkif_init → xen_blkif_xenbus_init →
 * xenbus_register_backend). From then on every backend/vbd/<fe>/<devid> directory the
 * toolstack creates under this domain's home is probed by a new VbdBackend. A device whose driver
 * was unbound (killed, ./restart.ts) can be probed again by a fresh one (probeVbd), as a rebind does.
 *
 * Nothing here is Dom0's: the driver needs a kernel (hypercalls, pages, events) and a XenStore
 * client, which every domain has, and it reaches its disks only through the storage controller
 * its domain was given (shared/kernel/drivers/sc-disk.ts). Dom0 loads it at boot
 * (dom0/kernel.ts's modules); a DomU whose config says `driver_domain=1` loads it from its own
 * kernel (domu/driver-domain.ts). backends/ imports only shared/ (test/boundaries.test.ts).
 */
import type { Kernel } from '../../shared/kernel/kernel.ts';
import type { XenbusClient } from '../../shared/kernel/xenbus/client.ts';
import { probeBackend, registerBackend, type BackendOptions, type XenbusBackend } from '../../shared/kernel/xenbus/backend.ts';
import { guestLog } from '../lib/guest-log.ts';
import { VbdBackend } from './xenbus.ts';

/** What blkback needs of the domain it runs in (Dom0's services have these two among others). */
export interface BackendDomain {
  k: Kernel;
  /** This domain's XenStore client: backend/vbd is read relative to its home. */
  xs: XenbusClient;
  /**
   * How this domain's kernel panics (a driver domain has one; Dom0 does not offer it): used only
   * by the fault injection of ./xenbus.ts (`ringvisor-crash-domain-after`).
   */
  panic?: (why: string) => void;
}

/** The devices this domain serves, by backend directory (for statistics and tests). */
export const vbds = new Map<string, VbdBackend>();
/** Their xenbus devices, by backend directory (to unbind one: ./restart.ts). */
export const vbdBuses = new Map<string, XenbusBackend>();

function options(dom: BackendDomain): BackendOptions & { onProbe: (be: XenbusBackend) => void } {
  return {
    onProbe: (be) => vbdBuses.set(be.dev.nodename, be),
    onRemove: (dev) => {
      vbds.delete(dev.nodename);
      vbdBuses.delete(dev.nodename);
    },
    // A failed probe or connect: one line, counted against the guest that caused it.
    onError: (dev, e) => guestLog(dom.k).line(dev.otherendId, `blkback ${dev.nodename}: ${(e as Error).message ?? String(e)}`),
  };
}

function driverFor(dom: BackendDomain, nodename: string): VbdBackend {
  const be = new VbdBackend(dom.k, dom.panic);
  vbds.set(nodename, be);
  return be;
}

export async function init(dom: BackendDomain): Promise<void> {
  await registerBackend(dom.xs, 'vbd', (nodename) => driverFor(dom, nodename), options(dom));
}

/** Bind a fresh blkback to one vbd directory (after its last driver was unbound). */
export async function probeVbd(dom: BackendDomain, nodename: string): Promise<boolean> {
  const opts = options(dom);
  const be = await probeBackend(dom.xs, nodename, driverFor(dom, nodename), opts);
  if (be !== null) opts.onProbe(be);
  return be !== null;
}
