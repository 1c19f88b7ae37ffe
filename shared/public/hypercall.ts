/*
 * The hypercall interface: what a guest kernel may ask of the hypervisor, and the boot
 * environment a vCPU starts in.
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
import type { GnttabCopy, GnttabMapGrantRef, GnttabUnmapGrantRef } from './grant_table.ts';
import type { EvtchnStatus } from './event_channel.ts';
import type { GuestMemory } from './memory.ts';
import type { ShutdownReason } from './xen.ts';

/* XENMEM_add_to_physmap spaces: hypervisor-owned pages a guest maps into its physmap. */
export const XENMAPSPACE_shared_info = 0;
export const XENMAPSPACE_grant_table = 1;

/** What the toolstack does when a domain shuts down for a reason (xl.cfg on_poweroff & co). */
export type ShutdownAction = 'destroy' | 'restart' | 'preserve';

/** domctl createdomain + the builder's inputs (libxl's domain config, reduced). */
export interface DomainConfig {
  name: string;
  vcpus: number;
  memoryKiB: number;
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
  vcpus: number;
  tot_pages: number;
  max_pages: number;
  privileged: boolean;
  cpu_time_ms: number;
}

export interface Hypercalls {
  /* event_channel_op */
  evtchn_alloc_unbound(dom: number, remote_dom: number): number;
  evtchn_bind_interdomain(remote_dom: number, remote_port: number): number;
  evtchn_send(port: number): number;
  evtchn_close(port: number): number;
  evtchn_unmask(port: number): number;
  evtchn_status(dom: number, port: number, out: EvtchnStatus): number;

  /* grant_table_op */
  gnttab_map_grant_ref(op: GnttabMapGrantRef): void;
  gnttab_unmap_grant_ref(op: GnttabUnmapGrantRef): void;
  gnttab_copy(ops: readonly GnttabCopy[], count: number): void;
  gnttab_query_size(): { nr_frames: number; max_nr_frames: number };

  /* memory_op */
  memory_add_to_physmap(space: number, idx: number, gfn: number): number;
  memory_current_reservation(): number;

  /* sched_op */
  sched_yield(): void;
  /** SCHEDOP_block: sleep until an event is pending for this vCPU (resolves at once if one is). */
  sched_block(): Promise<void>;
  /** SCHEDOP_shutdown: the domain stops; this call does not return to the guest. */
  sched_shutdown(reason: ShutdownReason): never;

  /* console_io: the hypervisor's own console, for a kernel's earliest messages */
  console_io_write(text: string): void;

  /* domctl: the control domain only; everyone else gets -EPERM */
  domctl_createdomain(config: DomainConfig): Promise<CreatedDomain | number>;
  domctl_destroydomain(domid: number): Promise<number>;
  domctl_pausedomain(domid: number): Promise<number>;
  domctl_unpausedomain(domid: number): Promise<number>;
  domctl_getdomaininfo(domid: number): Promise<DomainInfo | number>;
}

/**
 * Instructions that need Ring 0 on real hardware. A guest kernel "executes" them through this
 * object; each one traps to the hypervisor, which decides what the guest really gets.
 */
export interface Cpu {
  outb(port: number, value: number): void;
  outw(port: number, value: number): void;
  outl(port: number, value: number): void;
  inb(port: number): number;
  inw(port: number): number;
  inl(port: number): number;
  /** Halt the processor with interrupts disabled: on bare metal, the machine stops. */
  cli_hlt(): never;
}

/** What a vCPU's thread hands the kernel at entry (Xen: the registers at the PV entry point). */
export interface KernelEnv {
  vcpu_id: number;
  /** vCPUs the domain was built with (a real kernel reads this from ACPI or probes VCPUOP_is_up). */
  nr_vcpus: number;
  hypercall: Hypercalls;
  memory: GuestMemory;
  cpu: Cpu;
  /** gfn of start_info (Xen passes its address in %rsi). */
  start_info_gfn: number;
  module: unknown;
}

/** A kernel image: `main` runs on vCPU 0; `secondary`, if present, on every other vCPU. */
export interface KernelImage {
  main(env: KernelEnv): Promise<void> | void;
  secondary?(env: KernelEnv): Promise<void> | void;
}
