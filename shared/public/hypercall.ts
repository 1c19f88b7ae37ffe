/*
 * The hypercall interface: what a guest kernel may ask of the hypervisor (the boot environment
 * a vCPU starts in is ./vcpu-entry.ts).
 *
 * Xen: the hypercall page and its argument structures (xen/include/public/xen.h,
 * event_channel.h, grant_table.h, memory.h, sched.h, domctl.h). A hypercall runs in the
 * calling vCPU's own thread, on hypervisor state kept in shared memory, with the caller's
 * domain id fixed when the thread started: no argument can claim to be another domain.
 *
 * Results follow Xen: a number below zero is -errno (see ./xen.ts); grant operations write a
 * GNTST_* status into each op instead. Calls that must create or end threads (domctl) go to
 * the hypervisor's control thread and so return a Promise.
 */
import type { PciDeviceInfo } from './hw/sc.ts';
import type { GnttabCopy, GnttabMapGrantRef, GnttabUnmapGrantRef } from './grant_table.ts';
import type { EvtchnStatus } from './event_channel.ts';
import type { DmIoreqServerInfo } from './hvm/dm_op.ts';
import type { ShutdownReason } from './xen.ts';
import type { PcpuLoad, SchedOp } from './sched.ts';
import type { TraceRecord } from './trace.ts';
import type { ShadowOpResult } from './domctl.ts';

/* The vCPU's side of the boot environment (Cpu, GuestSched, KernelEnv, KernelImage) is ./vcpu-entry.ts. */
export type { Cpu, GuestSched, KernelEnv, KernelImage } from './vcpu-entry.ts';

/* XENMEM_add_to_physmap spaces: hypervisor-owned pages a guest maps into its physmap. */
export const XENMAPSPACE_shared_info = 0;
export const XENMAPSPACE_grant_table = 1;
/**
 * Another domain's RAM, by its gfn: the control domain's way to reach a guest's memory (QEMU's
 * mapcache, privcmd's mmap of foreign frames). Used with memory_add_to_physmap_batch.
 */
export const XENMAPSPACE_gmfn_foreign = 4;

/** What the toolstack does when a domain shuts down for a reason (xl.cfg on_poweroff & co). */
export type ShutdownAction = 'destroy' | 'restart' | 'preserve';

/**
 * The action a toolstack takes for `config`'s domain shut down for `reason`, with xl's defaults
 * (on_poweroff destroy, on_reboot restart, on_crash destroy; a suspended domain is kept). The
 * hypervisor only records a shutdown; whoever created the domain applies this.
 */
export function shutdownAction(config: Pick<DomainConfig, 'on_poweroff' | 'on_reboot' | 'on_crash'>, reason: string): ShutdownAction {
  switch (reason) {
    case 'poweroff': return config.on_poweroff ?? 'destroy';
    case 'reboot': return config.on_reboot ?? 'restart';
    case 'crash': return config.on_crash ?? 'destroy';
    default: return 'preserve';
  }
}

/** domctl createdomain + the builder's inputs (libxl's domain config, reduced). */
export interface DomainConfig {
  name: string;
  vcpus: number;
  memoryKiB: number;
  /**
   * The guest's physmap size (KiB), when more than memoryKiB: it boots seeing this much and its
   * balloon gives back the difference (xl.cfg maxmem; Xen's PoD + balloon target).
   */
  maxmemKiB?: number;
  /** Module (file URL) exporting the kernel's `main(env)`: the "kernel image". */
  kernel: string;
  /** The kernel command line, copied into start_info.cmd_line (at most 1023 bytes). */
  cmdline?: string;
  /** Boot module handed to the kernel (Xen: start_info.mod_start): any structured-clone value. */
  module?: unknown;
  /**
   * Start paused, as Xen's createdomain always does: the toolstack sets up devices (XenStore
   * nodes, device models) and then unpauses. The vCPUs stop at their first hypercall.
   */
  paused?: boolean;
  on_poweroff?: ShutdownAction;
  on_reboot?: ShutdownAction;
  on_crash?: ShutdownAction;
  /** The credit scheduler's weight (1..65535, default 256) and cap (% of one pCPU, 0 = none). */
  weight?: number;
  cap?: number;
  /** Hard and soft affinity of every vCPU: the pCPU slots it may run on / prefers (xl.cfg cpus=, cpus_soft=). */
  cpus?: number[];
  cpus_soft?: number[];
  /**
   * The same per vCPU (libxl's vcpu_hard_affinity / vcpu_soft_affinity, from xl.cfg's list form
   * `cpus = ["0", "1-3"]`): entry v is vCPU v's; vCPUs past the end get all pCPUs, as in xl.
   * Given, it is used instead of `cpus` / `cpus_soft`.
   */
  vcpu_hard_affinity?: number[][];
  vcpu_soft_affinity?: number[][];
  /**
   * vCPUs the domain is built with (xl.cfg `maxvcpus`, default `vcpus`); only the first `vcpus`
   * are up at boot, the rest wait offline until the guest brings them up (VCPUOP_up).
   */
  max_vcpus?: number;
  /** Restore: vCPU 0's saved context (XEN_DOMCTL_setvcpucontext, made at creation here); see KernelEnv.resume_gfn. */
  resume_gfn?: number;
}

