/*
 * The toolstack's side of driver domains: which devices each driver domain serves, what happens
 * to them when it dies, and how a restarted one takes them over.
 *
 * Xen: libxl__device_generic_add with a backend domid other than 0 (the backend directory under
 * the driver domain's home, /local/domain/<dd>/backend/<type>/<fe>/<devid>, owned by the driver
 * domain with read for the frontend; the frontend directory owned by the frontend with read for
 * the driver domain: ./xenstore-home.ts addDeviceNodes), and what a frontend does when its device
 * is handed to a new backend: xenbus_dev_resume → talk_to_otherend re-reads `backend` and
 * `backend-id` and watches the new backend's state, as after a migration.
 *
 * A driver domain's death. Its backends cannot say Closed for themselves: once the hypervisor has
 * destroyed it (every grant it had mapped unmapped, every port closed, its storage controller
 * back with Dom0: hypervisor/host.ts), the toolstack writes Closed into each backend directory it
 * served, so every frontend sees its backend go Closed without Closing, keeps its unanswered
 * requests and waits (shared/kernel/xenbus/frontend.ts, "A backend that dies"; blkfront's
 * blkif_recover). The devices are remembered by the dead domain's name: its guests' configs say
 * `backend=NAME`, and a domain of that name that comes up (on_crash = "restart", or created again)
 * takes them over. adopt() gets it its storage controller back (its config's pci = [...], done by
 * the caller) and, in one transaction per device: a backend directory under the new domain with
 * the same keys (physical-device too: the namespace stayed attached to the controller, as a disk
 * stays in its drive), the frontend directory's permissions made readable by the new domain (node
 * by node: xenstored checks each node's own permissions), and the frontend's backend and
 * backend-id pointed at it. The new blkback reaches InitWait, the frontend reconnects and
 * re-issues. Nothing here touches a request: the data path never passes through Dom0.
 *
 * A driver domain that is not restarted leaves its guests' disks waiting, as in Xen; destroying
 * those guests lets go of everything (forgetFrontend, and the namespaces in ./block-hotplug.ts).
 */
import type { XenbusClient } from '../../shared/kernel/xenbus/client.ts';
import {
  XS_KEY_BACKEND, XS_KEY_BACKEND_ID, XS_KEY_FRONTEND, XS_KEY_FRONTEND_ID, XS_KEY_ONLINE, XS_KEY_STATE, XenbusState,
  backendPath, domainPath, frontendPath,
} from '../../shared/public/io/xenbus.ts';
import { XS_PERM_NONE, XS_PERM_READ, type XsPermission } from '../../shared/public/io/xs_wire.ts';

/** What a device record needs (./xenstore-home.ts DeviceSpec). */
export interface ServedSpec {
  type: string;
  frontend: number;
  devid: number;
  backend?: number;
  backKeys?: Record<string, string>;
}

interface Served {
  spec: ServedSpec;
  /** The backend domain's name: a restarted driver domain is found by it. */
  backendName: string;
  /** Its backend domain is gone; waiting for one of that name. */
  orphan: boolean;
}

/** How long a takeover waits for a frontend to notice its backend died (libxl's LIBXL_INIT_TIMEOUT). */
const ADOPT_WAIT_MS = 10_000;

/** blkback's fault injection key (backends/blkback/xenbus.ts). */
const CRASH_KEY = 'ringvisor-crash-domain-after';

const key = (s: ServedSpec) => `${s.type}/${s.frontend}/${s.devid}`;

export class DriverDomains {
  private readonly served = new Map<string, Served>();

  constructor(private readonly xs: XenbusClient, private readonly log: (line: string) => void) {}

  /** A device was added with a backend outside Dom0. */
  async record(spec: ServedSpec): Promise<void> {
    const be = spec.backend ?? 0;
    if (be === 0) return;
    const name = (await this.xs.tryRead(`${domainPath(be)}/name`)) ?? `domain ${be}`;
    this.served.set(key(spec), { spec: { ...spec }, backendName: name, orphan: false });
  }

  /** The device was removed. */
  drop(spec: ServedSpec): void {
    this.served.delete(key(spec));
  }

