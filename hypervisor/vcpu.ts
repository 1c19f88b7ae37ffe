/*
 * The first code a vCPU thread runs: it becomes one vCPU of one domain, then enters the kernel.
 *
 * Xen: the vCPU's initial context and the jump to the kernel's entry point (for a PV guest,
 * xen/arch/x86/pv/dom0_build.c / the toolstack's xc_dom_boot; the kernel finds start_info in
 * %rsi). The domain id and vCPU number come from the control thread, once, here; every object
 * built below (Caller, memory, hypercall table) is bound to them for the thread's life.
 *
 * How the thread ends: the kernel's main() returning is a poweroff; an exception escaping the
 * kernel (a page fault it did not handle, a bug) crashes the domain, as Xen's domain_crash;
 * a stop request from the control thread ends it at a preemption point.
 */
import { createRequire, syncBuiltinESMExports } from 'node:module';
import { parentPort, workerData } from 'node:worker_threads';
import type { KernelEnv, KernelImage } from '../shared/public/hypercall.ts';
import { vcpu_info, type ShutdownReason } from '../shared/public/xen.ts';
import { Caller } from './caller.ts';
import { DomainMemory } from './guest-memory.ts';
import { pagerRunning, waitForPager } from './mm/pager-wait.ts';
import { HypercallTable, type ControlChannel } from './hypercall.ts';
import { IoreqSender } from './ioreq-send.ts';
import { VcpuScheduler } from './schedule.ts';
import { D, DOMSTATE_RUNNING, DOMSTATE_SHUTDOWN, HypervisorState, type HypervisorBuffers } from './state.ts';
import { TrappingCpu } from './trap.ts';
import { guardPageViews } from './view-guard.ts';
import { SPARE_LOADED, spareForeground, type SpareAssign, type SpareBoot } from './vcpu-spares.ts';
import { SHUTDOWN_NAMES } from '../shared/public/xen.ts';
import { ownTid } from './sched/tid.ts';
import type { WaitPolicy } from '../shared/wait.ts';

export interface VcpuBoot {
  buffers: HypervisorBuffers;
  domid: number;
  vcpu: number;
  kernel: string;
  module: unknown;
  start_info_gfn: number;
  /** The host's waiting policy, for this vCPU's trapped accesses (ioreq-send.ts). */
  wait: WaitPolicy;
}

/** Messages a vCPU thread sends the control thread. */
export type VcpuMessage =
  | { kind: 'console'; text: string }
  | { kind: 'xen-log'; text: string }
  | { kind: 'shutdown'; reason: ShutdownReason; detail: string }
  | { kind: 'loaded' }
  | { kind: 'tid'; tid: number }
  | { kind: 'domctl'; id: number; op: string; args: unknown[] };
/** Messages the control thread sends a vCPU thread. */
export type ControlMessage = { kind: 'domctl-reply'; id: number; result: unknown };

const port = parentPort!;
// A spare thread (./vcpu-spares.ts) was made before its domain: it has guarded its page views and
// loaded the kernel, and learns which vCPU it is now.
const spare = (workerData as { boot: VcpuBoot | SpareBoot }).boot;
const normalPriority = (workerData as { normalPriority: number | null }).normalPriority; // ./thread.ts
const boot = 'spare' in spare ? await becomeVcpu(spare) : spare;
hideThreadData();
// The host pins a thread whose vCPU has a hard affinity (sched/thread-affinity.ts): it needs the kernel's id for it.
const tid = ownTid();
if (tid !== null) port.postMessage({ kind: 'tid', tid } satisfies VcpuMessage);
const hv = new HypervisorState(boot.buffers);
const caller = new Caller(hv, boot.domid, boot.vcpu);
const sched = new VcpuScheduler(caller);
sched.exit = (code) => process.exit(code);

const pending = new Map<number, (v: unknown) => void>();
let nextId = 1;
// This listener also keeps the thread's event loop alive while the kernel sleeps in
// Atomics.waitAsync, which by itself would not.
port.on('message', (m: ControlMessage) => {
  if (m.kind === 'domctl-reply') {
    pending.get(m.id)?.(m.result);
    pending.delete(m.id);
  }
});

function post(m: VcpuMessage): void {
  port.postMessage(m);
}

/** domain_shutdown: the first vCPU to get here records the reason; all of them stop. */
function domainShutdown(reason: ShutdownReason, detail: string): never {
  const base = boot.domid * D.WORDS;
  if (Atomics.compareExchange(hv.domains, base + D.STATE, DOMSTATE_RUNNING, DOMSTATE_SHUTDOWN) === DOMSTATE_RUNNING) {
    Atomics.store(hv.domains, base + D.SHUTDOWN_REASON, SHUTDOWN_NAMES.indexOf(reason));
    post({ kind: 'shutdown', reason, detail });
  }
  return sched.stop();
}

const control: ControlChannel = {
  domctl(op, args) {
    const id = nextId++;
    return new Promise((resolve) => {
      pending.set(id, resolve);
      post({ kind: 'domctl', id, op, args });
    });
  },
  console(text) {
    post({ kind: 'console', text });
  },
  xenLog(text) {
    post({ kind: 'xen-log', text });
  },
  shutdown: domainShutdown,
};

