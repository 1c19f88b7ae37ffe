/*
 * vCPU hot-plug in the guest kernel: watching `cpu/N/availability` and acting on it.
 *
 * Linux: drivers/xen/cpu_hotplug.c (setup_cpu_watcher, handle_vcpu_hotplug_event, vcpu_hotplug,
 * vcpu_online), the cpu_up / cpu_down it leads to, and arch/x86/xen/smp_pv.c (xen_pv_cpu_up:
 * VCPUOP_up; xen_pv_play_dead: the dying CPU calls VCPUOP_down on itself and, brought up again,
 * carries on into cpu_bringup; xen_pv_cpu_die: the controlling CPU polls VCPUOP_is_up until the
 * dying one is down). The nodes and the hypercalls are declared in shared/public/vcpu.ts.
 *
 * Who does what:
 *   vCPU 0 (CpuHotplug)   watches `cpu`; for each event reads cpu/N/availability and
 *                         "online":  VCPUOP_up(N), then waits until N says it is online;
 *                         "offline": asks N to go (SMP state CPU_DYING) and polls VCPUOP_is_up(N)
 *                                    until N has gone down; vCPU 0 itself never goes (Linux on x86
 *                                    does not offline the boot CPU either).
 *                         Events are handled one at a time, in order.
 *   vCPU N (cpuStarting,  marks itself online when it starts or comes back; at its next safe point
 *           playDead)     after being asked to go (between two units of work, or in its idle
 *                         loop), it finishes what it holds, marks itself dead and calls
 *                         VCPUOP_down on itself, which returns when it is brought up again.
 * So a vCPU goes down only where it holds no unfinished work: nothing it took is lost (see
 * domu/workloads/cpu-smp.ts, whose units are shared among the online vCPUs).
 */
import type { XenbusClient } from './xenbus/client.ts';
import type { Kernel } from './kernel.ts';
import { CPU_DEAD, CPU_DYING, CPU_ONLINE, SMP, SmpArea } from './smp.ts';
import { CPU_OFFLINE, CPU_ONLINE as XS_ONLINE, XS_CPU_DIR, xsCpuAvailability } from '../public/vcpu.ts';

/** How often vCPU 0 looks again while a vCPU comes up or goes down (Linux's xen_pv_cpu_die polls every HZ/10). */
const POLL_MS = 1;
/** How long vCPU 0 waits for a vCPU it brought up to say it is online. */
const UP_WAIT_MS = 30_000;

export class CpuHotplug {
  /** Hot-plug events handled, for tests and the scenario: [cpu, 'online' | 'offline'] in order. */
  readonly done: [number, string][] = [];
  private queue: Promise<void> = Promise.resolve();

  private constructor(private readonly k: Kernel, private readonly xs: XenbusClient, readonly smp: SmpArea,
    private readonly log: (line: string) => void) {}

  /**
   * setup_cpu_watcher: the boot CPU is online; watch `cpu`, and bring every possible vCPU to the
   * state its node says (the builder brought the first `vcpus` up already; this catches a
   * vcpu-set made before the kernel looked).
   */
  static async setup(k: Kernel, xs: XenbusClient, log: (line: string) => void): Promise<CpuHotplug> {
    const smp = new SmpArea(k);
    smp.setState(k.vcpu, CPU_ONLINE);
    const h = new CpuHotplug(k, xs, smp, log);
    await xs.watch(XS_CPU_DIR, (path) => {
      const m = /(?:^|\/)cpu\/([0-9]+)(?:\/|$)/.exec(path);
      if (m) h.enqueue(Number(m[1])); // the watch's first firing names `cpu` itself: nothing to do
    });
    for (let cpu = 0; cpu < k.nr_vcpus; cpu++) h.enqueue(cpu);
    await h.queue;
    return h;
  }

  /** Resolves once every event seen so far has been handled. */
  settled(): Promise<void> {
    return this.queue;
  }

  private enqueue(cpu: number): void {
    this.queue = this.queue.then(() => this.vcpuHotplug(cpu)).catch((e: unknown) => this.log(`xen cpu hotplug: cpu ${cpu}: ${String(e)}`));
  }

