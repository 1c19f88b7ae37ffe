/*
 * The devices driver domains serve, for `ringvisor top` and the web view: read from the
 * statistics each driver domain publishes in XenStore (backends/lib/devstats-publish.ts), beside
 * the devices Dom0 serves itself (backends/lib/devstats.ts).
 *
 * Xen: xentop's libxenstat reads the backends' counters from sysfs (xenstat_linux.c), which shows
 * only the backends of the domain xentop runs in; a driver domain's kernel has its own. Here each
 * driver domain writes its devices' counters into its data/devstats once a period, and Dom0 reads
 * them at each sample: a row is at most one publication period old.
 *
 * What a domain writes in its own data/ is its word, not the hypervisor's: a row is shown only
 * for a device the toolstack made that domain the backend of (its backend/<kind>/<fe>/<devid>
 * directory exists, written by Dom0), and only counters that are non-negative integers.
 */
import type { XenbusClient } from '../../shared/kernel/xenbus/client.ts';
import { backendPath, domainPath } from '../../shared/public/io/xenbus.ts';
import type { DeviceRow, RingView } from '../../backends/lib/devstats.ts';
import { DEVSTATS_DIR } from '../../backends/lib/devstats-publish.ts';

const RING_FIELDS = ['size', 'req_prod', 'req_event', 'rsp_prod', 'rsp_event', 'req_cons', 'rsp_prod_pvt'] as const;

const count = (s: string | null): number | null => (s !== null && /^\d{1,15}$/.test(s) ? Number(s) : null);

/** Every device row the domains in `domids` (not Dom0) publish and are the toolstack's backend of. */
export async function remoteDevices(xs: XenbusClient, domids: readonly number[]): Promise<DeviceRow[]> {
  const rows: DeviceRow[] = [];
  await Promise.all(domids.filter((d) => d !== 0).map(async (dd) => {
    const base = `${domainPath(dd)}/${DEVSTATS_DIR}`;
    const names = await xs.directory(base).catch(() => [] as string[]);
    for (const name of names) {
      const dir = `${base}/${name}`;
      const row = await readRow(xs, dd, dir, name).catch(() => null);
      if (row !== null) rows.push(row);
    }
  }));
  return rows;
}

async function readRow(xs: XenbusClient, dd: number, dir: string, name: string): Promise<DeviceRow | null> {
  const kind = await xs.tryRead(`${dir}/kind`);
  const frontend = count(await xs.tryRead(`${dir}/frontend`));
  const devid = count(await xs.tryRead(`${dir}/devid`));
  if (kind === null || !/^[a-z0-9-]{1,32}$/.test(kind) || frontend === null || devid === null) return null;
  // The toolstack's record that this domain serves that device; without it, the row is a claim.
  if ((await xs.tryRead(`${backendPath(dd, kind, frontend, devid)}/state`)) === null) return null;
  const stats: Record<string, number> = {};
  for (const key of await xs.directory(`${dir}/statistics`).catch(() => [] as string[])) {
    const v = count(await xs.tryRead(`${dir}/statistics/${key}`));
    if (v !== null) stats[key] = v;
  }
  const rings: RingView[] = [];
  for (const ring of await xs.directory(`${dir}/rings`).catch(() => [] as string[])) {
    const r: Partial<Record<(typeof RING_FIELDS)[number], number>> = {};
    for (const f of RING_FIELDS) {
      const v = count(await xs.tryRead(`${dir}/rings/${ring}/${f}`));
      if (v !== null) r[f] = v;
    }
    if (RING_FIELDS.every((f) => r[f] !== undefined)) rings.push({ name: ring, ...(r as Record<(typeof RING_FIELDS)[number], number>) });
  }
  return { kind, frontend, devid, name, stats, rings, backend: dd };
}
