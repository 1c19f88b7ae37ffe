/*
 * One sample of the whole host for `ringvisor top` and the web view: the hypervisor's view of
 * every domain, the host's memory, and every device Dom0 serves.
 *
 * Xen: libxenstat's xenstat_get_node (tools/xenstat/libxenstat/src/xenstat.c), which xentop calls
 * once per refresh: XEN_SYSCTL_physinfo for the host, XEN_SYSCTL_getdomaininfolist for the
 * domains, and the backends' sysfs statistics for networks and block devices (here
 * ../../backends/lib/devstats.ts for Dom0's, ./devstats-remote.ts for driver domains'). Rates are the tools' business: they divide the difference of two samples
 * by the time between them, as xentop does. Also the scheduler's view (each pCPU slot, each
 * domain's weight and cap: XEN_DOMCTL_SCHEDOP_getinfo, as xl sched-credit) for the web view's
 * shares, and every numeric physinfo figure by name, so a figure the hypervisor adds (shared,
 * paged pages) reaches the views without a change here.
 */
import type { Hypercalls } from '../../shared/public/hypercall.ts';
import { errnoName } from '../../shared/public/xen.ts';
import { deviceSnapshot } from '../../backends/lib/devstats.ts';
import type { SchedCreditParams } from '../../shared/public/sched.ts';
import type { XenbusClient } from '../../shared/kernel/xenbus/client.ts';
import { remoteDevices } from './devstats-remote.ts';
import type { TopSample } from './protocol.ts';

/** `xs`: Dom0's XenStore client, to read what driver domains publish of their devices. */
export async function topSample(hc: Hypercalls, xs: XenbusClient): Promise<TopSample> {
  const [phys, domains] = await Promise.all([hc.sysctl_physinfo(), hc.sysctl_getdomaininfolist()]);
  if (typeof phys === 'number') throw new Error(`physinfo: ${errnoName(phys)}`);
  if (typeof domains === 'number') throw new Error(`getdomaininfolist: ${errnoName(domains)}`);
  // Each domain's weight and cap, as xl sched-credit reads them; a domain gone meanwhile has none.
  const sched: Record<number, SchedCreditParams> = {};
  await Promise.all(domains.map(async (d) => {
    const r = await hc.domctl_scheduler_op({ op: 'getinfo', domid: d.domid });
    if (typeof r === 'object' && r !== null && typeof (r as SchedCreditParams).weight === 'number') sched[d.domid] = r as SchedCreditParams;
  }));
  // physinfo's numeric figures, whatever they are, and its memory-management counters (page
  // sharing, paging, PoD: what `ringvisor info` lists under mm): the tools show each by its name.
  const host: Record<string, number> = {};
  for (const [k, v] of Object.entries(phys)) if (typeof v === 'number') host[k] = v;
  for (const [k, v] of Object.entries(phys.mm ?? {})) if (typeof v === 'number' && !(k in host)) host[k] = v;
  return {
    time: performance.timeOrigin + performance.now(),
    nr_cpus: phys.nr_cpus,
    total_pages: phys.total_pages,
    free_pages: phys.free_pages,
    domains,
    devices: [...deviceSnapshot(), ...await remoteDevices(xs, domains.map((d) => d.domid))]
      .sort((a, b) => a.frontend - b.frontend || a.kind.localeCompare(b.kind) || a.devid - b.devid),
    host,
    pcpus: phys.pcpus,
    sched,
  };
}