/**
 * What the builder made, as the toolstack needs it next: the ports and pages to introduce to
 * xenstored and xenconsoled (Xen's libxl gets the same from its own build step).
 */
export interface CreatedDomain {
  domid: number;
  nr_pages: number;
  start_info_gfn: number;
  store_gfn: number;
  store_evtchn: number;
  console_gfn: number;
  console_evtchn: number;
}

export interface DomainInfo {
  domid: number;
  name: string;
  state: 'running' | 'paused' | 'shutdown' | 'dying';
  shutdown_reason: ShutdownReason | null;
  /** vCPUs up (Xen: nr_online_vcpus; xl list's VCPUs column). */
  vcpus: number;
  /** vCPUs it has, up or down (Xen: max_vcpu_id + 1). */
  max_vcpus: number;
  tot_pages: number;
  max_pages: number;
  /** Its RAM's gfns are 0..physmap_pages, ballooned out or not (Xen: XENMEM_maximum_gpfn + 1, which the saver walks to). */
  physmap_pages?: number;
  /** Xen's shr_pages and paged_pages, and the PoD entries not yet backed (XENMEM_get_pod_target's pod_entries). */
  shr_pages?: number;
  paged_pages?: number;
  pod_pages?: number;
  privileged: boolean;
  cpu_time_ms: number;
  /** XEN_DOMINF_running: some vCPU is executing guest code right now. */
  running: boolean;
  /** XEN_DOMINF_blocked: every vCPU still up waits in SCHEDOP_block (an idle guest). */
  blocked: boolean;
  /**
   * ringvisor's mechanism counters summed over the domain's vCPUs (hypercalls, notifications,
   * grant operations, traps, ioreqs, ...): what `ringvisor top` and the web view show per second.
   * Xen keeps such counts in perfc and xentrace, not in getdomaininfo.
   */
  counters: Record<string, number>;
}

/** XEN_SYSCTL_physinfo, reduced: what `xl info` reports about the host. */
export interface PhysInfo {
  /** Host threads the vCPUs share (Xen: nr_cpus). */
  nr_cpus: number;
  /** Guest RAM frames the hypervisor manages, and how many are free (4 KiB each). */
  total_pages: number;
  free_pages: number;
  /** Free frames not yet scrubbed (XEN_SYSCTL_physinfo's scrub_pages; part of free_pages). */
  scrub_pages?: number;
  /** Domains that exist (any state), and the most there may be. */
  nr_domains: number;
  max_domains: number;
  /** Page sharing, paging and PoD counters (hypervisor/mm/mm-state.ts names them; Xen's and KSM's names). */
  mm?: Record<string, number>;
  /** The scheduler's pCPU slots (none: no scheduler, the host OS decides) and their load. */
  pcpus: PcpuLoad[];
}

export interface Hypercalls {
  /* event_channel_op */
  evtchn_alloc_unbound(dom: number, remote_dom: number): number;
  evtchn_bind_interdomain(remote_dom: number, remote_port: number): number;
  evtchn_send(port: number): number;
  evtchn_close(port: number): number;
  evtchn_unmask(port: number): number;
  evtchn_status(dom: number, port: number, out: EvtchnStatus): number;
  /**
   * EVTCHNOP_bind_pirq (with PHYSDEVOP_map_pirq's identity GSI → pirq mapping folded in): a port
   * that becomes pending when the device model raises ISA IRQ `pirq` (XEN_DMOP_set_isa_irq_level),
   * as a PVHVM Linux guest takes its emulated devices' legacy interrupts as events.
   */
  evtchn_bind_pirq(pirq: number): number;
  /**
   * EVTCHNOP_bind_virq: a port on which the hypervisor raises virtual IRQ `virq` (see
   * ./event_channel.ts: VIRQ_DOM_EXC, Dom0 only, on vCPU 0).
   */
  evtchn_bind_virq(virq: number, vcpu: number): number;

