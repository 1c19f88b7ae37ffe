/*
 * The scheduling verbs of the command line: sched-credit, vcpu-list, vcpu-pin, vcpu-set.
 *
 * Xen: tools/xl/xl_sched.c (main_sched_credit and its output: the pool line, then Name ID Weight
 * Cap) and tools/xl/xl_vcpu.c (main_vcpulist: Name ID VCPU CPU State Time(s) Affinity (Hard /
 * Soft); main_vcpupin; main_vcpuset, silent on success as xl is). The toolstack's side is
 * dom0/toolstack/sched.ts.
 */
import { type Command, InvalidArgumentError } from 'commander';
import type { CreditRow, SchedRequest, VcpuRow } from '../dom0/toolstack/sched.ts';
import type { SchedPool } from '../shared/public/sched.ts';
import type { XlClient } from './client.ts';

interface Wiring {
  withClient<T>(cmd: Command, f: (c: XlClient) => Promise<T>): Promise<T>;
  out(s: string): void;
}

const sched = <T>(w: Wiring, cmd: Command, op: SchedRequest) => w.withClient(cmd, (c) => c.call<T>({ verb: 'sched', op }));

export function registerSchedVerbs(program: Command, w: Wiring): void {
  program.command('sched-credit').description('the credit scheduler: a domain\'s weight and cap (-d -w -c), or the pool\'s timeslice and ratelimit (-s -t -r) (xl sched-credit)')
    .option('-d, --domain <domain>', 'the domain to show or change (default: list all)')
    .option('-w, --weight <n>', 'its weight, 1..65535 (default for a new domain: 256)', int)
    .option('-c, --cap <pct>', 'its cap in % of one pCPU (0 = none)', int)
    .option('-s, --schedparam', 'show or change the pool\'s parameters instead')
    .option('-t, --tslice_ms <ms>', 'with -s: the timeslice, 1..1000 ms (default 30)', int)
    .option('-r, --ratelimit_us <us>', 'with -s: the ratelimit, 0 or 100..500000 µs, below the timeslice (default 1000)', int)
    .option('--boost <on|off>', 'with -s: BOOST on wake (ringvisor only; Xen always boosts)', onOff)
    .action(async (o: { domain?: string; weight?: number; cap?: number; schedparam?: boolean; tslice_ms?: number; ratelimit_us?: number; boost?: boolean }, cmd: Command) => {
      if (o.schedparam) {
        w.out(poolLine(await sched<SchedPool>(w, cmd, { op: 'pool', tslice_ms: o.tslice_ms, ratelimit_us: o.ratelimit_us, boost: o.boost })));
        return;
      }
      if ((o.weight !== undefined || o.cap !== undefined) && o.domain === undefined) throw new InvalidArgumentError('-w and -c need -d DOMAIN');
      const pool = await sched<SchedPool>(w, cmd, { op: 'pool' });
      const rows = await sched<CreditRow[]>(w, cmd, { op: 'credit', domain: o.domain, weight: o.weight, cap: o.cap });
      if (o.weight !== undefined || o.cap !== undefined) return;
      w.out(poolLine(pool));
      w.out(`${'Name'.padEnd(32)}${'ID'.padStart(5)}${'Weight'.padStart(7)}${'Cap'.padStart(6)}\n`);
      for (const r of rows) w.out(`${r.name.padEnd(32)}${String(r.domid).padStart(5)}${String(r.weight).padStart(7)}${String(r.cap).padStart(6)}\n`);
    });

  program.command('vcpu-list').description('each vCPU: Name ID VCPU CPU State Time(s) Affinity (Hard / Soft) (xl vcpu-list)')
    .argument('[domain...]', 'domains (default: all)')
    .action(async (domains: string[], _o: unknown, cmd: Command) => {
      const pool = await sched<SchedPool>(w, cmd, { op: 'pool' });
      const rows = await sched<VcpuRow[]>(w, cmd, { op: 'vcpu-list', domains });
      w.out(formatVcpuList(rows, pool.pcpus));
    });

  program.command('vcpu-pin').description('set a vCPU\'s hard (and soft) affinity: the pCPUs it may run on (xl vcpu-pin)')
    .argument('<domain>', 'domain name or id').argument('<vcpu>', 'vCPU number, or all')
    .argument('<cpus>', 'hard affinity: a cpu list ("0-1,3", "all", "^2"), or - to leave it')
    .argument('[cpus_soft]', 'soft affinity, the same way')
    .action(async (domain: string, vcpu: string, hard: string, soft: string | undefined, _o: unknown, cmd: Command) => {
      await sched(w, cmd, { op: 'vcpu-pin', domain, vcpu, hard, soft });
    });

  program.command('vcpu-set').description('set how many vCPUs are online, up to maxvcpus: the guest\'s cpu/N/availability nodes, which its kernel acts on (xl vcpu-set)')
    .argument('<domain>', 'domain name or id').argument('<vcpus>', 'vCPUs 0..N-1 online, the rest offline')
    .option('-i, --ignore-host', 'allow more vCPUs than the host has pCPUs')
    .action(async (domain: string, count: string, o: { ignoreHost?: boolean }, cmd: Command) => {
      await sched(w, cmd, { op: 'vcpu-set', domain, count, ignoreHost: o.ignoreHost ?? false });
    });
}

