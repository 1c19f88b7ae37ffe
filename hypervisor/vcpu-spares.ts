/*
 * Spare vCPU threads: one thread kept ready, its kernel image loaded, for the next DomU's vCPU.
 *
 * Xen has no such thing because it needs none: a vCPU is a struct vcpu (xen/common/domain.c,
 * vcpu_create), made in microseconds and run by a pCPU the hypervisor already owns; libxl's
 * domain build is a few milliseconds, and a restore or a migration's target (libxl_domain_create_restore,
 * xg_sr_restore.c) writes pages into the new domain at once. Here a vCPU is a Node worker thread:
 * a fresh one costs a new JavaScript realm, tsx's loader and the kernel's modules, a few hundred
 * milliseconds of CPU (more on a loaded machine) before it can run. That is host business with no
 * counterpart in Xen, and it would sit inside a migration's total (and, without care, its
 * downtime), so the host keeps one thread made ahead for the kernel its DomUs run.
 *
 * A spare guards its page views (./view-guard.ts) with the host's buffers and imports the kernel,
 * in that order, as a vCPU thread always does; then it waits to be given its vCPU (./vcpu.ts's
 * boot). It belongs to no domain until then: no scheduler slot, no count in the host's usage.
 * The kernel it warms is the last one a DomU was created with (a host's guests normally share
 * one); taking the spare starts the next at once, so that the next guest finds one too. A spare
 * that fails to load is dropped and the vCPU starts a fresh thread as before.
 *
 * The next spare loads in the background: its thread lowers its own scheduling priority (nice 10,
 * ./thread.ts's BACKGROUND_NICE; on Linux a thread's nice value is its own) before it loads
 * anything (tsx's loader is half the cost), so that it takes little of the CPU time the
 * migration, or the guest that just took the last spare, needs. Given a
 * vCPU, it goes back to the priority it had, that of every vCPU thread, at once: the host raises
 * the thread from outside (./thread.ts foreground), since a spare taken while it still loads is
 * on the new domain's critical path, and its own code, still loading at nice 10 (tsx's loader
 * and the vCPU's modules come before it can read a message), got there only after up to seconds
 * on a loaded machine (a migration's target vCPUs up 0.7-2.3 s after the config, after back-to-back
 * moves had each taken the spare the one before had started). Going back up needs the
 * right to raise a priority (root, or RLIMIT_NICE); a thread without it loads at the normal
 * priority, since a vCPU left niced would be treated unfairly by the host's scheduler.
 */
import { setPriority } from 'node:os';
import type { Worker } from 'node:worker_threads';
import type { HypervisorBuffers } from './state.ts';
import { foreground, foregroundCell, startThread, type ForegroundCell } from './thread.ts';

/** What a spare thread is started with (its workerData.boot): ./vcpu.ts then waits for its VcpuBoot. */
export interface SpareBoot { spare: { buffers: HypervisorBuffers; kernel: string } }

/** What a spare posts once its kernel is loaded (VcpuSpares.settled). */
export const SPARE_LOADED = 'spare-loaded';

/** The message that makes a spare a vCPU. */
export interface SpareAssign<B> { kind: 'boot'; boot: B }

export class VcpuSpares {
  private spare: { kernel: string; w: Worker; gone: () => void; loaded: Promise<void>; fg: ForegroundCell } | null = null;
  /** Spares replaced by one for another kernel, until their threads have exited. */
  private readonly leaving = new Set<Promise<void>>();
  private closed = false;

  constructor(private readonly entry: URL, private readonly buffers: HypervisorBuffers) {}

  /**
   * A thread for a DomU vCPU running `kernel`, given `boot` (its VcpuBoot): the spare if it
   * warms that kernel, else null (the caller starts one). Either way, from now on the spare
   * warms `kernel`, and one is started if none is.
   */
  take<B>(kernel: string, boot: B): Worker | null {
    let w: Worker | null = null;
    if (this.spare?.kernel === kernel) {
      w = this.spare.w;
      w.off('exit', this.spare.gone);
      w.off('error', this.spare.gone);
      // A spare still loading is now on the vCPU's critical path: the rest of its load runs at
      // the normal priority from this moment, not once its own code gets to read the boot message.
      foreground(this.spare.fg);
      this.spare = null;
      w.ref();
      w.postMessage({ kind: 'boot', boot } satisfies SpareAssign<B>);
    }
    this.warm(kernel);
    return w;
  }

  /** Keep one spare for `kernel` from now on (HostOptions.spareKernel). */
  prepare(kernel: string): void {
    this.warm(kernel);
  }

  /** Keep one spare for `kernel` (the previous one, for another kernel, goes). */
  private warm(kernel: string): void {
    if (this.closed || this.spare?.kernel === kernel) return;
    if (this.spare) {
      const old = this.spare.w;
      const exited = new Promise<void>((resolve) => old.once('exit', () => resolve()));
      this.leaving.add(exited);
      void exited.then(() => this.leaving.delete(exited));
      void old.terminate();
    }
    const fg = foregroundCell();
    const w = startThread(this.entry, { spare: { buffers: this.buffers, kernel } } satisfies SpareBoot, 'spare-vcpu', fg);
    w.unref(); // a spare keeps no process alive
    const gone = () => { if (this.spare?.w === w) this.spare = null; };
    // Settles once the kernel is loaded (its SPARE_LOADED message) or the thread is gone.
    const loaded = new Promise<void>((resolve) => {
      const onMessage = (m: { kind?: string }) => { if (m.kind === SPARE_LOADED) { w.off('message', onMessage); resolve(); } };
      w.on('message', onMessage);
      w.once('exit', () => resolve());
    });
    w.once('exit', gone);
    w.on('error', gone); // it failed to load: the next vCPU starts a thread of its own
    this.spare = { kernel, w, gone, loaded, fg };
  }

  /**
   * Settles when no spare is loading or leaving: the process's threads and descriptors are what
   * they will stay (a leak check compares them: scenarios/soak/soak.ts).
   */
  async settled(): Promise<void> {
    for (;;) {
      const s = this.spare;
      await Promise.all([s?.loaded, ...this.leaving]);
      if (this.spare === s && this.leaving.size === 0) return;
    }
  }

  /** The host is closing: no more spares. */
  async close(): Promise<void> {
    this.closed = true;
    const s = this.spare;
    this.spare = null;
    if (s) await s.w.terminate();
  }
}

/** In a spare thread given its vCPU: back to the priority every vCPU thread has (see the header). */
export function spareForeground(normalPriority: number): void {
  setPriority(0, normalPriority);
}
