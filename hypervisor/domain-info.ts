/*
 * XEN_DOMCTL_getdomaininfo: what `xl list` shows of one domain, read from the shared state.
 *
 * Xen: xen/common/domctl.c getdomaininfo(), which sums the vCPUs' run times and derives the
 * running/blocked/paused/shutdown flags from the vCPUs' run states and the domain's pause count.
 *
 * Apart from host.ts because it only reads: the words of shared memory the vCPU threads and the
 * memory daemons write (hypervisor/state.ts, hypervisor/mm/mm-state.ts), no lifecycle. The host
 * passes the three things only its records hold: the name, its vCPU threads, its physmap's size.
 */
import type { DomainInfo } from '../shared/public/hypercall.ts';
import { SHUTDOWN_NAMES } from '../shared/public/xen.ts';
import { MD, md } from './mm/mm-state.ts';
import {
  COUNTERS, D, DOMF_PRIVILEGED, DOMSTATE_RUNNING, DOMSTATE_SHUTDOWN, MAX_VCPUS, RUNSTATE_blocked, RUNSTATE_offline, RUNSTATE_running, V, VT,
  type HypervisorState,
} from './state.ts';

/** Hypervisor counters summed over a domain's vCPUs. */
export function domainCounters(hv: HypervisorState, domid: number): Record<string, number> {
  const out: Record<string, number> = {};
  for (const name of COUNTERS) out[name] = hv.counter(domid, name);
  return out;
}

/** `vcpuThreads`: the vCPUs built (max_vcpus), the ones whose run state is read. */
export function getdomaininfo(hv: HypervisorState, domid: number, name: string, vcpuThreads: number, physmapPages: number): DomainInfo {
  const base = domid * D.WORDS;
  const state = Atomics.load(hv.domains, base + D.STATE);
  const reason = hv.domains[base + D.SHUTDOWN_REASON];
  let cpu = 0;
  let running = false;
  let blocked = true; // Xen's getdomaininfo starts from "blocked" and clears it for any vCPU up and not blocked
  const t = performance.timeOrigin + performance.now();
  for (let v = 0; v < MAX_VCPUS; v++) {
    const base = (domid * MAX_VCPUS + v) * VT.WORDS;
    cpu += hv.vcpuTime[base + VT.RUNNING];
    if (v >= vcpuThreads) continue;
    const rs = Atomics.load(hv.vcpus, hv.vcpu(domid, v, V.RUNSTATE));
    const alive = Atomics.load(hv.vcpus, hv.vcpu(domid, v, V.ALIVE)) === 1;
    // The running period in progress counts too (time is charged at each runstate change).
    if (rs === RUNSTATE_running && alive) {
      cpu += t - hv.vcpuTime[base + VT.SINCE];
      running = true;
    }
    if (alive && rs !== RUNSTATE_offline && rs !== RUNSTATE_blocked) blocked = false;
  }
  return {
    domid,
    name,
    state: state === DOMSTATE_SHUTDOWN ? 'shutdown' : state !== DOMSTATE_RUNNING ? 'dying'
      : hv.domains[base + D.PAUSE_COUNT] > 0 ? 'paused' : 'running',
    shutdown_reason: reason >= 0 ? SHUTDOWN_NAMES[reason] : null,
    vcpus: Math.max(0, hv.domains[base + D.ONLINE_VCPUS]),
    max_vcpus: hv.domains[base + D.NR_VCPUS],
    // As Xen reports a PoD guest: the frames it holds plus the PoD entries its target covers
    // (Xen's PoD cache); what it holds shared or paged out is in shr_pages and paged_pages.
    tot_pages: Math.max(hv.domains[base + D.TOT_PAGES], Math.min(hv.domains[base + D.TOT_PAGES] + hv.mm[md(domid, MD.POD_ENTRIES)],
      hv.mm[md(domid, MD.POD_TARGET)] - hv.mm[md(domid, MD.SHARED)] - hv.mm[md(domid, MD.PAGED)])),
    max_pages: hv.domains[base + D.MAX_PAGES],
    physmap_pages: physmapPages,
    shr_pages: hv.mm[md(domid, MD.SHARED)],
    paged_pages: hv.mm[md(domid, MD.PAGED)],
    pod_pages: hv.mm[md(domid, MD.POD_ENTRIES)],
    privileged: (hv.domains[base + D.FLAGS] & DOMF_PRIVILEGED) !== 0,
    cpu_time_ms: cpu,
    running,
    blocked: blocked && !running,
    counters: domainCounters(hv, domid),
  };
}