function poolLine(p: SchedPool): string {
  return `Cpupool Pool-0: tslice=${p.tslice_ms}ms ratelimit=${p.ratelimit_us}us migration-delay=0us` +
    `${p.pcpus === 0 ? ' (no pCPU slots: the host OS schedules)' : ` pcpus=${p.pcpus}`}${p.boost ? '' : ' boost=off'}\n`;
}

/** xl vcpu-list's table; the State column is xl's three letters: r(unning) b(locked), p(aused/offline). */
export function formatVcpuList(rows: readonly VcpuRow[], pcpus: number): string {
  const lines = [`${'Name'.padEnd(32)}${'ID'.padStart(5)}${'VCPU'.padStart(6)}${'CPU'.padStart(6)} State ${'Time(s)'.padStart(9)} Affinity (Hard / Soft)`];
  for (const r of rows) {
    const state = `${r.running ? 'r' : '-'}${r.state === 'blocked' ? 'b' : '-'}${r.state === 'offline' ? 'p' : '-'}`;
    lines.push(`${r.name.padEnd(32)}${String(r.domid).padStart(5)}${String(r.vcpu).padStart(6)}${(r.cpu < 0 ? '-' : String(r.cpu)).padStart(6)}  ${state}  ` +
      `${(r.time_ms / 1000).toFixed(1).padStart(9)} ${cpuList(r.hard, pcpus)} / ${cpuList(r.soft, pcpus, true)}`);
  }
  return `${lines.join('\n')}\n`;
}

/** "all", or ranges: 0-2,5. An empty soft affinity means "no preference": all. */
function cpuList(cpus: readonly number[], n: number, soft = false): string {
  if (cpus.length === 0 && soft) return 'all';
  if (n > 0 && cpus.length >= n) return 'all';
  const parts: string[] = [];
  for (let i = 0; i < cpus.length;) {
    let j = i;
    while (j + 1 < cpus.length && cpus[j + 1] === cpus[j]! + 1) j++;
    parts.push(i === j ? `${cpus[i]}` : `${cpus[i]}-${cpus[j]}`);
    i = j + 1;
  }
  return parts.join(',') || 'none';
}

function int(v: string): number {
  if (!/^[0-9]+$/.test(v)) throw new InvalidArgumentError(`${v} is not a number`);
  return Number(v);
}

function onOff(v: string): boolean {
  if (v !== 'on' && v !== 'off') throw new InvalidArgumentError('expected on or off');
  return v === 'on';
}