  /*
   * A passed-through device's doorbell (shared/public/hw/sc.ts): a write to a register of a
   * device this domain owns. Not a hypercall in Xen (the BAR is mapped into the owner and the
   * write goes to the device without a trap); here it is the call that runs the device, with no
   * hypercall counted. Returns the command's status, or -EPERM if the caller does not own `dev`.
   */
  pci_doorbell(dev: number, cmd_gfn: number): number;

  /* grant_table_op */
  gnttab_map_grant_ref(op: GnttabMapGrantRef): void;
  gnttab_unmap_grant_ref(op: GnttabUnmapGrantRef): void;
  gnttab_copy(ops: readonly GnttabCopy[], count: number): void;
  gnttab_query_size(): { nr_frames: number; max_nr_frames: number };

  /* memory_op */
  memory_add_to_physmap(space: number, idx: number, gfn: number): number;
  memory_current_reservation(): number;
  /**
   * XENMEM_add_to_physmap_batch with XENMAPSPACE_gmfn_foreign (control domain only): map
   * `foreign_domid`'s frames idxs[i] (its gfns) at our gfns gpfns[i], which must be holes, for
   * i < size. Each entry's result (0 or -errno) goes to errs[i]; the call returns 0, or -errno if
   * nothing was tried (-EPERM for anyone but the control domain). A mapped frame stays alive until
   * unmapped, even if its owner dies meanwhile.
   */
  memory_add_to_physmap_batch(space: number, foreign_domid: number, idxs: ArrayLike<number>, gpfns: ArrayLike<number>, errs: Int32Array, size: number): number;
  /** XENMEM_remove_from_physmap, for a foreign mapping made above or by acquire_resource. */
  memory_remove_from_physmap(gpfn: number): number;
  /**
   * XENMEM_acquire_resource: map frame `frame` of resource (`type`, `id`) belonging to `domid`
   * at our hole `gpfn` (here: an ioreq server's page, by its emulator; see ./hvm/dm_op.ts).
   */
  memory_acquire_resource(domid: number, type: number, id: number, frame: number, gpfn: number): number;
  /**
   * XENMEM_decrease_reservation (extent_order 0, DOMID_SELF): give the RAM at gfns[0..nr) back to
   * the hypervisor; each becomes a hole. Returns how many were given back (it stops at the first
   * page it refuses: one still mapped or viewed elsewhere). The balloon's inflate. The control
   * domain may name another domain (`domid`), as a restorer does to leave a saved guest's
   * ballooned-out holes holes.
   */
  memory_decrease_reservation(gfns: ArrayLike<number>, nr: number, domid?: number): number;
  /**
   * XENMEM_populate_physmap (extent_order 0, DOMID_SELF): back the holes gfns[0..nr) with new RAM.
   * Returns how many were (it stops when the host has no frame or the domain is at max_pages).
   */
  memory_populate_physmap(gfns: ArrayLike<number>, nr: number): number;

  /* sched_op */
  /** SCHEDOP_yield: if another vCPU of this priority waits for our pCPU, it runs first. */
  sched_yield(): void;
  /**
   * SCHEDOP_block: sleep until an event is pending for this vCPU (resolves at once if one is),
   * the VIRQ_TIMER of an expired set_timer_op deadline included.
   */
  sched_block(): Promise<void>;
  /**
   * set_timer_op: arm this vCPU's singleshot timer for absolute system time `timeout_ns` (ns since
   * the host booted, as vcpu_time_info tells it); 0 disarms. At or after the deadline, never
   * before, VIRQ_TIMER is raised on this vCPU (bind it with evtchn_bind_virq(VIRQ_TIMER, vcpu)).
   */
  set_timer_op(timeout_ns: number): number;
  /** SCHEDOP_shutdown: the domain stops; this call does not return to the guest. */
  sched_shutdown(reason: ShutdownReason): never;

