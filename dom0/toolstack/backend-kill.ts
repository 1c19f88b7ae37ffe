/*
 * `ringvisor block-backend-kill DOMAIN VDEV`: kill the backend serving one of a domain's virtual
 * disks, in the middle of its I/O, and start a new one, to watch the frontend recover.
 *
 * Xen: no xl verb does this; an administrator does it by unbinding xen-blkback from the device in
 * the backend's domain (and binding it again), or by destroying a driver domain that has
 * `on_crash = "restart"`. The mechanism is backends/blkback/restart.ts; this is the
 * toolstack's part: find which backend serves the disk (the frontend's `backend` key), kill it,
 * wait until the frontend has seen it go (its state leaves Initialised/Connected: blkfront went
 * back to Initialising to wait, or gave up and closed), and only then bind a new blkback, so the
 * new one never meets the dead one's rings. With `afterRequests` the backend dies the next time
 * one of its rings has taken that many more requests, instead of at once; the verb returns when
 * the crash is armed and the restart happens when it fires.
 */
import type { Dom0 } from '../dom0.ts';
import { armCrash, unbindVbd } from '../../backends/blkback/restart.ts';
import { probeVbd, vbdBuses } from '../../backends/blkback/module.ts';
import { XS_KEY_BACKEND, XS_KEY_BACKEND_ID, XS_KEY_STATE, XenbusState, domainPath } from '../../shared/public/io/xenbus.ts';
import { BACKEND_TIMEOUT_MS, waitForState } from './devices.ts';
import { XlError } from './libxl.ts';
import { VDEV_EXPECTED, parseVdev } from './config/vdev.ts';

/** A disk as the command line names it: xvda, hdc, or the device number (51712). */
export function vdevNumber(vdev: string): number {
  if (/^[0-9]+$/.test(vdev)) return Number(vdev);
  const v = parseVdev(vdev);
  if (v === null) throw new XlError('failed', `${vdev} is not ${VDEV_EXPECTED}`);
  return v.devid;
}

export interface BackendKillOptions {
  /** Start a new backend once the frontend has seen the old one go (default true). */
  restart?: boolean;
  /** Die when a ring has taken this many more requests, not now. */
  afterRequests?: number;
}

export interface BackendKillResult {
  backend: string;
  /** Killed now (false: armed, it dies later). */
  killed: boolean;
  restarted: boolean;
}

/**
 * Where a domain's disk is served: its backend directory, refused unless Dom0 serves it. Relative
 * to Dom0's home, as blkback names its devices (xenbus watches `backend/vbd`).
 */
async function dom0Backend(dom0: Dom0, fe: string, domid: number, devid: number): Promise<string> {
  const backend = await dom0.xs.tryRead(`${fe}/${XS_KEY_BACKEND}`);
  const backendId = await dom0.xs.tryRead(`${fe}/${XS_KEY_BACKEND_ID}`);
  if (backend === null) throw new XlError('failed', `domain ${domid} has no virtual disk ${devid}`);
  if (backendId !== '0') throw new XlError('failed', `${backend} is served by domain ${backendId}, not Dom0: destroy that driver domain instead`);
  const home = `${domainPath(0)}/`;
  return backend.startsWith(home) ? backend.slice(home.length) : backend;
}

/** Bind a new blkback once the frontend has seen the old one go (see the header). */
async function rebind(dom0: Dom0, fe: string, backend: string): Promise<boolean> {
  await waitForState(dom0.xs, `${fe}/${XS_KEY_STATE}`, (s) => s !== XenbusState.Connected && s !== XenbusState.Initialised,
    BACKEND_TIMEOUT_MS, `the frontend of ${backend} did not notice its backend go`);
  const ok = await probeVbd(dom0, backend);
  dom0.k.log(`block-backend: ${backend}: ${ok ? 'a new blkback is bound' : 'the new blkback failed to probe'}`);
  return ok;
}

/** `ringvisor block-backend-start DOMAIN VDEV`: a new blkback for a disk whose backend was killed with --no-restart. */
export async function blockBackendStart(dom0: Dom0, domid: number, devid: number): Promise<BackendKillResult> {
  const fe = `${domainPath(domid)}/device/vbd/${devid}`;
  const backend = await dom0Backend(dom0, fe, domid, devid);
  if (vbdBuses.has(backend)) throw new XlError('failed', `${backend} has a running blkback already`);
  return { backend, killed: false, restarted: await rebind(dom0, fe, backend) };
}

export async function blockBackendKill(dom0: Dom0, domid: number, devid: number, opts: BackendKillOptions = {}): Promise<BackendKillResult> {
  const fe = `${domainPath(domid)}/device/vbd/${devid}`;
  const backend = await dom0Backend(dom0, fe, domid, devid);
  const restart = opts.restart ?? true;
  const log = (line: string) => dom0.k.log(`block-backend-kill: ${line}`);
  const after = async (): Promise<boolean> => restart && rebind(dom0, fe, backend);
  if (opts.afterRequests !== undefined) {
    const n = opts.afterRequests;
    const armed = armCrash(backend, n, () => {
      log(`${backend}: blkback crashed after ${n} more request(s) on a ring`);
      after().catch((e: Error) => log(`${backend}: restart failed: ${e.message}`));
    });
    if (!armed) throw new XlError('failed', `${backend} is not connected`);
    return { backend, killed: false, restarted: false };
  }
  if (!(await unbindVbd(backend))) throw new XlError('failed', `no blkback serves ${backend}`);
  log(`${backend}: blkback killed`);
  return { backend, killed: true, restarted: await after() };
}
