/*
 * The hypercalls a vCPU thread cannot finish alone: the privileged domctls and sysctls, which need
 * the control thread's list of domains and its vCPU threads, and SCHEDOP_remote_shutdown.
 *
 * Xen: do_domctl (xen/common/domctl.c) and do_sysctl (xen/common/sysctl.c), each behind its
 * XSM/IS_PRIV check (xsm_domctl: is_control_domain(current->domain)), with XEN_SYSCTL_tbuf_op
 * (xentrace's buffers) among the sysctls; SCHEDOP_remote_shutdown (xen/common/sched/core.c).
 *
 * The privilege check is made here, in the calling thread, so that an unprivileged guest's request
 * never reaches the control thread; the work is then forwarded (ControlChannel.domctl) and done by
 * hypervisor/domctl.ts there. The few that touch only shared state (vCPU context, page types, the unpause,
 * log-dirty, the trace buffers) run here instead.
 *
 * ./hypercall.ts's HypercallTable extends this class: one object is handed to the kernel, and its
 * state is in #private fields of each class, so nothing a guest can walk reaches the Caller. Each
 * class keeps its own #enter for that reason (a #private member is its class's only).
 */
import type { SchedOp } from '../shared/public/sched.ts';
import type { CreatedDomain, DomainConfig, DomainInfo, PhysInfo } from '../shared/public/hypercall.ts';
import { XEN_EPERM, type ShutdownReason } from '../shared/public/xen.ts';
import type { ShadowOpResult } from '../shared/public/domctl.ts';
import type { PciDeviceInfo } from '../shared/public/hw/sc.ts';
import { TRC_ALL, TRC_PV, TRC_PV_HYPERCALL, type TraceRecord } from '../shared/public/trace.ts';
import { HYPERCALL_IDS } from '../shared/public/hypercall-ids.ts';
import type { Caller } from './caller.ts';
import { shadow_op } from './mm/log-dirty.ts';
import { getpageframeinfo3_op, getvcpucontext, setvcpucontext } from './domctl-vcpucontext.ts';
import { unpausedomain } from './domctl-unpause.ts';
import type { VcpuScheduler } from './schedule.ts';
import * as trace from './trace.ts';

// Copied once: an imported binding read per request costs some 15 ns under tsx (hypervisor/trace.ts).
const { drainTrace, setTraceMask } = trace;
/** Each entry's TRC_PV_HYPERCALL id, as a module-local object (see the note on imported bindings above). */
const HC = HYPERCALL_IDS;

/** What the vCPU thread offers the table for calls it cannot finish alone. */
export interface ControlChannel {
  domctl(op: string, args: unknown[]): Promise<unknown>;
  console(text: string): void;
  /** A line for the hypervisor's own log ("(XEN) ..."), not the domain's console. */
  xenLog(text: string): void;
  shutdown(reason: ShutdownReason, detail: string): never;
}

export class ControlHypercalls {
  readonly #c: Caller;
  readonly #sched: VcpuScheduler;
  readonly #control: ControlChannel;

  constructor(c: Caller, sched: VcpuScheduler, control: ControlChannel) {
    this.#c = c;
    this.#sched = sched;
    this.#control = control;
  }

