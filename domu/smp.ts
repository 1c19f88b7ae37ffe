/*
 * The standard DomU kernel on its secondary vCPUs (every vCPU but 0).
 *
 * Linux: cpu_bringup_and_idle (arch/x86/xen/smp_pv.c) and the idle loop it enters, with the
 * per-CPU timer tick that wakes it (HZ). A secondary vCPU of this kernel has no devices of its own:
 * the xenstore ring, the console and the drivers live on vCPU 0. It does two things: the share of
 * shared work it is offered (cpu-burn's units: ./workloads/cpu-smp.ts), and hot-plug: when vCPU 0
 * asks it to go (shared/kernel/cpu-hotplug.ts), it goes down at its next safe point, between two
 * units or in its idle loop, and picks up from there when it is brought back.
 *
 * Between jobs it idles on its guest timer, IDLE_TICK_MS at a time: the tick a Linux CPU without
 * NO_HZ takes, and how an idle vCPU notices that it was asked to go, or that work arrived
 * (Linux would send it an IPI, an event channel per CPU; ringvisor's guests have none yet).
 */
import { askedToDie, cpuStarting, playDead } from '../shared/kernel/cpu-hotplug.ts';
import { Kernel } from '../shared/kernel/kernel.ts';
import { SmpArea } from '../shared/kernel/smp.ts';
import type { KernelEnv } from '../shared/public/hypercall.ts';
import { jobActive, serveJob } from './workloads/cpu-smp.ts';

const IDLE_TICK_MS = 10;

export async function secondary(env: KernelEnv): Promise<void> {
  const k = new Kernel(env);
  void k.events.run();
  const smp = new SmpArea(k);
  if (!cpuStarting(smp, k.vcpu)) playDead(k, smp);
  const dying = () => askedToDie(smp, k.vcpu);
  for (;;) {
    if (dying()) {
      playDead(k, smp); // returns when vCPU 0 brings us back
      continue;
    }
    if (jobActive(smp)) {
      await serveJob(k, smp, dying);
      continue;
    }
    await k.timers.sleep(IDLE_TICK_MS);
  }
}
