/*
 * A host for CPU-scheduling runs (the bench suite `sched`, the scenario `cpu-share`): no Dom0,
 * only guests running scenarios/sched/cpu-kernel.ts, and helpers that read what the scheduler
 * decided (runstate times) and what the guests said (their console lines).
 */
import { Host } from '../../hypervisor/host.ts';
import type { DomainConfig } from '../../shared/public/hypercall.ts';
import type { SchedGuestModule } from './cpu-kernel.ts';
import { SCENARIO_BOUND_S, bounded, lastLines, until } from '../lib/hang.ts';

const KERNEL = new URL('./cpu-kernel.ts', import.meta.url).href;

export class CpuRig {
  readonly host: Host;
  readonly said: string[] = [];
  private waiters: (() => void)[] = [];

  constructor(pcpus: number) {
    this.host = new Host({ memoryMiB: 32, log: () => {}, pcpus });
    this.host.on('console', (e: { domid: number; text: string }) => {
      this.said.push(`d${e.domid} ${e.text}`);
      for (const w of this.waiters.splice(0)) w();
    });
  }

  create(name: string, module: SchedGuestModule, extra: Partial<DomainConfig> = {}): Promise<number> {
    return this.host.createDomain({ name, vcpus: 1, memoryKiB: 2048, kernel: KERNEL, module, ...extra });
  }

  /** The first console line of `domid` starting with `prefix` (waits for it). */
  async line(domid: number, prefix: string): Promise<string> {
    const wait = async () => {
      for (;;) {
        const hit = this.said.find((s) => s.startsWith(`d${domid} ${prefix}`));
        if (hit) return hit.slice(`d${domid} ${prefix}`.length).trim();
        await new Promise<void>((r) => this.waiters.push(r));
      }
    };
    return bounded(wait(), () => `waiting for d${domid} to say "${prefix}"; the guests said last:\n${lastLines(this.said)}`, SCENARIO_BOUND_S);
  }

  /** The last `units N t S` report of (domid, vcpu): work units done and guest seconds. */
  lastBurn(domid: number, vcpu = 0): { units: number; t: number } | null {
    for (let i = this.said.length - 1; i >= 0; i--) {
      const m = new RegExp(`^d${domid} v${vcpu} units (\\d+) t ([0-9.]+)$`).exec(this.said[i]);
      if (m) return { units: Number(m[1]), t: Number(m[2]) };
    }
    return null;
  }

  cpuMs(domid: number): number {
    return this.host.info(domid)!.cpu_time_ms;
  }

  /** Running time each domain accounts while `total` ms of running time pass among them. */
  async shares(doms: number[], total: number): Promise<number[]> {
    const before = doms.map((d) => this.cpuMs(d));
    const sum = () => doms.reduce((s, d, i) => s + this.cpuMs(d) - before[i], 0);
    await until(() => sum() >= total, `${total} ms of running time among d${doms.join(', d')}`, { seconds: SCENARIO_BOUND_S, seen: () => [`so far ${sum()} ms`] });
    return doms.map((d, i) => this.cpuMs(d) - before[i]);
  }

  close(): Promise<void> {
    return this.host.close();
  }
}