  /*
   * vcpu_op (xen/include/public/vcpu.h): hot-plug of this domain's own vCPUs, numbered
   * 0..nr_vcpus-1 (the domain's maxvcpus). Results: 0, or -errno (ENOENT for no such vCPU).
   */
  /** VCPUOP_up: make a down vCPU runnable; it starts at the kernel's `secondary` entry, or carries on where it went down. */
  vcpu_op_up(vcpuid: number): number;
  /**
   * VCPUOP_down: take a vCPU down. On another vCPU this is asynchronous (it stops at its next
   * preemption point); on the caller itself it returns only once the vCPU is up again. Taking
   * down the last vCPU up powers the domain off (and does not return).
   */
  vcpu_op_down(vcpuid: number): number;
  /** VCPUOP_is_up: 1 if up, 0 if down. */
  vcpu_op_is_up(vcpuid: number): number;
  /**
   * SCHEDOP_shutdown(SHUTDOWN_suspend), Linux's HYPERVISOR_suspend: the domain stops, its memory
   * kept for the toolstack to save; `resume_gfn` (the page holding the kernel's resume record) is
   * kept as the vCPU's saved context, as Linux passes its start_info frame in a register.
   */
  sched_suspend(resume_gfn: number): never;
  /**
   * SCHEDOP_remote_shutdown (control domain only): shut `domid` down for `reason` now, without
   * its cooperation (xl shutdown -F, when a guest does not answer control/shutdown). Its vCPUs
   * stop at their next preemption point; 0 once they have, or -errno.
   */
  sched_remote_shutdown(domid: number, reason: ShutdownReason): Promise<number>;

  /*
   * dm_op: a device model's calls about the guest `domid` it emulates for (control domain only;
   * see ./hvm/dm_op.ts for the sequence). Results: >= 0 success (an id where one is made), else -errno.
   */
  dm_op_create_ioreq_server(domid: number, handle_bufioreq: number): number;
  dm_op_get_ioreq_server_info(domid: number, id: number, flags: number, out: DmIoreqServerInfo): number;
  dm_op_map_io_range_to_ioreq_server(domid: number, id: number, type: number, start: number, end: number): number;
  dm_op_unmap_io_range_from_ioreq_server(domid: number, id: number, type: number, start: number, end: number): number;
  dm_op_set_ioreq_server_state(domid: number, id: number, enabled: boolean): number;
  dm_op_destroy_ioreq_server(domid: number, id: number): number;
  dm_op_set_isa_irq_level(domid: number, isa_irq: number, level: 0 | 1): number;
  /** RINGVISOR_DMOP_add_buffered_zone: writes to [start, end] (inclusive) go to the buffered page. */
  dm_op_add_buffered_zone(domid: number, id: number, start: number, end: number): number;

  /* console_io: the hypervisor's own console, for a kernel's earliest messages */
  console_io_write(text: string): void;

