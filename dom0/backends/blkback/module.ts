/*
 * Loading blkback into Dom0: register the vbd backend driver on the xenbus backend bus.
 *
 * Linux: `modprobe xen-blkback` (xen_blkif_init → xen_blkif_xenbus_init →
 * xenbus_register_backend). From then on every backend/vbd/<fe>/<devid> directory the
 * toolstack creates is probed by a new VbdBackend.
 */
import type { Dom0 } from '../../dom0.ts';
import { registerBackend } from '../../../shared/kernel/xenbus/backend.ts';
import { guestLog } from '../../lib/guest-log.ts';
import { VbdBackend } from './xenbus.ts';

/** The devices this Dom0 serves, by backend directory (for statistics and tests). */
export const vbds = new Map<string, VbdBackend>();

export async function init(dom0: Dom0): Promise<void> {
  await registerBackend(dom0.xs, 'vbd', (nodename) => {
    const be = new VbdBackend(dom0.k);
    vbds.set(nodename, be);
    return be;
  }, {
    onRemove: (dev) => vbds.delete(dev.nodename),
    // A failed probe or connect: one line, counted against the guest that caused it.
    onError: (dev, e) => guestLog(dom0.k).line(dev.otherendId, `blkback ${dev.nodename}: ${(e as Error).message ?? String(e)}`),
  });
}
