/*
 * A driver domain's device statistics, published where Dom0's tools can read them: each device
 * this domain's backends serve (./devstats.ts) gets a directory in XenStore,
 * /local/domain/<dd>/data/devstats/<name>/, with `kind`, `frontend` and `devid`, a `statistics/`
 * node per counter (xentop's names: oo_req, rd_req, wr_req, rd_sect, wr_sect, ...) and a
 * `rings/<ring>/` node per ring index (req_prod, rsp_prod, ...).
 *
 * Xen/Linux: a backend's counters are its kernel's (xen-blkback's sysfs
 * /sys/bus/xen-backend/devices/vbd-<fe>-<devid>/statistics/), and libxenstat reads sysfs only in
 * the domain xentop runs in, so a driver domain's are out of Dom0's reach. The channel every
 * domain shares with the toolstack is XenStore, and guests already publish figures there for
 * Dom0's tools: XenServer's guest agent writes data/meminfo_free and friends into the guest's own
 * data/ directory on a period. A driver domain does the same with its devices' counters, once per
 * period and only the figures that changed, and removes a device's directory when the device goes.
 * Not under the backend directory: the backend bus watches that subtree (every write there would
 * wake this domain's own xenbus enumeration). Dom0's top reads them with the rest of its sample
 * (dom0/toolstack/devstats-remote.ts). The figures are at most one period old: a counter is
 * exact once its device has been idle for a period.
 *
 * Not per request: the period is a publication interval, like a guest agent's, and nothing on the
 * data path waits for it. Dom0 does not publish: its tools read ./devstats.ts directly.
 */
import type { Kernel } from '../../shared/kernel/kernel.ts';
import type { XenbusClient } from '../../shared/kernel/xenbus/client.ts';
import { deviceSnapshot } from './devstats.ts';

/** How often a driver domain refreshes its devices' nodes (xentop's default refresh is 3 s). */
export const DEVSTATS_PERIOD_MS = 1000;

/** Relative to a domain's home: one directory per device, by its Linux name (vbd-<fe>-<devid>). */
export const DEVSTATS_DIR = 'data/devstats';

/** Publish this domain's devices' figures every `periodMs` until `stop()`. */
export function publishDeviceStats(k: Kernel, xs: XenbusClient, periodMs = DEVSTATS_PERIOD_MS): { stop(): void } {
  let stopped = false;
  /** What was last written, by path relative to the home; and the devices published. */
  const written = new Map<string, string>();
  let published = new Set<string>();
  const put = async (path: string, value: string) => {
    if (written.get(path) === value) return;
    await xs.write(path, value);
    written.set(path, value);
  };
  void (async () => {
    while (!stopped) {
      const now = new Set<string>();
      try {
        for (const d of deviceSnapshot()) {
          const dir = `${DEVSTATS_DIR}/${d.name}`;
          now.add(dir);
          await put(`${dir}/kind`, d.kind);
          await put(`${dir}/frontend`, String(d.frontend));
          await put(`${dir}/devid`, String(d.devid));
          for (const [key, v] of Object.entries(d.stats)) await put(`${dir}/statistics/${key}`, String(v));
          for (const r of d.rings) {
            for (const [key, v] of Object.entries(r)) if (key !== 'name') await put(`${dir}/rings/${r.name}/${key}`, String(v));
          }
        }
        for (const dir of published) {
          if (now.has(dir)) continue;
          await xs.rm(dir);
          for (const p of written.keys()) if (p.startsWith(`${dir}/`)) written.delete(p);
        }
        published = now;
      } catch {
        // XenStore refused (the domain is being torn down): try again next period, from scratch.
        written.clear();
      }
      await k.timers.sleep(periodMs);
    }
  })();
  return { stop: () => { stopped = true; } };
}
