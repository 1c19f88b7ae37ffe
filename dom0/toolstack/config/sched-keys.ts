/*
 * The scheduling keys of xl.cfg: cpus, cpus_soft, cpu_weight, cap.
 *
 * Xen: xl.cfg(5) "CPU Allocation" and "Scheduling"; tools/xl/xl_parse.c (parse_vcpu_affinity:
 * a cpu list string, "all", ranges "0-3", exclusions "^2"; cpu_weight and cap into
 * libxl_domain_sched_params). `cpus` and `cpus_soft` take either form xl takes: one cpu list for
 * every vCPU (`cpus = "0-3"`), or a list with one cpu list per vCPU (`cpus = ["0", "1-3"]`:
 * vCPU 0 on pCPU 0, vCPU 1 on 1 to 3), which becomes libxl's vcpu_hard_affinity /
 * vcpu_soft_affinity. As in parse_vcpu_affinity, entries beyond maxvcpus are ignored (with a
 * warning here) and vCPUs beyond the list may run anywhere. A pCPU number beyond the host's is
 * caught when the domain is built, as libxl does against the host's cpumap.
 */
import { keyLine, getLong, getString } from './xlcfg-get.ts';
import type { Report } from './config-error.ts';
import type { XlConfig } from './xlcfg-parse.ts';

export interface SchedConfig {
  weight?: number;
  cap?: number;
  cpus?: number[];
  cpus_soft?: number[];
  /** The list form, one entry per vCPU (libxl's names). */
  vcpu_hard_affinity?: number[][];
  vcpu_soft_affinity?: number[][];
}

/** The most pCPU slots a host may have (hypervisor/sched/tables.ts MAX_PCPUS). */
const MAX_CPUS = 31;

const PER_VCPU = { cpus: 'vcpu_hard_affinity', cpus_soft: 'vcpu_soft_affinity' } as const;

export function interpretSched(cfg: XlConfig, report: Report, maxvcpus = Infinity): SchedConfig {
  const out: SchedConfig = {};
  const weight = getLong(cfg, 'cpu_weight', report, 'cpu_weight = 1..65535 (default 256)', { min: 1, max: 65535 });
  if (weight !== undefined) out.weight = weight;
  const cap = getLong(cfg, 'cap', report, 'cap = % of one pCPU, 0 = none', { min: 0, max: 100 * MAX_CPUS });
  if (cap !== undefined) out.cap = cap;
  for (const key of ['cpus', 'cpus_soft'] as const) {
    const setting = cfg.settings.get(key);
    if (setting?.value.kind === 'list') {
      const lists: number[][] = [];
      setting.value.items.forEach((item, v) => {
        if (item.kind === 'list') {
          report.error(item.loc.line, `\`${key}' entry ${v} is a list (expected a cpu list string per vCPU, e.g. ${key} = ["0", "1-3"])`, item.loc.column);
          return;
        }
        if (v >= maxvcpus) {
          report.warn(item.loc.line, `\`${key}' entry ${v} ("${item.text}") ignored: the domain has ${maxvcpus} vCPU(s) at most (maxvcpus)`, item.loc.column);
          return;
        }
        const cpus = cpuList(item.text);
        if (typeof cpus === 'string') report.error(item.loc.line, `${key} entry ${v} (vCPU ${v}) "${item.text}": ${cpus}`, item.loc.column);
        else lists.push(cpus);
      });
      if (setting.value.items.length === 0) report.error(keyLine(setting), `\`${key}' is an empty list (expected a cpu list string per vCPU, e.g. ${key} = ["0", "1-3"])`);
      out[PER_VCPU[key]] = lists;
      continue;
    }
    const s = getString(cfg, key, report, `${key} = "CPULIST", e.g. "0-1,3" or "all", or one per vCPU: ["0", "1-3"]`);
    if (!s) continue;
    const cpus = cpuList(s.text);
    if (typeof cpus === 'string') report.error(keyLine(cfg.settings.get(key)!), `${key} = "${s.text}": ${cpus}`, s.loc.column);
    else out[key] = cpus;
  }
  return out;
}

/** "all", N, N-M, ^N, comma-separated; the set of pCPUs, or why not. */
function cpuList(text: string): number[] | string {
  const set = new Set<number>();
  for (const raw of text.split(',')) {
    const p = raw.trim();
    const neg = p.startsWith('^');
    const body = neg ? p.slice(1) : p;
    let range: number[];
    if (body === 'all') {
      range = Array.from({ length: MAX_CPUS }, (_, i) => i);
    } else {
      const m = /^([0-9]+)(?:-([0-9]+))?$/.exec(body);
      if (!m) return `"${p}" (expected N, N-M, all or ^N)`;
      const a = Number(m[1]);
      const b = m[2] === undefined ? a : Number(m[2]);
      if (b < a || b >= MAX_CPUS) return `"${p}" (expected pCPUs 0..${MAX_CPUS - 1}, low to high)`;
      range = Array.from({ length: b - a + 1 }, (_, i) => a + i);
    }
    for (const c of range) if (neg) set.delete(c); else set.add(c);
  }
  if (set.size === 0) return 'names no pCPU';
  return [...set].sort((a, b) => a - b);
}