  /** vcpu_hotplug + vcpu_online: read the node, then bring the vCPU to that state. */
  private async vcpuHotplug(cpu: number): Promise<void> {
    if (cpu >= this.k.nr_vcpus) return; // not a possible CPU of this domain
    const node = xsCpuAvailability(cpu);
    const state = await this.xs.tryRead(node);
    // No node: a domain whose toolstack wrote none (a test harness's, not xl's) stays as built.
    // (Linux says "Unable to read cpu state" here; ringvisor keeps such consoles quiet.)
    if (state === null) return;
    if (state === XS_ONLINE) await this.cpuUp(cpu, node);
    else if (state === CPU_OFFLINE) await this.cpuDown(cpu, node);
    else this.log(`xen cpu hotplug: unknown state(${state}) on CPU${cpu}`);
  }

  /** cpu_up: VCPUOP_up, then wait for the vCPU to say it is online. */
  private async cpuUp(cpu: number, node: string): Promise<void> {
    const hc = this.k.hypercall;
    if (hc.vcpu_op_is_up(cpu) === 1 && this.smp.state(cpu) === CPU_ONLINE) return;
    const rc = hc.vcpu_op_up(cpu);
    if (rc < 0) {
      this.log(`xen cpu hotplug: ${node} = online: VCPUOP_up failed (${rc})`);
      return;
    }
    // Linux's cpu_up gives up on a CPU that does not report alive; so does this, after UP_WAIT_MS.
    const deadline = this.k.clock.systemTimeNs() + UP_WAIT_MS * 1e6;
    while (this.smp.state(cpu) !== CPU_ONLINE) {
      if (this.k.clock.systemTimeNs() > deadline) {
        this.log(`xen cpu hotplug: ${node} = online: CPU ${cpu} did not come online within ${UP_WAIT_MS / 1000} s (its kernel has no secondary entry?)`);
        return;
      }
      await this.k.timers.sleep(POLL_MS);
    }
    this.done.push([cpu, XS_ONLINE]);
    this.log(`xen cpu hotplug: ${node} = online: VCPUOP_up; CPU ${cpu} is now online`);
  }

  /** cpu_down + xen_pv_cpu_die: ask the vCPU to go, then wait until VCPUOP_is_up says it has. */
  private async cpuDown(cpu: number, node: string): Promise<void> {
    const hc = this.k.hypercall;
    if (cpu === this.k.vcpu) {
      this.log(`xen cpu hotplug: ${node} = offline: CPU ${cpu} is the boot CPU and stays online`);
      return;
    }
    if (hc.vcpu_op_is_up(cpu) !== 1) return;
    this.smp.setState(cpu, CPU_DYING);
    while (hc.vcpu_op_is_up(cpu) === 1) await this.k.timers.sleep(POLL_MS);
    this.done.push([cpu, CPU_OFFLINE]);
    this.log(`xen cpu hotplug: ${node} = offline: CPU ${cpu} stopped its work and called VCPUOP_down; CPU ${cpu} is now offline`);
  }
}

/**
 * A secondary vCPU starts, or comes back from VCPUOP_down: it is online, unless it was asked
 * to go in the meantime (then false: it should go down again at once).
 */
export function cpuStarting(smp: SmpArea, cpu: number): boolean {
  const prev = Atomics.compareExchange(smp.words, SMP.CPU_STATE + cpu, CPU_DEAD, CPU_ONLINE);
  return prev !== CPU_DYING;
}

/** Has this vCPU been asked to go down? (one load: every unit of work checks it). */
export function askedToDie(smp: SmpArea, cpu: number): boolean {
  return smp.state(cpu) === CPU_DYING;
}

/**
 * xen_pv_play_dead: called by the vCPU itself, holding no work. It marks itself dead and calls
 * VCPUOP_down on itself, which returns only when vCPU 0 brings it up again; then it is online.
 */
export function playDead(k: Kernel, smp: SmpArea): void {
  smp.setState(k.vcpu, CPU_DEAD);
  k.hypercall.vcpu_op_down(k.vcpu);
  while (!cpuStarting(smp, k.vcpu)) {
    smp.setState(k.vcpu, CPU_DEAD);
    k.hypercall.vcpu_op_down(k.vcpu);
  }
}
