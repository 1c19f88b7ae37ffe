// A guest that drives VCPUOP_up / VCPUOP_down / VCPUOP_is_up itself, reporting on the hypervisor
// console; vCPU 1 serves an unbounded cpu-burn job (domu/workloads/cpu-smp.ts) whenever it is up.
import { Kernel } from '../../shared/kernel/kernel.ts';
import { cpuStarting } from '../../shared/kernel/cpu-hotplug.ts';
import { CPU_ONLINE, JOB_UNBOUNDED, SMP, SmpArea } from '../../shared/kernel/smp.ts';
import type { KernelEnv } from '../../shared/public/hypercall.ts';
import { closeJob, openJob, serveJob } from '../../domu/workloads/cpu-smp.ts';

export async function main(env: KernelEnv): Promise<void> {
  const k = new Kernel(env);
  void k.events.run();
  const hc = k.hypercall;
  const say = (s: string) => hc.console_io_write(s);
  const smp = new SmpArea(k);
  const units = () => Atomics.load(smp.words, SMP.JOB_BY_CPU + 1);
  say(`is_up ${[0, 1, 2, 3].map((v) => hc.vcpu_op_is_up(v)).join(' ')}`);
  say(`bad ${hc.vcpu_op_up(3)} ${hc.vcpu_op_down(-1)} ${hc.vcpu_op_is_up(99)}`);
  openJob(smp, JOB_UNBOUNDED);
  say(`up ${hc.vcpu_op_up(1)} ${hc.vcpu_op_up(1)}`); // the second: already up, nothing to do
  while (smp.state(1) !== CPU_ONLINE || units() < 100) await k.timers.sleep(1);
  say('v1 working');
  // Another vCPU down: asynchronous (vcpu.h); it stops at its next preemption point.
  say(`down ${hc.vcpu_op_down(1)} is_up ${hc.vcpu_op_is_up(1)}`);
  await k.timers.sleep(20);
  const frozen = units();
  await k.timers.sleep(100);
  say(`v1 down: units ${frozen} then ${units()}`);
  await k.timers.sleep(5000); // the test looks at the runstate meanwhile
  say(`up again ${hc.vcpu_op_up(1)}`);
  while (units() < frozen + 100) await k.timers.sleep(1);
  say('v1 resumed');
  closeJob(smp);
  say(`down ${hc.vcpu_op_down(1)}`);
  while (hc.vcpu_op_is_up(1) === 1) await k.timers.sleep(1);
  say('last: VCPUOP_down on myself');
  hc.vcpu_op_down(0); // the last vCPU up: the domain powers off, the call does not return
  say('not reached');
}

export async function secondary(env: KernelEnv): Promise<void> {
  const k = new Kernel(env);
  void k.events.run();
  const smp = new SmpArea(k);
  cpuStarting(smp, k.vcpu);
  for (;;) {
    await serveJob(k, smp, () => false);
    await k.timers.sleep(1);
  }
}
