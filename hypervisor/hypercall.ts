/*
 * The hypercall table: the entry from guest kernel code into the hypervisor.
 *
 * Xen: the hypercall_table of xen/arch/x86 and the do_*_op dispatchers (do_event_channel_op,
 * do_grant_table_op, do_memory_op, do_sched_op, do_console_io, do_domctl, do_sysctl, do_dm_op).
 *
 * One instance per vCPU thread, bound to the Caller the thread was started as. Each call
 * counts itself and passes a preemption point, then runs the handler right here, in the
 * calling thread, on the shared hypervisor state. Only domctl (and SCHEDOP_remote_shutdown and
 * the sysctls, which need the control thread's list of domains) is forwarded to the control thread,
 * after the privilege check has been made here.
 *
 * Each entry is a line or two of dispatch: its count and preemption point (#enter), a trace point
 * where one is defined, then the handler in the file that owns the mechanism (event-channel.ts,
 * grant-table.ts, memory-op.ts, ioreq.ts, domctl-vcpucontext.ts, passthrough/...).
 */
import type { EvtchnStatus } from '../shared/public/event_channel.ts';
import type { GnttabCopy, GnttabMapGrantRef, GnttabUnmapGrantRef } from '../shared/public/grant_table.ts';
import type { DmIoreqServerInfo } from '../shared/public/hvm/dm_op.ts';
import type { SchedOp } from '../shared/public/sched.ts';
import {
  XENMAPSPACE_gmfn_foreign, type CreatedDomain, type DomainConfig, type DomainInfo, type Hypercalls, type PhysInfo,
} from '../shared/public/hypercall.ts';
import { DOMID_SELF, XEN_EINVAL, XEN_EPERM, type ShutdownReason } from '../shared/public/xen.ts';
import type { Caller } from './caller.ts';
import { shadow_op } from './mm/log-dirty.ts';
import type { ShadowOpResult } from '../shared/public/domctl.ts';
import {
  evtchn_alloc_unbound, evtchn_bind_interdomain, evtchn_bind_virq, evtchn_close, evtchn_send, evtchn_status, evtchn_unmask,
} from './event-channel.ts';
import { gnttab_copy, gnttab_map_grant_ref, gnttab_unmap_grant_ref } from './grant-table.ts';
import { dm_set_isa_irq_level, evtchn_bind_pirq } from './hvm-irq.ts';
import {
  acquire_ioreq_page, dm_add_buffered_zone, dm_create_ioreq_server, dm_destroy_ioreq_server, dm_get_ioreq_server_info, dm_map_io_range,
  dm_set_ioreq_server_state, dm_unmap_io_range,
} from './ioreq.ts';
import { add_to_physmap_batch_foreign, remove_from_physmap } from './p2m-foreign.ts';
import { populate_physmap } from './mm/reservation.ts';
import { add_to_physmap, decrease_reservation_op } from './memory-op.ts';
import { getpageframeinfo3_op, getvcpucontext, setvcpucontext } from './domctl-vcpucontext.ts';
import { unpausedomain } from './domctl-unpause.ts';
import type { VcpuScheduler } from './schedule.ts';
import { vcpu_op_down, vcpu_op_is_up, vcpu_op_up } from './vcpu-op.ts';
import * as trace from './trace.ts';
import { pci_owner } from './passthrough/pci.ts';
import { report_iommu_fault } from './passthrough/iommu-fault.ts';
import { sc_doorbell } from './passthrough/storage-controller.ts';
import { nic_doorbell } from './passthrough/nic.ts';
import { PCI_NIC0, SC_STATUS_IOMMU_FAULT, type PciDeviceInfo } from '../shared/public/hw/sc.ts';

// Copied once: an imported binding read per request costs some 15 ns under tsx (hypervisor/trace.ts).
const { drainTrace, setTraceMask } = trace;
import {
  TRC_ALL, TRC_BEGIN, TRC_CLS_MASK, TRC_END, TRC_GUEST, TRC_MEM, TRC_MEM_GRANT_COPY, TRC_MEM_GRANT_MAP, TRC_MEM_GRANT_UNMAP,
  TRC_HVM, TRC_HVM_IRQ, TRC_PV, TRC_PV_EVTCHN_SEND, TRC_PV_HYPERCALL, type TraceRecord,
} from '../shared/public/trace.ts';
import { HYPERCALL_IDS } from '../shared/public/hypercall-ids.ts';
/** Each entry's TRC_PV_HYPERCALL id, as a module-local object (see the note on imported bindings above). */
const HC = HYPERCALL_IDS;
import { D, GRANT_FRAMES, MAX_GUEST_PAGES } from './state.ts';

