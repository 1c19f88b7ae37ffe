/*
 * What `xl list` and `xl info` print, shaped from the hypervisor's answers.
 *
 * Xen: tools/xl/xl_info.c (list_domains: Mem as the domain's current pages, State as the r/b/p/s/c/d
 * flags; main_info: libxl_get_physinfo's total_memory and free_memory in MiB, xen_version, xen_caps).
 *
 * Apart from libxl.ts because it only converts: DomainInfo and PhysInfo in, the control
 * protocol's ListedDomain and HostInfo (./protocol.ts) out.
 */
import type { DomainInfo, PhysInfo } from '../../shared/public/hypercall.ts';
import type { HostInfo, ListedDomain } from './protocol.ts';

/** One row of `xl list`. */
export function listedDomain(i: DomainInfo): ListedDomain {
  return {
    // The guest's current size: tot_pages (with the PoD entries its target covers), shared and paged out.
    name: i.name, domid: i.domid, vcpus: i.vcpus, maxVcpus: i.max_vcpus,
    memMiB: Math.floor(((i.tot_pages + (i.shr_pages ?? 0) + (i.paged_pages ?? 0)) * 4096) / 1048576),
    running: i.running, blocked: i.blocked, paused: i.state === 'paused', shutdown: i.state === 'shutdown',
    shutdownReason: i.state === 'shutdown' ? i.shutdown_reason : null, dying: i.state === 'dying', cpuSeconds: i.cpu_time_ms / 1000,
  };
}

/** `xl info`: the host's figures, and where its sockets and run directory are. */
export function hostInfo(p: PhysInfo, runDir: string, xenstoredSocket: string, xlSocket: string): HostInfo {
  return {
    nr_cpus: p.nr_cpus, total_memory: Math.floor((p.total_pages * 4096) / 1048576), free_memory: Math.floor((p.free_pages * 4096) / 1048576),
    nr_domains: p.nr_domains, max_domains: p.max_domains, xen_version: 'ringvisor-0.1', xen_caps: 'xen-3.0-x86_64 hvm-3.0-x86_64',
    run_dir: runDir, xenstored_socket: xenstoredSocket, xl_socket: xlSocket, pcpus: p.pcpus, mm: p.mm,
  };
}
