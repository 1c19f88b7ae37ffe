/*
 * vCPU hot-plug, the toolstack's half: the guest's `cpu/N/availability` nodes.
 *
 * Xen: libxl__build_post (libxl_dom.c) writes `cpu/<N>/availability` for every vCPU the domain
 * has (its maxvcpus): "online" for the first `vcpus`, "offline" for the rest. `xl vcpu-set D N`
 * (tools/xl/xl_vcpu.c vcpuset, libxl_set_vcpuonline, libxl__set_vcpuonline_xenstore) rewrites
 * them in one transaction: vCPUs 0..N-1 online, the others offline. That is all the toolstack
 * does for a PV guest; the guest kernel watches the nodes and brings its vCPUs up and down with
 * VCPUOP_up / VCPUOP_down (Linux drivers/xen/cpu_hotplug.c; ringvisor shared/kernel/smp.ts), so
 * `xl vcpu-set` returns before the guest has acted, and a guest without the watch ignores it.
 *
 * xl's refusals, kept: N that is not a number ("Invalid argument"), N = 0 ("Requested 0
 * VCPUs!"), N above maxvcpus ("Requested N VCPUs, however maxcpus is M!"), and, unless
 * --ignore-host, N above both the vCPUs online and the host's pCPUs ("You are overcommitting").
 *
 * The nodes are declared in shared/public/vcpu.ts; ./xenstore-home.ts writes them at build.
 */
import type { XenbusClient } from '../../shared/kernel/xenbus/client.ts';
import type { Hypercalls } from '../../shared/public/hypercall.ts';
import { errnoName } from '../../shared/public/xen.ts';
import { XlError } from './libxl.ts';
import { writeVcpuAvailability } from './xenstore-home.ts';

export interface VcpuSetResult {
  domid: number;
  /** vCPUs asked to be online, and how many the domain has. */
  online: number;
  max: number;
}

/** xl vcpu-set: check as xl and libxl do, then write the nodes. */
export async function vcpuSet(xs: XenbusClient, hc: Hypercalls, domid: number, count: string, ignoreHost: boolean): Promise<VcpuSetResult> {
  if (!/^[0-9]+$/.test(count) || Number(count) > 0x7fff_ffff) {
    throw new XlError('failed', `vcpu-set: "${count}": Invalid argument (expected a number of vCPUs)`);
  }
  const n = Number(count);
  const info = await hc.domctl_getdomaininfo(domid);
  if (typeof info === 'number') throw new XlError('domain', `Domain ${domid} does not exist (${errnoName(info)})`);
  if (!ignoreHost) {
    const phys = await hc.sysctl_physinfo();
    if (typeof phys === 'number') throw new XlError('failed', `physinfo: ${errnoName(phys)}`);
    if (n > info.vcpus && n > phys.nr_cpus) {
      throw new XlError('failed', `You are overcommitting! You have ${phys.nr_cpus} physical CPUs and want ${n} vCPUs! ` +
        'Aborting, use --ignore-host to continue');
    }
  }
  if (n === 0) throw new XlError('failed', `libxl_set_vcpuonline: Domain ${domid}: Requested 0 VCPUs!`);
  if (n > info.max_vcpus) {
    throw new XlError('failed', `libxl_set_vcpuonline: Domain ${domid}: Requested ${n} VCPUs, however maxcpus is ${info.max_vcpus}! ` +
      '(maxvcpus in the config sets it, at create)');
  }
  await xs.transaction((t) => writeVcpuAvailability(xs, domid, n, info.max_vcpus, t));
  return { domid, online: n, max: info.max_vcpus };
}