/** What the vCPU thread offers the table for calls it cannot finish alone. */
export interface ControlChannel {
  domctl(op: string, args: unknown[]): Promise<unknown>;
  console(text: string): void;
  /** A line for the hypervisor's own log ("(XEN) ..."), not the domain's console. */
  xenLog(text: string): void;
  shutdown(reason: ShutdownReason, detail: string): never;
}

export class HypercallTable implements Hypercalls {
  // #private, not TypeScript's `private`: this object is handed to the guest kernel, which must
  // not be able to walk from it to the Caller and through that to the hypervisor's state.
  readonly #c: Caller;
  readonly #sched: VcpuScheduler;
  readonly #control: ControlChannel;

  constructor(c: Caller, sched: VcpuScheduler, control: ControlChannel) {
    this.#c = c;
    this.#sched = sched;
    this.#control = control;
  }

  /*
   * The one dispatch every hypercall passes (Xen's hypercall entry, where TRC_PV_HYPERCALL is
   * written): count it, trace it if the pv class is on, then a preemption point. `id` names the
   * hypercall and its sub-op (shared/public/hypercall-ids.ts); it is a constant at each call.
   */
  #enter(id: number): void {
    this.#count(id);
    this.#sched.preemptionPoint();
  }
  /* The same without the preemption point, for the calls that are one themselves (yield, block). */
  #count(id: number): void {
    const c = this.#c;
    c.count('hypercalls');
    const tr = c.trace;
    if (tr.on(TRC_PV)) tr.write(TRC_PV_HYPERCALL, id >>> 8, id & 0xff, 0, 0);
  }

  /* event_channel_op */
  evtchn_alloc_unbound(dom: number, remote_dom: number): number {
    this.#enter(HC.evtchn_alloc_unbound);
    return evtchn_alloc_unbound(this.#c, dom, remote_dom);
  }
  evtchn_bind_interdomain(remote_dom: number, remote_port: number): number {
    this.#enter(HC.evtchn_bind_interdomain);
    return evtchn_bind_interdomain(this.#c, remote_dom, remote_port);
  }
  evtchn_send(port: number): number {
    this.#enter(HC.evtchn_send);
    const tr = this.#c.trace;
    if (!tr.on(TRC_PV)) return evtchn_send(this.#c, port);
    tr.write(TRC_PV_EVTCHN_SEND | TRC_BEGIN, port, 0, 0, 0);
    const rc = evtchn_send(this.#c, port);
    tr.write(TRC_PV_EVTCHN_SEND | TRC_END, rc, 0, 0, 0);
    return rc;
  }
  evtchn_close(port: number): number {
    this.#enter(HC.evtchn_close);
    return evtchn_close(this.#c, port);
  }
  evtchn_unmask(port: number): number {
    this.#enter(HC.evtchn_unmask);
    return evtchn_unmask(this.#c, port);
  }
  evtchn_status(dom: number, port: number, out: EvtchnStatus): number {
    this.#enter(HC.evtchn_status);
    return evtchn_status(this.#c, dom, port, out);
  }
  evtchn_bind_pirq(pirq: number): number {
    this.#enter(HC.evtchn_bind_pirq);
    return evtchn_bind_pirq(this.#c, pirq);
  }
  evtchn_bind_virq(virq: number, vcpu: number): number {
    this.#enter(HC.evtchn_bind_virq);
    return evtchn_bind_virq(this.#c, virq, vcpu);
  }

  /* grant_table_op */
  gnttab_map_grant_ref(op: GnttabMapGrantRef): void {
    this.#enter(HC.gnttab_map_grant_ref);
    const tr = this.#c.trace;
    if (!tr.on(TRC_MEM)) return gnttab_map_grant_ref(this.#c, op);
    tr.write(TRC_MEM_GRANT_MAP | TRC_BEGIN, op.dom, op.ref, 0, 0);
    gnttab_map_grant_ref(this.#c, op);
    tr.write(TRC_MEM_GRANT_MAP | TRC_END, op.status, op.handle, 0, 0);
  }
  gnttab_unmap_grant_ref(op: GnttabUnmapGrantRef): void {
    this.#enter(HC.gnttab_unmap_grant_ref);
    const tr = this.#c.trace;
    if (!tr.on(TRC_MEM)) return gnttab_unmap_grant_ref(this.#c, op);
    tr.write(TRC_MEM_GRANT_UNMAP | TRC_BEGIN, op.handle, 0, 0, 0);
    gnttab_unmap_grant_ref(this.#c, op);
    tr.write(TRC_MEM_GRANT_UNMAP | TRC_END, op.status, 0, 0, 0);
  }
  gnttab_copy(ops: readonly GnttabCopy[], count: number): void {
    this.#enter(HC.gnttab_copy);
    const n = Math.min(count, ops.length);
    const tr = this.#c.trace;
    if (!tr.on(TRC_MEM)) return gnttab_copy(this.#c, ops, n);
    tr.write(TRC_MEM_GRANT_COPY | TRC_BEGIN, n, 0, 0, 0);
    gnttab_copy(this.#c, ops, n);
    tr.write(TRC_MEM_GRANT_COPY | TRC_END, n, 0, 0, 0);
  }
  gnttab_query_size(): { nr_frames: number; max_nr_frames: number } {
    this.#enter(HC.gnttab_query_size);
    return { nr_frames: GRANT_FRAMES, max_nr_frames: GRANT_FRAMES };
  }

  /* memory_op */
  memory_add_to_physmap(space: number, idx: number, gfn: number): number {
    this.#enter(HC.memory_add_to_physmap);
    return add_to_physmap(this.#c, space, idx, gfn);
  }
  memory_current_reservation(): number {
    this.#enter(HC.memory_current_reservation);
    return Atomics.load(this.#c.hv.domains, this.#c.domid * D.WORDS + D.TOT_PAGES);
  }
  memory_add_to_physmap_batch(space: number, foreign_domid: number, idxs: ArrayLike<number>, gpfns: ArrayLike<number>, errs: Int32Array, size: number): number {
    this.#enter(HC.memory_add_to_physmap_batch);
    if (space !== XENMAPSPACE_gmfn_foreign) return -XEN_EINVAL;
    return add_to_physmap_batch_foreign(this.#c, foreign_domid, idxs, gpfns, errs, size);
  }
  memory_remove_from_physmap(gpfn: number): number {
    this.#enter(HC.memory_remove_from_physmap);
    return remove_from_physmap(this.#c, gpfn);
  }
  memory_acquire_resource(domid: number, type: number, id: number, frame: number, gpfn: number): number {
    this.#enter(HC.memory_acquire_resource);
    return acquire_ioreq_page(this.#c, domid, type, id, frame, gpfn);
  }

  memory_decrease_reservation(gfns: ArrayLike<number>, nr: number, domid = DOMID_SELF): number {
    this.#enter(HC.memory_decrease_reservation);
    return decrease_reservation_op(this.#c, gfns, nr, domid);
  }
  memory_populate_physmap(gfns: ArrayLike<number>, nr: number): number {
    this.#enter(HC.memory_populate_physmap);
    if (!(Number.isInteger(nr) && nr >= 0 && nr <= gfns.length)) return -XEN_EINVAL;
    return populate_physmap(this.#c.hv, this.#c.domid, gfns, nr);
  }

  /* sched_op */
  sched_yield(): void {
    this.#count(HC.sched_yield);
    this.#sched.yield();
  }
  set_timer_op(timeout_ns: number): number {
    this.#enter(HC.set_timer_op);
    if (typeof timeout_ns !== 'number' || !(timeout_ns >= 0) || !Number.isFinite(timeout_ns)) return -XEN_EINVAL;
    this.#sched.setTimer(timeout_ns);
    return 0;
  }
  sched_block(): Promise<void> {
    this.#count(HC.sched_block);
    return this.#sched.block();
  }
  sched_shutdown(reason: ShutdownReason): never {
    this.#enter(HC.sched_shutdown);
    return this.#control.shutdown(reason, 'SCHEDOP_shutdown');
  }
  sched_suspend(resume_gfn: number): never {
    this.#enter(HC.sched_suspend);
    const hv = this.#c.hv;
    // Any gfn the P2M can hold (not max_pages: a ballooned-down guest's RAM reaches above it); the
    // saver reads the record there, and a gfn with no RAM behind it fails the save, not the host.
    if (Number.isInteger(resume_gfn) && resume_gfn >= 0 && resume_gfn < MAX_GUEST_PAGES) {
      Atomics.store(hv.domains, hv.dom(this.#c.domid, D.RESUME_GFN), resume_gfn + 1);
    }
    return this.#control.shutdown('suspend', 'SCHEDOP_shutdown(SHUTDOWN_suspend)');
  }
  sched_remote_shutdown(domid: number, reason: ShutdownReason): Promise<number> {
    return this.#domctl<number>(HC.sched_remote_shutdown, 'remote_shutdown', domid, reason);
  }

  /* vcpu_op (./vcpu-op.ts) */
  vcpu_op_up(vcpuid: number): number {
    this.#enter(HC.vcpu_op_up);
    return vcpu_op_up(this.#c, vcpuid);
  }
  vcpu_op_down(vcpuid: number): number {
    this.#enter(HC.vcpu_op_down);
    const rc = vcpu_op_down(this.#c, vcpuid);
    if (rc === 'last-vcpu') return this.#control.shutdown('poweroff', `VCPUOP_down on vCPU ${vcpuid}, the last one up`);
    // On ourselves, synchronous: this preemption point goes down and returns once we are up again.
    if (rc === 0 && vcpuid === this.#c.vcpu) this.#sched.preemptionPoint();
    return rc;
  }
  vcpu_op_is_up(vcpuid: number): number {
    this.#enter(HC.vcpu_op_is_up);
    return vcpu_op_is_up(this.#c, vcpuid);
  }

  /* dm_op */
  dm_op_create_ioreq_server(domid: number, handle_bufioreq: number): number {
    this.#enter(HC.dm_op_create_ioreq_server);
    return dm_create_ioreq_server(this.#c, domid, handle_bufioreq);
  }
  dm_op_get_ioreq_server_info(domid: number, id: number, flags: number, out: DmIoreqServerInfo): number {
    this.#enter(HC.dm_op_get_ioreq_server_info);
    return dm_get_ioreq_server_info(this.#c, domid, id, flags, out);
  }
  dm_op_map_io_range_to_ioreq_server(domid: number, id: number, type: number, start: number, end: number): number {
    this.#enter(HC.dm_op_map_io_range_to_ioreq_server);
    return dm_map_io_range(this.#c, domid, id, type, start, end);
  }
  dm_op_unmap_io_range_from_ioreq_server(domid: number, id: number, type: number, start: number, end: number): number {
    this.#enter(HC.dm_op_unmap_io_range_from_ioreq_server);
    return dm_unmap_io_range(this.#c, domid, id, type, start, end);
  }
  dm_op_set_ioreq_server_state(domid: number, id: number, enabled: boolean): number {
    this.#enter(HC.dm_op_set_ioreq_server_state);
    return dm_set_ioreq_server_state(this.#c, domid, id, enabled);
  }
  dm_op_destroy_ioreq_server(domid: number, id: number): number {
    this.#enter(HC.dm_op_destroy_ioreq_server);
    return dm_destroy_ioreq_server(this.#c, domid, id);
  }
  dm_op_set_isa_irq_level(domid: number, isa_irq: number, level: 0 | 1): number {
    this.#enter(HC.dm_op_set_isa_irq_level);
    const tr = this.#c.trace;
    if (tr.on(TRC_HVM)) tr.write(TRC_HVM_IRQ, domid, isa_irq, level, 0);
    return dm_set_isa_irq_level(this.#c, domid, isa_irq, level);
  }
  dm_op_add_buffered_zone(domid: number, id: number, start: number, end: number): number {
    this.#enter(HC.dm_op_add_buffered_zone);
    return dm_add_buffered_zone(this.#c, domid, id, start, end);
  }

  /* console_io */
  console_io_write(text: string): void {
    this.#enter(HC.console_io_write);
    this.#control.console(text);
  }

  /* a passed-through device's doorbell (see Hypercalls.pci_doorbell): no trap, no hypercall counted */
  pci_doorbell(dev: number, cmd_gfn: number): number {
    const c = this.#c;
    if (pci_owner(c.hv, dev) !== c.domid) return -XEN_EPERM;
    if (dev === PCI_NIC0) return nic_doorbell(c.hv, dev, cmd_gfn);
    const r = sc_doorbell(c.hv, dev, c.domid, cmd_gfn);
    // Logged like VT-d's DMAR fault report, and bounded: a guest can make faults, not floods.
    if (r.status === SC_STATUS_IOMMU_FAULT) report_iommu_fault(c.hv, dev, c.domid, cmd_gfn, r.faultGfn, (t) => this.#control.xenLog(t));
    return r.status;
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

  /*
   * xentrace. Not counted as a hypercall, nor a preemption point: a trace point must not change
   * what it observes. The guest names only the low 16 bits; the class is always TRC_GUEST and the
   * record goes into the caller's own vCPU buffer, so a guest cannot write as the hypervisor or
   * as another domain.
   */
  xentrace(event: number, d0: number, d1: number, d2: number, d3: number): void {
    // Kept this small on purpose: it is inlined at every guest trace point, and what it adds to
    // the caller's size is what tracing compiled in but off costs there (V8 inlines by bytecode
    // budget per function). The record is made out of line, in a call never taken when off.
    const tr = this.#c.trace;
    if (!tr.on(TRC_GUEST)) return;
    this.#xentraceRecord(event, d0, d1, d2, d3);
  }
  #xentraceRecord(event: number, d0: number, d1: number, d2: number, d3: number): void {
    this.#c.trace.write((TRC_GUEST & TRC_CLS_MASK) | (event & 0xffff), d0 | 0, d1 | 0, d2 | 0, d3 | 0);
  }
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
