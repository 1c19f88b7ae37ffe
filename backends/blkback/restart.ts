/*
 * A blkback that dies and one that takes its place: unbind the driver from one vbd in the middle
 * of its I/O, and bind a fresh one to the same directory.
 *
 * Xen/Linux: what happens when xen-blkback is unbound from a device (echo vbd-<fe>-<devid> >
 * /sys/bus/xen-backend/drivers/vbd/unbind: xenbus_dev_remove → xen_blkbk_remove, the device ends
 * Closed) and bound again (…/bind: xen_blkbk_probe, InitWait); also, with a driver domain, what
 * its death and restart look like to a frontend. The frontend side is blkfront's recovery
 * (domu/blkfront/blkfront.ts, "A backend that dies").
 *
 * Two ways to die. unbindVbd() kills the backend now, between two of its turns: every response it
 * made is published. armCrash() makes it die in the middle of its work instead, the next time one
 * of its rings has taken `after` more requests (BlkifRing.crashAt): responses made but not yet
 * published are lost and requests on the ring are left there, as a crash leaves them, so a test
 * can put 32 requests in flight and know the backend dies with some answered and some not. Either
 * way the disconnect that follows unmaps every grant and closes every port, as Xen does for a
 * dead domain's mappings, so the frontend can end its grants and free its pages.
 *
 * Which toolstack verb drives these: dom0/toolstack/backend-kill.ts.
 */
import { vbdBuses, vbds } from './module.ts';

/** The driver leaves the device at once (see the header). False if no blkback serves `nodename`. */
export async function unbindVbd(nodename: string): Promise<boolean> {
  const bus = vbdBuses.get(nodename);
  if (bus === undefined) return false;
  await bus.unbind();
  return true;
}

/**
 * Make the backend of `nodename` crash once any of its rings has taken `after` more requests;
 * `died` runs once, after the device has been unbound. False if it has no connected ring.
 */
export function armCrash(nodename: string, after: number, died: () => void): boolean {
  const be = vbds.get(nodename);
  if (be === undefined || be.rings.length === 0) return false;
  let once = false;
  const onCrash = (): void => {
    if (once) return;
    once = true;
    for (const r of be.rings) {
      r.crashAt = -1;
      r.onCrash = null;
    }
    void unbindVbd(nodename).then(died);
  };
  for (const r of be.rings) {
    r.crashAt = r.stats.requests + after;
    r.onCrash = onCrash;
  }
  return true;
}
