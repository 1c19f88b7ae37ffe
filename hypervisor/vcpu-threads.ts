/*
 * A domain's vCPU threads, from the control thread's side: starting one per vCPU, what they say
 * to the control thread (console lines, shutdowns, forwarded domctls), and stopping them all.
 *
 * Xen: vcpu_create / the arch's context setup that puts a vCPU on a pCPU's runqueue for the first
 * time (xen/common/domain.c, alloc_vcpu), and domain_pause_for_debugger-like stopping: for a
 * shutdown or a destroy, every vCPU is asked to leave guest code (vcpu_sleep_sync in
 * domain_shutdown / domain_kill) and the caller waits until none runs.
 *
 * Here each vCPU is a worker thread (./vcpu.ts) running the guest kernel; the control thread
 * (./host.ts) keeps the per-domain record of those threads, DomainEntry, and uses these functions
 * on it. They are the host's own, split from ./host.ts, which keeps the domains' lifecycle.
 */
import type { Worker } from 'node:worker_threads';
import type { CreatedDomain, DomainConfig } from '../shared/public/hypercall.ts';
import type { WaitPolicy } from '../shared/wait.ts';
import { vcpu_kick } from './event-channel.ts';
import type { HostScheduler } from './sched/host-sched.ts';
import { D, V, VREQ_CHECK, VREQ_STOP, type HypervisorState } from './state.ts';
import { startThread } from './thread.ts';
import type { ControlMessage, VcpuBoot, VcpuMessage } from './vcpu.ts';
import type { ShutdownReason } from '../shared/public/xen.ts';

export const VCPU_ENTRY = new URL('./vcpu.ts', import.meta.url);
/** How long a vCPU may run on without reaching a preemption point before its thread is cut. */
export const STOP_GRACE_MS = 2000;

/** The control thread's record of one domain and its vCPU threads. */
export interface DomainEntry {
  domid: number;
  built: CreatedDomain;
  config: DomainConfig;
  privileged: boolean;
  workers: Worker[];
  exited: Promise<void>[];
  /** Per vCPU: its thread has loaded the kernel (or is gone). */
  loaded: Promise<void>[];
  loadedNow: (() => void)[];
  createdAt: number;
  stopping: boolean;
  destroying: Promise<void> | null;
}

/** What starting threads needs of the host (./host.ts). */
export interface VcpuThreadHost {
  readonly hv: HypervisorState;
  readonly wait: WaitPolicy;
  readonly sched: HostScheduler;
  /** The host's spare thread, its kernel loaded, or null (./vcpu-spares.ts). */
  spare(kernel: string, boot: VcpuBoot): Worker | null;
  /** The host's count of vCPU threads, for its usage (./host-usage.ts). */
  threads(delta: 1 | -1): void;
  log(line: string): void;
  /* What the threads' lifecycle messages ask of the host (see vcpuMessage). */
  console(entry: DomainEntry, text: string): void;
  xenLog(entry: DomainEntry, text: string): void;
  shutdown(entry: DomainEntry, reason: ShutdownReason, detail: string): void;
  domctl(op: string, args: unknown[]): Promise<unknown>;
}

/**
 * One thread per vCPU, entering the kernel (vcpu.ts); vCPU 0 boots in resume mode if the domain
 * has a saved context (D.RESUME_GFN), which it reads once past its first pause.
 */
export function startVcpus(h: VcpuThreadHost, entry: DomainEntry, maxVcpus: number): void {
  const { domid, config, built } = entry;
  for (let v = 0; v < maxVcpus; v++) {
    const boot: VcpuBoot = {
      buffers: h.hv.buffers, domid, vcpu: v, kernel: config.kernel, module: config.module, start_info_gfn: built.start_info_gfn, wait: h.wait,
    };
    // A DomU's vCPU takes the host's spare thread, its kernel already loaded (./vcpu-spares.ts).
    const w = (entry.privileged ? null : h.spare(config.kernel, boot)) ?? startThread(VCPU_ENTRY, boot, `d${domid}v${v}`);
    h.threads(1);
    entry.workers.push(w);
    entry.exited.push(new Promise((resolve) => w.once('exit', () => { h.threads(-1); h.sched.vcpuGone(domid, v); resolve(); })));
    entry.loaded.push(Promise.race([entry.exited[v], new Promise<void>((resolve) => entry.loadedNow.push(resolve))]));
    w.on('message', (m: VcpuMessage) => vcpuMessage(h, entry, w, m));
    w.on('error', (e) => h.log(`(XEN) d${domid}v${v} thread error: ${e.stack ?? e}`));
  }
}

/** A vCPU thread's lifecycle message to the control thread (./vcpu.ts). */
function vcpuMessage(h: VcpuThreadHost, entry: DomainEntry, w: Worker, m: VcpuMessage): void {
  switch (m.kind) {
    case 'console':
      h.console(entry, m.text);
      break;
    case 'shutdown':
      h.shutdown(entry, m.reason, m.detail);
      break;
    case 'tid':
      h.sched.threadStarted(entry.domid, entry.workers.indexOf(w), m.tid);
      break;
    case 'loaded':
      entry.loadedNow[entry.workers.indexOf(w)]?.();
      break;
    case 'xen-log':
      h.xenLog(entry, m.text);
      break;
    case 'domctl':
      void h.domctl(m.op, m.args).then((result) => w.postMessage({ kind: 'domctl-reply', id: m.id, result } satisfies ControlMessage));
      break;
  }
}

/** Ask every vCPU to leave at its next preemption point and wait until all have. */
export async function stopVcpus(hv: HypervisorState, sched: HostScheduler, entry: DomainEntry): Promise<void> {
  entry.stopping = true;
  for (let v = 0; v < entry.workers.length; v++) {
    Atomics.or(hv.vcpus, hv.vcpu(entry.domid, v, V.REQUEST), VREQ_STOP | VREQ_CHECK);
    vcpu_kick(hv, entry.domid, v);
    sched.kickWaiter(entry.domid, v); // one waiting for a pCPU slot wakes to see it
    Atomics.notify(hv.vcpus, hv.vcpu(entry.domid, v, V.DOWN)); // and one that is down (vcpu-op.ts)
  }
  Atomics.notify(hv.domains, entry.domid * D.WORDS + D.PAUSE_COUNT); // a paused vCPU wakes to see it
  await Promise.all(entry.exited.map((exited, v) => {
    // A guest spinning without hypercalls never reaches a preemption point: cut its thread.
    const timer = setTimeout(() => void entry.workers[v].terminate(), STOP_GRACE_MS);
    return exited.finally(() => clearTimeout(timer));
  }));
}

/*
 * Resolves when vCPU v has left guest code: its ALIVE word is 0 (schedule.ts stop(); a thread
 * not online yet runs none either: its first preemption point stops it). Never, after
 * STOP_GRACE_MS: the thread is being cut, and its exit settles the wait.
 */
export async function vcpuLeft(hv: HypervisorState, domid: number, v: number): Promise<void> {
  const w = hv.vcpu(domid, v, V.ALIVE);
  const until = performance.now() + STOP_GRACE_MS;
  for (let now = performance.now(); now < until; now = performance.now()) {
    const r = Atomics.waitAsync(hv.vcpus, w, 1, until - now);
    if (r.async) await r.value;
    if (Atomics.load(hv.vcpus, w) !== 1) return;
  }
  await new Promise<void>(() => undefined); // never: the thread's exit settles it
}