  /**
   * `domid` is gone (call after the hypervisor destroyed it, before its home is removed): every
   * backend it served says Closed, and its devices wait for a domain of its name.
   */
  async backendGone(domid: number): Promise<number> {
    let n = 0;
    for (const s of this.served.values()) {
      if (s.orphan || s.spec.backend !== domid) continue;
      s.orphan = true;
      n++;
      const state = `${backendPath(domid, s.spec.type, s.spec.frontend, s.spec.devid)}/${XS_KEY_STATE}`;
      // Only where the directory still is: a late write must not make nodes again.
      const written = await this.xs.transaction(async (t) => {
        if ((await this.xs.tryRead(state, t)) === null) return false;
        await this.xs.write(state, String(XenbusState.Closed), t);
        return true;
      });
      // The frontend reads the state when its watch fires: keep the directory until it has seen
      // Closed (the caller removes the dead domain's home next).
      if (written) await this.frontendLetGo(frontendPath(s.spec.frontend, s.spec.type, s.spec.devid));
    }
    if (n > 0) this.log(`xl: backend domain ${domid} is gone; its ${n} device(s) now wait for a domain of its name`);
    return n;
  }

  /** The frontend `domid` is gone: its records go, and the backend directories in driver domains with them. */
  async forgetFrontend(domid: number): Promise<void> {
    for (const [k, s] of [...this.served]) {
      if (s.spec.frontend !== domid) continue;
      this.served.delete(k);
      if (!s.orphan) await this.xs.rm(backendPath(s.spec.backend!, s.spec.type, domid, s.spec.devid)).catch(() => undefined);
    }
  }

  /** `domid` (named `name`) takes over the devices a dead domain of that name served (see the header). */
  async adopt(name: string, domid: number): Promise<number> {
    const orphans = [...this.served.values()].filter((s) => s.orphan && s.backendName === name);
    for (const s of orphans) {
      const d = s.spec;
      const fe = frontendPath(d.frontend, d.type, d.devid);
      // Not before the frontend has seen its backend die (it left Initialised / Connected): a
      // new backend must never find the dead one's ring-refs and connect to them.
      await this.frontendLetGo(fe);
      const bk = backendPath(domid, d.type, d.frontend, d.devid);
      await this.xs.transaction(async (t) => {
        await this.xs.mkdir(bk, t);
        await this.xs.setPerms(bk, perms(domid, d.frontend), t);
        // A fault injected once (backends/blkback/xenbus.ts) is not handed to the successor.
        const { [CRASH_KEY]: _injected, ...keys } = d.backKeys ?? {};
        const back = {
          [XS_KEY_FRONTEND]: fe, [XS_KEY_FRONTEND_ID]: String(d.frontend), [XS_KEY_ONLINE]: '1',
          [XS_KEY_STATE]: String(XenbusState.Initialising), ...keys,
        };
        for (const [k, v] of Object.entries(back)) await this.xs.write(`${bk}/${k}`, v, t);
        await this.regrant(fe, perms(d.frontend, domid), t);
        await this.xs.write(`${fe}/${XS_KEY_BACKEND}`, bk, t);
        await this.xs.write(`${fe}/${XS_KEY_BACKEND_ID}`, String(domid), t);
      });
      d.backend = domid;
      s.orphan = false;
    }
    if (orphans.length > 0) this.log(`xl: ${name} (domain ${domid}) takes over the ${orphans.length} device(s) its predecessor served`);
    return orphans.length;
  }

  /** Until the frontend's state is neither Initialised nor Connected (or it is gone), at most ADOPT_WAIT_MS. */
  private async frontendLetGo(fe: string): Promise<void> {
    const path = `${fe}/${XS_KEY_STATE}`;
    const done = (v: string | null) => v === null || (Number(v) !== XenbusState.Initialised && Number(v) !== XenbusState.Connected);
    let release!: () => void;
    const gone = new Promise<void>((resolve) => { release = resolve; });
    const timer = setTimeout(() => {
      this.log(`xl: ${fe} did not notice its backend die within ${ADOPT_WAIT_MS / 1000} s; handing it over anyway`);
      release();
    }, ADOPT_WAIT_MS);
    const w = await this.xs.watch(path, async () => { if (done(await this.xs.tryRead(path))) release(); });
    try {
      await gone;
    } finally {
      clearTimeout(timer);
      await w.unwatch().catch(() => undefined);
    }
  }

  /** Set `p` on `path` and every node below it. */
  private async regrant(path: string, p: XsPermission[], t: number): Promise<void> {
    await this.xs.setPerms(path, p, t);
    for (const child of await this.xs.directory(path, t)) await this.regrant(`${path}/${child}`, p, t);
  }
}

/** libxl's device directory permissions: owned by one end, readable by the other. */
function perms(owner: number, reader: number): XsPermission[] {
  return [{ id: owner, perms: XS_PERM_NONE }, { id: reader, perms: XS_PERM_READ }];
}
