/*
 * Before a suspended domain is resumed where it is (a migration or a save that did not complete):
 * make every backend still connected to the suspended kernel's rings let go of them.
 *
 * Xen/Linux: what happens to a guest's split devices across libxl_domain_resume. With Xen's
 * cooperative resume (xc_domain_resume fast = 1, libxl's suspend_cancel) the guest's
 * HYPERVISOR_suspend returns 1, "cancelled", do_suspend runs the devices' cancel callbacks
 * (xenbus_dev_cancel does nothing) and the frontends carry on with the same backends, rings and
 * grants: a Linux guest does not disconnect them at suspend. A ringvisor kernel cannot carry on
 * from the hypercall: even resumed in place, a fresh vCPU thread boots the kernel in resume mode
 * (hypervisor/domain-resume.ts), and the old frontends' ring state (req_prod_pvt, rsp_cons, which
 * grant holds which buffer) went with the old thread's heap. Meanwhile the source's backends are
 * still Connected to those rings, since the guest no longer closes its frontends at suspend
 * (domu/kernel.ts, the blackout's saving): a backend would go on serving a ring nobody fills, keep
 * its mappings of pages the new kernel reuses, and ignore the new frontend's Initialising
 * (xen-blkback's frontend_changed takes a frontend's Initialising only when it is Closed itself).
 *
 * So, with the domain still suspended (no vCPU runs, nothing of the new kernel exists yet), the
 * toolstack says for each frontend what the suspended kernel would have said had it closed its
 * devices: `state` = Closed in the frontend's directory. Each backend sees it through its usual
 * watch and does what it does for a frontend that closed (frontend_changed(Closed):
 * xen_blkif_disconnect, netback's backend_disconnect: unmap the rings and every grant, unbind the
 * port, then Closed; `online` is still 1, so the device stays). The toolstack waits for every
 * backend's Closed (libxl's LIBXL_DESTROY_TIMEOUT, as when it removes devices: a backend that does
 * not answer is reported and the resume goes on), and only then unpauses. The resumed kernel finds
 * its devices Closed and reconnects exactly as it would after a close (shared/kernel/xenbus/
 * frontend.ts probe: Initialising, the backend's InitWait, a new handshake, new rings).
 *
 * What is trusted: only the toolstack's own nodes say which devices the domain has (the backend
 * directories under each backend domain's home, as ./devices.ts removeBackends finds them); the
 * frontend path is derived from them, never read from a key the guest can write. This runs only
 * when a suspend is cancelled, outside any migration's blackout.
 */
import type { XenbusClient } from '../../shared/kernel/xenbus/client.ts';
import { XS_DIR_BACKEND, XS_DIR_DEVICE, XS_KEY_STATE, XenbusState, domainPath } from '../../shared/public/io/xenbus.ts';
import { DESTROY_TIMEOUT_MS, waitForState } from './devices.ts';

/** The backend states in which nothing of the frontend is mapped: nothing to reset. */
const UNMAPPED: readonly number[] = [XenbusState.Initialising, XenbusState.InitWait, XenbusState.Closed];

/**
 * Close, on the suspended kernel's behalf, every frontend of `domid` whose backend may hold its
 * rings, and wait until each backend is Closed. Returns how many devices were reset.
 */
export async function resetBackendsForResume(xs: XenbusClient, domid: number, log: (line: string) => void): Promise<number> {
  const homes = await xs.directory('/local/domain').catch(() => [] as string[]);
  const devices: { backend: string; frontend: string }[] = [];
  for (const be of [0, ...homes.map(Number).filter((d) => Number.isInteger(d) && d !== 0 && d !== domid)]) {
    const root = `${domainPath(be)}/${XS_DIR_BACKEND}`;
    for (const type of await xs.directory(root).catch(() => [] as string[])) {
      for (const devid of await xs.directory(`${root}/${type}/${domid}`).catch(() => [] as string[])) {
        const backend = `${root}/${type}/${domid}/${devid}`;
        const state = Number((await xs.tryRead(`${backend}/${XS_KEY_STATE}`)) ?? XenbusState.Closed);
        if (UNMAPPED.includes(state)) continue;
        devices.push({ backend, frontend: `${domainPath(domid)}/${XS_DIR_DEVICE}/${type}/${devid}` });
      }
    }
  }
  // Every frontend said Closed first, then every backend waited for: they let go side by side.
  await Promise.all(devices.map((d) => xs.write(`${d.frontend}/${XS_KEY_STATE}`, String(XenbusState.Closed))));
  await Promise.all(devices.map((d) => waitForState(xs, `${d.backend}/${XS_KEY_STATE}`, (s) => s === null || s === XenbusState.Closed,
    DESTROY_TIMEOUT_MS, `backend ${d.backend} did not let go of the suspended kernel's rings`)
    .catch((e: Error) => log(`xl: ${e.message} within ${DESTROY_TIMEOUT_MS / 1000} s; resuming all the same`))));
  if (devices.length > 0) log(`xl: domain ${domid}: ${devices.length} backend(s) let go of the suspended kernel's rings before its resume`);
  return devices.length;
}
