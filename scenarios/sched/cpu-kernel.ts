/*
 * A small guest kernel for CPU scheduling: a CPU hog (`burn`, on every vCPU), an I/O-bound waker
 * (`wake`), or a timer check (`timers`), reporting on the hypervisor console. The scheduler tests,
 * the bench suite `sched` and the scenario `cpu-share` boot it without Dom0: CPU scheduling
 * needs no devices. The workloads themselves are domu/workloads/cpu.ts.
 */
import { Kernel } from '../../shared/kernel/kernel.ts';
import type { KernelEnv } from '../../shared/public/hypercall.ts';
import { runCpuBurn, runIoWake } from '../../domu/workloads/cpu.ts';

export interface SchedGuestModule {
  mode: 'burn' | 'wake' | 'timers';
  /** wake: how many wake-ups, how far apart. */
  count?: number;
  periodMs?: number;
}

async function burn(k: Kernel): Promise<void> {
  void k.events.run();
  k.log(`v${k.vcpu} burning`);
  await runCpuBurn(k, { seconds: Infinity, reportMs: 200 }, (r) => k.log(`v${k.vcpu} units ${r.units} t ${r.seconds.toFixed(4)}`));
}

export async function main(env: KernelEnv): Promise<void> {
  const k = new Kernel(env);
  const m = env.module as SchedGuestModule;
  switch (m.mode) {
    case 'burn':
      return burn(k);
    case 'wake': {
      void k.events.run();
      k.log('waking');
      const r = await runIoWake(k, { count: m.count ?? 50, periodMs: m.periodMs ?? 5 });
      k.log(`wake-result ${JSON.stringify(r)}`);
      await new Promise(() => {}); // stay up (idle loop) until destroyed
      return;
    }
    case 'timers': {
      void k.events.run();
      // Deadlines set out of order, two of them equal: they must fire by deadline, FIFO among
      // equals, and never before their deadline by the guest's own clock.
      const t0 = k.clock.systemTimeNs();
      const offsetsMs = [40, 10, 25, 10, 5, 60, 1, 30];
      const fired: { i: number; deadline: number; at: number }[] = [];
      await Promise.all(offsetsMs.map((ms, i) => {
        const deadline = t0 + ms * 1e6;
        return k.timers.until(deadline).then(() => { fired.push({ i, deadline, at: k.clock.systemTimeNs() }); });
      }));
      const wall = k.clock.wallClockMs();
      k.log(`timers-result ${JSON.stringify({ order: fired.map((f) => f.i), early: fired.filter((f) => f.at < f.deadline).length, virqs: k.timers.stats.virqs, wall })}`);
      await new Promise(() => {});
      return;
    }
  }
}

export async function secondary(env: KernelEnv): Promise<void> {
  const k = new Kernel(env);
  if ((env.module as SchedGuestModule).mode === 'burn') return burn(k);
  await k.events.run();
}
