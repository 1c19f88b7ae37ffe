/*
 * The boot environment a vCPU starts in: what its thread hands the guest kernel at entry (the
 * hypercall table, guest memory, the privileged instructions, the scheduler's preemption point)
 * and the kernel image's entry points.
 *
 * Xen: the PV entry point (xen/include/public/xen.h, struct start_info and the registers at
 * entry: %rsi holds start_info's address) and, for HVM, the instructions that trap (in/out, MMIO,
 * hlt: xen/arch/x86/hvm/emulate.c); Linux's side is xen_start_kernel (arch/x86/xen/enlighten_pv.c)
 * and cond_resched / vcpu_is_preempted for GuestSched.
 */
import type { Hypercalls } from './hypercall.ts';
import type { GuestMemory } from './memory.ts';

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
  /**
   * A load or store of 1, 2 or 4 bytes at a guest-physical address with no RAM behind it (a
   * device's MMIO registers). ringvisor's guests are auto-translated, like HVM guests: an address
   * an ioreq server claimed goes to its device model (IOREQ_TYPE_COPY); any other is a PageFault,
   * as every access to a P2M hole is (a classic PV guest would take a #PF on it too).
   */
  mmio_read(addr: number, size: 1 | 2 | 4): number;
  mmio_write(addr: number, size: 1 | 2 | 4, value: number): void;
  /** Halt the processor with interrupts disabled: on bare metal, the machine stops. */
  cli_hlt(): never;
  /**
   * Read the time-stamp counter, in nanoseconds (unprivileged, no trap). The guest's clock is
   * built on it with vcpu_time_info (./xen.ts); it is the same counter on every vCPU.
   */
  rdtsc(): number;
}

/**
 * What the scheduler offers a guest kernel without a hypercall.
 *
 * Xen/Linux: the timer interrupt, which can preempt a vCPU anywhere, and the runstate area
 * (VCPUOP_register_runstate_memory_area) that Linux's vcpu_is_preempted reads. ringvisor cannot
 * interrupt a thread, so a long guest loop calls `preempt()` often (as Linux code calls
 * cond_resched); it is one load unless the scheduler wants this vCPU's pCPU, the timer expired, or
 * the domain was paused or stopped.
 */
export interface GuestSched {
  /** A preemption point: where a descheduled vCPU gives up its pCPU (one load otherwise). */
  preempt(): void;
  /**
   * Is vCPU `vcpu` of domain `domid` running right now (holding a pCPU)? The negation of Linux's
   * vcpu_is_preempted, extended to a peer domain, for a spinner deciding whether the one it waits
   * for can answer soon: if not, sleep at once rather than spin (DESIGN §12). False for a vCPU
   * that does not exist. A read of one word of the scheduler's shared state.
   */
  vcpu_is_running(domid: number, vcpu: number): boolean;
  /**
   * Is the vCPU that an event sent on this domain's interdomain `port` would wake preempted:
   * runnable, but holding no pCPU (Linux's vcpu_is_preempted, read from the runstate the
   * scheduler keeps, for the peer at the other end of a device's event channel)? A spinner
   * waiting for that peer's answer stops at once when it is (DESIGN §12, shared/wait.ts): the
   * answer cannot come before the peer runs, and the spinner may hold the pCPU it needs. False
   * for a peer that runs, sleeps (it will be woken by the event) or is not there. A few loads.
   */
  evtchn_peer_preempted(port: number): boolean;
}

/**
 * What a vCPU's thread hands the kernel at entry (Xen: the registers at the PV entry point), and
 * all it hands it: a kernel that uses only these reaches no other domain (README, "Isolation").
 */
export interface KernelEnv {
  vcpu_id: number;
  /** vCPUs the domain was built with, up or down: its maxvcpus (a real kernel reads this from ACPI or probes VCPUOP_is_up). */
  nr_vcpus: number;
  hypercall: Hypercalls;
  memory: GuestMemory;
  cpu: Cpu;
  sched: GuestSched;
  /** gfn of start_info (Xen passes its address in %rsi). */
  start_info_gfn: number;
  /**
   * A restored domain's saved vCPU context: the gfn of the resume record its kernel wrote before
   * it suspended (README, "Save, restore and live migration"); -1 on an ordinary boot.
   */
  resume_gfn: number;
  module: unknown;
}

/** A kernel image: `main` runs on vCPU 0; `secondary`, if present, on every other vCPU. */
export interface KernelImage {
  main(env: KernelEnv): Promise<void> | void;
  secondary?(env: KernelEnv): Promise<void> | void;
}
