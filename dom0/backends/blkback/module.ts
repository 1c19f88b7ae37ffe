/*
 * Loading blkback into Dom0: register the vbd backend driver on the xenbus backend bus.
 *
 * Linux: `modprobe xen-blkback` (xen_blkif_init → xen_blkif_xenbus_init →
 * xenbus_register_backend). From then on every backend/vbd/<fe>/<devid> directory the
 * toolstack creates is probed by a new VbdBackend. A device whose driver was unbound (killed,
 * ./restart.ts) can be probed again by a fresh one (probeVbd), as a rebind does.
 */
import type { Dom0 } from '../../dom0.ts';
import { probeBackend, registerBackend, type BackendOptions, type XenbusBackend } from '../../../shared/kernel/xenbus/backend.ts';
import { guestLog } from '../../lib/guest-log.ts';
import { VbdBackend } from './xenbus.ts';

/** The devices this Dom0 serves, by backend directory (for statistics and tests). */
export const vbds = new Map<string, VbdBackend>();
/** Their xenbus devices, by backend directory (to unbind one: ./restart.ts). */
export const vbdBuses = new Map<string, XenbusBackend>();

function options(dom0: Dom0): BackendOptions & { onProbe: (be: XenbusBackend) => void } {
  return {
    onProbe: (be) => vbdBuses.set(be.dev.nodename, be),
    onRemove: (dev) => {
      vbds.delete(dev.nodename);
      vbdBuses.delete(dev.nodename);
    },
    // A failed probe or connect: one line, counted against the guest that caused it.
    onError: (dev, e) => guestLog(dom0.k).line(dev.otherendId, `blkback ${dev.nodename}: ${(e as Error).message ?? String(e)}`),
  };
}

function driverFor(dom0: Dom0, nodename: string): VbdBackend {
  const be = new VbdBackend(dom0.k);
  vbds.set(nodename, be);
  return be;
}

export async function init(dom0: Dom0): Promise<void> {
  await registerBackend(dom0.xs, 'vbd', (nodename) => driverFor(dom0, nodename), options(dom0));
}

/** Bind a fresh blkback to one vbd directory (after its last driver was unbound). */
export async function probeVbd(dom0: Dom0, nodename: string): Promise<boolean> {
  const opts = options(dom0);
  const be = await probeBackend(dom0.xs, nodename, driverFor(dom0, nodename), opts);
  if (be !== null) opts.onProbe(be);
  return be !== null;
}