  /* ./hypercall.ts's #enter, for this class's entries: count, trace, preemption point. */
  #enter(id: number): void {
    const c = this.#c;
    c.count('hypercalls');
    const tr = c.trace;
    if (tr.on(TRC_PV)) tr.write(TRC_PV_HYPERCALL, id >>> 8, id & 0xff, 0, 0);
    this.#sched.preemptionPoint();
  }

  /* domctl */
  async #domctl<T>(id: number, op: string, ...args: unknown[]): Promise<T | number> {
    this.#enter(id);
    if (!this.#c.privileged) return -XEN_EPERM;
    return (await this.#control.domctl(op, args)) as T | number;
  }
  domctl_createdomain(config: DomainConfig): Promise<CreatedDomain | number> {
    return this.#domctl<CreatedDomain>(HC.domctl_createdomain, 'createdomain', config);
  }
  domctl_destroydomain(domid: number): Promise<number> {
    return this.#domctl<number>(HC.domctl_destroydomain, 'destroydomain', domid);
  }
  domctl_pausedomain(domid: number): Promise<number> {
    return this.#domctl<number>(HC.domctl_pausedomain, 'pausedomain', domid);
  }
  domctl_vcpus_loaded(domid: number): Promise<number> {
    return this.#domctl<number>(HC.domctl_vcpus_loaded, 'vcpus_loaded', domid);
  }
  /* Shared state only: answered here, not behind the control thread's work (./domctl-unpause.ts). */
  domctl_unpausedomain(domid: number): Promise<number> {
    this.#enter(HC.domctl_unpausedomain);
    return Promise.resolve(this.#c.privileged ? unpausedomain(this.#c.hv, domid) : -XEN_EPERM);
  }
  domctl_resumedomain(domid: number): Promise<number> {
    return this.#domctl<number>(HC.domctl_resumedomain, 'resumedomain', domid);
  }
  domctl_getdomaininfo(domid: number): Promise<DomainInfo | number> {
    return this.#domctl<DomainInfo>(HC.domctl_getdomaininfo, 'getdomaininfo', domid);
  }
  domctl_mem_sharing(settings: { run?: boolean; pages_to_scan?: number; sleep_millisecs?: number }): Promise<unknown> {
    return this.#domctl<unknown>(HC.domctl_mem_sharing, 'mem_sharing', settings);
  }
  domctl_mem_paging(settings: { run?: boolean; low_water_pages?: number }): Promise<unknown> {
    return this.#domctl<unknown>(HC.domctl_mem_paging, 'mem_paging', settings);
  }
  domctl_set_pod_target(domid: number, target_kib: number): Promise<number> {
    return this.#domctl<number>(HC.domctl_set_pod_target, 'set_pod_target', domid, target_kib);
  }
  domctl_max_mem(domid: number, max_kib: number): Promise<number> {
    return this.#domctl<number>(HC.domctl_max_mem, 'max_mem', domid, max_kib);
  }
  domctl_scheduler_op(op: SchedOp): Promise<unknown> {
    return this.#domctl<unknown>(HC.domctl_scheduler_op, 'scheduler_op', op);
  }
  domctl_getvcpucontext(domid: number): number {
    this.#enter(HC.domctl_getvcpucontext);
    if (!this.#c.privileged) return -XEN_EPERM;
    return getvcpucontext(this.#c.hv, domid);
  }
  domctl_getpageframeinfo3(domid: number, gfns: ArrayLike<number>, types: Int32Array, n: number): number {
    this.#enter(HC.domctl_getpageframeinfo3);
    if (!this.#c.privileged) return -XEN_EPERM;
    return getpageframeinfo3_op(this.#c.hv, domid, gfns, types, n);
  }
  domctl_setvcpucontext(domid: number, resume_gfn: number): number {
    this.#enter(HC.domctl_setvcpucontext);
    if (!this.#c.privileged) return -XEN_EPERM;
    return setvcpucontext(this.#c.hv, domid, resume_gfn);
  }
  /* Log-dirty works on shared state only, so it runs here, in the caller's thread (mm/log-dirty.ts). */
  domctl_shadow_op(domid: number, op: number, mode: number, bitmap: Int32Array | null, pages: number): ShadowOpResult | number {
    this.#enter(HC.domctl_shadow_op);
    if (!this.#c.privileged) return -XEN_EPERM;
    return shadow_op(this.#c.hv, domid, op, mode, bitmap, pages);
  }

  domctl_assign_device(dev: number, domid: number): Promise<number> {
    return this.#domctl<number>(HC.domctl_assign_device, 'assign_device', dev, domid);
  }
  domctl_deassign_device(dev: number, domid: number): Promise<number> {
    return this.#domctl<number>(HC.domctl_deassign_device, 'deassign_device', dev, domid);
  }
  domctl_storage_attach(dev: number, path: string, readOnly: boolean): Promise<number> {
    return this.#domctl<number>(HC.domctl_storage_attach, 'storage_attach', dev, path, readOnly);
  }
  domctl_storage_detach(nsid: number): Promise<number> {
    return this.#domctl<number>(HC.domctl_storage_detach, 'storage_detach', nsid);
  }
  sysctl_pci_info(): Promise<PciDeviceInfo[] | number> {
    return this.#domctl<PciDeviceInfo[]>(HC.sysctl_pci_info, 'pci_info');
  }

  /* sysctl: privileged like domctl, and answered by the control thread, which keeps the list */
  sysctl_getdomaininfolist(): Promise<DomainInfo[] | number> {
    return this.#domctl<DomainInfo[]>(HC.sysctl_getdomaininfolist, 'getdomaininfolist');
  }
  sysctl_physinfo(): Promise<PhysInfo | number> {
    return this.#domctl<PhysInfo>(HC.sysctl_physinfo, 'physinfo');
  }
  sched_remote_shutdown(domid: number, reason: ShutdownReason): Promise<number> {
    return this.#domctl<number>(HC.sched_remote_shutdown, 'remote_shutdown', domid, reason);
  }

  /* sysctl tbuf_op: xentrace's buffers */
  sysctl_tbuf_set_evt_mask(mask: number): number {
    this.#enter(HC.sysctl_tbuf_set_evt_mask);
    if (!this.#c.privileged) return -XEN_EPERM;
    setTraceMask(this.#c.hv.buffers.trace, mask & TRC_ALL);
    return 0;
  }
  sysctl_tbuf_drain(out: TraceRecord[]): number {
    this.#enter(HC.sysctl_tbuf_drain);
    if (!this.#c.privileged) return -XEN_EPERM;
    drainTrace(this.#c.hv.buffers.trace, out);
    return 0;
  }
}