const ioreq = new IoreqSender(caller, sched, boot.wait);
const cpu = new TrappingCpu(caller, sched, {
  shutdown: domainShutdown,
  vcpuDown(detail) {
    if (Atomics.sub(hv.domains, boot.domid * D.WORDS + D.ONLINE_VCPUS, 1) === 1) return domainShutdown('poweroff', detail);
    return sched.stop();
  },
  portIo: (port, size, write, value) => ioreq.pio(port, size, write, value),
  mmio: (addr, size, write, value) => ioreq.mmio(addr, size, write, value),
});

/* Frozen once the vCPU has passed its first pause, when vCPU 0's saved context is known (below). */
const env: KernelEnv = {
  vcpu_id: boot.vcpu,
  nr_vcpus: Atomics.load(hv.domains, boot.domid * D.WORDS + D.NR_VCPUS),
  hypercall: new HypercallTable(caller, sched, control),
  memory: new DomainMemory(hv, boot.domid, boot.vcpu, {
    crash: (why) => domainShutdown('crash', why),
    // Short of a frame while a pager runs: give the pCPU slot up and wait for it (mm/pager-wait.ts).
    waitFrames: () => {
      if (!pagerRunning(hv)) return false;
      sched.sleepBegin();
      try { return waitForPager(hv); } finally { sched.sleepEnd(); }
    },
  }),
  cpu,
  sched: {
    preempt: () => sched.preemptionPoint(), vcpu_is_running: (d, v) => sched.vcpuIsRunning(d, v),
    evtchn_peer_preempted: (port) => sched.peerPreempted(port),
  },
  start_info_gfn: boot.start_info_gfn,
  resume_gfn: -1,
  module: boot.module,
};

/**
 * The kernel entry receives its interface and nothing else. The thread's workerData holds the
 * whole machine's buffers, and its parentPort speaks for the hypervisor to the control thread;
 * both are public exports of node:worker_threads, which code in this thread could import. This
 * thread has taken what it needs from them, so they are blanked (the CommonJS exports, then the
 * ES module bindings made from them). See README, "Isolation", for what this does not close.
 */
function hideThreadData(): void {
  const wt = createRequire(import.meta.url)('node:worker_threads') as { workerData: unknown; parentPort: unknown };
  wt.workerData = null;
  wt.parentPort = null;
  syncBuiltinESMExports();
}

/**
 * A spare thread: guard, then load the kernel (the order of every vCPU thread), then wait for its
 * vCPU. It loads in the background (./vcpu-spares.ts) and is a vCPU like any other from the moment
 * it is given one, its load finished at the normal priority if it was still under way.
 */
async function becomeVcpu(s: SpareBoot): Promise<VcpuBoot> {
  // The machine's buffers are the ones it guarded: a buffer posted again arrives as another
  // object, which the guard (a set of objects) would not know.
  const assigned = new Promise<VcpuBoot>((resolve) => port.once('message', (m: SpareAssign<VcpuBoot>) => {
    if (normalPriority !== null) spareForeground(normalPriority);
    resolve({ ...m.boot, buffers: s.spare.buffers });
  }));
  guardPageViews(Object.values(s.spare.buffers).filter((b): b is SharedArrayBuffer => b instanceof SharedArrayBuffer));
  await import(s.spare.kernel);
  port.postMessage({ kind: SPARE_LOADED });
  return assigned;
}

/** A vCPU with nothing to run sleeps until asked to stop (it still honours pause and stop). */
async function idle(): Promise<never> {
  const upcall = hv.sharedInfo[boot.domid];
  const word = boot.vcpu * (vcpu_info.SIZE >> 2) + (vcpu_info.evtchn_upcall_pending >> 2);
  for (;;) {
    Atomics.store(upcall, word, 0);
    await sched.block();
  }
}

function crash(e: unknown): never {
  const detail = e instanceof Error ? (e.stack ?? e.message) : String(e);
  return domainShutdown('crash', detail);
}

process.on('uncaughtException', crash);
process.on('unhandledRejection', crash);

// A guest's page views give out their page, never the machine behind it (view-guard.ts).
if (!caller.privileged && !('spare' in spare)) guardPageViews(Object.values(boot.buffers).filter((b): b is SharedArrayBuffer => b instanceof SharedArrayBuffer));

sched.online();
try {
  // The image is loaded while the domain may still be paused (the builder's xc_dom_load runs none
  // of it), so a restore's downtime does not include loading it.
  const image = (await import(boot.kernel)) as KernelImage;
  post({ kind: 'loaded' }); // the vCPU exists now (the host's vcpus_loaded domctl waits for this)
  // The kernel's first instruction is behind a preemption point: a domain built paused (a restore
  // still filling its memory) runs nothing until the toolstack unpauses it.
  sched.preemptionPoint();
  // vCPU 0's saved context (a restore's resume record): set at build, or by a migration's
  // XEN_DOMCTL_setvcpucontext while the domain was paused.
  if (boot.vcpu === 0) env.resume_gfn = Atomics.load(hv.domains, boot.domid * D.WORDS + D.RESUME_GFN) - 1;
  Object.freeze(env);
  if (boot.vcpu === 0) {
    await image.main(env);
    domainShutdown('poweroff', 'kernel main() returned');
  } else if (image.secondary) {
    await image.secondary(env);
    cpu.cli_hlt();
  } else {
    await idle();
  }
} catch (e) {
  crash(e);
}
