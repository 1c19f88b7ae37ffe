/*
 * A guest kernel's boot: from the vCPU's entry environment to a running kernel with memory,
 * events and grants, which drivers and workloads then use.
 *
 * Xen/Linux: xen_start_kernel (arch/x86/xen/enlighten_pv.c) and the early Xen setup it calls:
 * read start_info, map shared_info, set up the grant table (gnttab_init), start taking events.
 * mini-os's start_kernel does the same in fewer lines. Dom0 and DomU run this same code, as
 * they run the same Linux; what differs is which drivers they start afterwards.
 */
import type { Cpu, Hypercalls, KernelEnv } from '../public/hypercall.ts';
import type { GuestMemory } from '../public/memory.ts';
import { GNTTAB_NR_RESERVED_ENTRIES } from '../public/grant_table.ts';
import { vcpu_info } from '../public/xen.ts';
import { EventChannels } from './events.ts';
import { GrantTable } from './grant-table.ts';
import { PageAllocator } from './pages.ts';
import { readStartInfo, type StartInfo } from './start-info.ts';
import { CMDLINE_WAIT, parseCmdline } from '../public/cmdline.ts';
import { parseWaitPolicy, type WaitPolicy } from '../wait.ts';
import { GuestClock, GuestTimers } from './time.ts';

export class Kernel {
  readonly hypercall: Hypercalls;
  readonly memory: GuestMemory;
  readonly cpu: Cpu;
  readonly vcpu: number;
  readonly nr_vcpus: number;
  readonly si: StartInfo;
  readonly pages: PageAllocator;
  readonly events: EventChannels;
  readonly gnttab: GrantTable;
  /** How this kernel's drivers wait for the other side (`wait=` on the command line, shared/wait.ts). */
  readonly wait: WaitPolicy;
  /** System time and the wall clock, from shared_info (time.ts). */
  readonly clock: GuestClock;
  private timerList: GuestTimers | null = null;
  private readonly sharedInfo: Int32Array;
  private readonly upcallWord: number;
  /** The PV console once its driver is up (shared/kernel/console.ts sets it); log() then goes there. */
  console: { write(text: string): void } | null = null;

  constructor(readonly env: KernelEnv) {
    this.hypercall = env.hypercall;
    this.memory = env.memory;
    this.cpu = env.cpu;
    this.vcpu = env.vcpu_id;
    this.nr_vcpus = env.nr_vcpus;
    this.si = readStartInfo(env.memory, env.start_info_gfn);
    this.pages = new PageAllocator(this.si, this.vcpu, this.nr_vcpus);
    // The builder mapped shared_info and, just above it, the grant frames.
    const sharedInfo = env.memory.pageWords(this.si.shared_info_gfn, true);
    this.sharedInfo = sharedInfo;
    this.upcallWord = (this.vcpu * vcpu_info.SIZE + vcpu_info.evtchn_upcall_pending) >> 2;
    this.events = new EventChannels(env.hypercall, sharedInfo, this.vcpu);
    this.wait = parseWaitPolicy(parseCmdline(this.si.cmd_line).get(CMDLINE_WAIT), 'kernel command line');
    this.events.policy = this.wait;
    this.events.peerPreempted = (port) => env.sched.evtchn_peer_preempted(port);
    this.clock = new GuestClock(sharedInfo, env.cpu, this.vcpu);
    const gntGfn = this.si.shared_info_gfn + 1;
    const perVcpu = Math.floor((this.grantEntries() - GNTTAB_NR_RESERVED_ENTRIES) / this.nr_vcpus);
    this.gnttab = new GrantTable(env.hypercall, env.memory, gntGfn,
      { first: GNTTAB_NR_RESERVED_ENTRIES + this.vcpu * perVcpu, count: perVcpu });
  }

  /** This vCPU's timers (VIRQ_TIMER is bound on first use). Sleepers wake only while events.run() runs. */
  get timers(): GuestTimers {
    this.timerList ??= new GuestTimers(this.hypercall, this.clock, this.events, this.vcpu);
    return this.timerList;
  }

  /** A preemption point for long guest loops (GuestSched.preempt). */
  preempt(): void {
    this.env.sched.preempt();
  }

  /**
   * An event waits for this vCPU's handlers (its evtchn_upcall_pending is set). A long guest loop
   * that checks this between steps and gives the event loop a turn when it is true behaves as a
   * Linux user task does when an interrupt arrives: the handler runs at once and the kernel thread
   * it wakes (xenwatch, a softirq, a server blocked in recvmsg) preempts the task (wake-up
   * preemption sets need_resched) instead of waiting for its time slice to end.
   */
  eventPending(): boolean {
    return Atomics.load(this.sharedInfo, this.upcallWord) !== 0;
  }

  private grantEntries(): number {
    return this.hypercall.gnttab_query_size().nr_frames * 512;
  }

  /** printk: the PV console once it is up, until then the hypervisor's console (early printk). */
  log(text: string): void {
    if (this.console !== null) this.console.write(`${text}\n`);
    else this.hypercall.console_io_write(text);
  }
}
