/*
 * One sample of the whole host for `ringvisor top` and the web view: the hypervisor's view of
 * every domain, the host's memory, and every device Dom0 serves.
 *
 * Xen: libxenstat's xenstat_get_node (tools/xenstat/libxenstat/src/xenstat.c), which xentop calls
 * once per refresh: XEN_SYSCTL_physinfo for the host, XEN_SYSCTL_getdomaininfolist for the
 * domains, and the backends' sysfs statistics for networks and block devices (here
 * ../lib/devstats.ts). Rates are the tools' business: they divide the difference of two samples
 * by the time between them, as xentop does.
 */
import type { Hypercalls } from '../../shared/public/hypercall.ts';
import { errnoName } from '../../shared/public/xen.ts';
import { deviceSnapshot } from '../lib/devstats.ts';
import type { TopSample } from './protocol.ts';

export async function topSample(hc: Hypercalls): Promise<TopSample> {
  const [phys, domains] = await Promise.all([hc.sysctl_physinfo(), hc.sysctl_getdomaininfolist()]);
  if (typeof phys === 'number') throw new Error(`physinfo: ${errnoName(phys)}`);
  if (typeof domains === 'number') throw new Error(`getdomaininfolist: ${errnoName(domains)}`);
  return {
    time: performance.timeOrigin + performance.now(),
    nr_cpus: phys.nr_cpus,
    total_pages: phys.total_pages,
    free_pages: phys.free_pages,
    domains,
    devices: deviceSnapshot(),
  };
}