  /* domctl: the control domain only; everyone else gets -EPERM */
  domctl_createdomain(config: DomainConfig): Promise<CreatedDomain | number>;
  domctl_destroydomain(domid: number): Promise<number>;
  domctl_pausedomain(domid: number): Promise<number>;
  domctl_unpausedomain(domid: number): Promise<number>;
  /**
   * XEN_DOMCTL_resumedomain: a domain that suspended (SCHEDOP_shutdown(SHUTDOWN_suspend)) runs
   * again where it is, its kernel booting in resume mode from its saved context (xc_domain_resume,
   * after a save or a migration that did not complete). -EINVAL if it is not suspended.
   */
  domctl_resumedomain(domid: number): Promise<number>;
  /**
   * ringvisor's own: resolves (0, or -errno) once every vCPU of the domain exists: its thread
   * has started and loaded the kernel image, and waits at its first preemption point. In Xen a
   * vCPU exists when XEN_DOMCTL_max_vcpus returns; a thread takes a while to start, which a
   * restore waits out before its stop-and-copy (dom0/toolstack/migration/migrate.ts).
   */
  domctl_vcpus_loaded(domid: number): Promise<number>;
  domctl_getdomaininfo(domid: number): Promise<DomainInfo | number>;
  /**
   * The host's page-sharing scanner (KSM's knobs: run, pages_to_scan, sleep_millisecs) and pager
   * (run, low_water_pages): change what is given, return the settings now. Xen drives sharing and
   * paging from Dom0 tools through XENMEM_sharing_op / XENMEM_paging_op; ringvisor's run in the
   * hypervisor's control thread and the toolstack turns them on and off.
   */
  domctl_mem_sharing(settings: { run?: boolean; pages_to_scan?: number; sleep_millisecs?: number }): Promise<unknown>;
  domctl_mem_paging(settings: { run?: boolean; low_water_pages?: number }): Promise<unknown>;
  /** XENMEM_set_pod_target: the domain's memory target (KiB), which libxl sets with each mem-set. */
  domctl_set_pod_target(domid: number, target_kib: number): Promise<number>;
  /** XEN_DOMCTL_max_mem: the most RAM (KiB) the domain may hold (d->max_pages), for xl mem-max / mem-set. */
  domctl_max_mem(domid: number, max_kib: number): Promise<number>;
  /**
   * XEN_DOMCTL_scheduler_op, XEN_SYSCTL_scheduler_op, XEN_DOMCTL_{get,set}vcpuaffinity,
   * XEN_DOMCTL_getvcpuinfo (see ./sched.ts for each op's result): the result, `{ error }` for an
   * argument the scheduler refuses (with the reason, for xl's message), or -errno.
   */
  domctl_scheduler_op(op: SchedOp): Promise<unknown>;
  /**
   * XEN_DOMCTL_shadow_op, log-dirty ops (./domctl.ts): OFF, ENABLE_LOGDIRTY, CLEAN, PEEK. For CLEAN
   * and PEEK, `bitmap` receives one bit per gfn for the first `pages` gfns. Runs in the caller's
   * thread. A CLEAN of a running domain should be made with it paused (Xen's paging_log_dirty_op
   * pauses it), so no vCPU is inside a request on a view the CLEAN re-protects.
   */
  /** XEN_DOMCTL_getvcpucontext, reduced to what a resumable guest saves: its resume record's gfn, or -errno. */
  domctl_getvcpucontext(domid: number): number;
  /**
   * XEN_DOMCTL_getpageframeinfo3: types[i] for `domid`'s gfns[i], i < n (XEN_DOMCTL_PFINFO_NOTAB:
   * RAM, its contents to send; XTAB: a hole; XALLOC: a PoD entry never touched). Returns n, or
   * -errno. Runs in the caller's thread (hypervisor/mm/pfinfo.ts).
   */
  domctl_getpageframeinfo3(domid: number, gfns: ArrayLike<number>, types: Int32Array, n: number): number;
  /**
   * XEN_DOMCTL_setvcpucontext, reduced the same way: a restored domain's vCPU 0 resumes from the
   * record at `resume_gfn`. Only while the domain is paused (before its kernel runs); 0 or -errno.
   */
  domctl_setvcpucontext(domid: number, resume_gfn: number): number;
  domctl_shadow_op(domid: number, op: number, mode: number, bitmap: Int32Array | null, pages: number): ShadowOpResult | number;

  /* sysctl: the control domain only */
  /** XEN_SYSCTL_getdomaininfolist: every domain, by domid (xl list's source). */
  sysctl_getdomaininfolist(): Promise<DomainInfo[] | number>;
  /** XEN_SYSCTL_physinfo: the host's CPUs and memory (xl info's source). */
  sysctl_physinfo(): Promise<PhysInfo | number>;
  /** XEN_DOMCTL_assign_device: give PCI device `dev` to `domid` (from Dom0; EBUSY if another guest has it). */
  domctl_assign_device(dev: number, domid: number): Promise<number>;
  /** XEN_DOMCTL_deassign_device: `dev` goes back to Dom0. */
  domctl_deassign_device(dev: number, domid: number): Promise<number>;
  /**
   * The block hotplug step (Xen's block script): attach image file `path` as a namespace of storage
   * controller `dev`; returns its nsid (≥ 1), or -errno. storage_detach removes it.
   */
  domctl_storage_attach(dev: number, path: string, readOnly: boolean): Promise<number>;
  domctl_storage_detach(nsid: number): Promise<number>;
  /** The host's PCI devices: owner, DMA operations and IOMMU faults (xl pci-assignable-list, roughly). */
  sysctl_pci_info(): Promise<PciDeviceInfo[] | number>;
  /* xentrace (trace.h). HYPERVISOR_xentrace: a guest's own record (event's low 16 bits, in class
     TRC_GUEST) into its vCPU's trace buffer, if that class is enabled; else nothing, at the cost of
     one load. Xen's HVMOP_xentrace. */
  xentrace(event: number, d0: number, d1: number, d2: number, d3: number): void;
  /* XEN_SYSCTL_tbuf_op (privileged): set the enabled classes (0 = off), and drain every buffer. */
  sysctl_tbuf_set_evt_mask(mask: number): number;
  sysctl_tbuf_drain(out: TraceRecord[]): number;
}
