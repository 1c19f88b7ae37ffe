/*
 * xl's scheduling verbs, the toolstack's side: sched-credit, vcpu-list, vcpu-pin, vcpu-set
 * (the last is ./vcpu-set.ts).
 *
 * Xen: tools/xl/xl_sched.c (main_sched_credit: -d/-w/-c per domain, -s/-t/-r for the pool) and
 * tools/xl/xl_vcpu.c (main_vcpulist, main_vcpupin, the cpulist syntax "0-3,5" and "all"), over
 * libxl_domain_sched_params_{get,set}, libxl_sched_credit_params_{get,set},
 * libxl_list_vcpu and libxl_set_vcpuaffinity. The hypervisor's half is domctl_scheduler_op
 * (shared/public/sched.ts).
 */
import type { SchedCreditParams, SchedOp, SchedPool, VcpuInfo } from '../../shared/public/sched.ts';
import { errnoName } from '../../shared/public/xen.ts';
import type { Dom0 } from '../dom0.ts';
import { XlError, type Libxl } from './libxl.ts';
import { vcpuSet } from './vcpu-set.ts';

import type { SchedRequest } from './protocol.ts';
export type { SchedRequest };

export interface CreditRow extends SchedCreditParams { name: string; domid: number }
export interface VcpuRow extends VcpuInfo { name: string }

export async function schedVerb(x: Libxl, dom0: Dom0, r: SchedRequest): Promise<unknown> {
  const call = async <T>(op: SchedOp): Promise<T> => {
    const v = await dom0.k.hypercall.domctl_scheduler_op(op);
    if (typeof v === 'number' && v < 0) throw new XlError('failed', `${op.op}: ${errnoName(v)}`);
    if (v !== null && typeof v === 'object' && 'error' in v) throw new XlError('failed', String((v as { error: unknown }).error));
    return v as T;
  };
  const domains = await x.list();
  const pool = await call<SchedPool>({ op: 'pool-getinfo' });
  switch (r.op) {
    case 'credit': {
      if (r.domain === undefined) {
        return Promise.all(domains.map(async (d) => ({ name: d.name, domid: d.domid, ...(await call<SchedCreditParams>({ op: 'getinfo', domid: d.domid })) })));
      }
      const domid = await x.resolve(r.domain);
      if (r.weight !== undefined || r.cap !== undefined) await call({ op: 'putinfo', domid, weight: r.weight, cap: r.cap });
      const name = domains.find((d) => d.domid === domid)?.name ?? String(domid);
      return [{ name, domid, ...(await call<SchedCreditParams>({ op: 'getinfo', domid })) }];
    }
    case 'pool':
      if (r.tslice_ms !== undefined || r.ratelimit_us !== undefined || r.boost !== undefined) {
        await call({ op: 'pool-putinfo', tslice_ms: r.tslice_ms, ratelimit_us: r.ratelimit_us, boost: r.boost });
      }
      return call<SchedPool>({ op: 'pool-getinfo' });
    case 'vcpu-list': {
      const ids = r.domains.length === 0 ? domains.map((d) => d.domid) : await Promise.all(r.domains.map((d) => x.resolve(d)));
      const rows: VcpuRow[] = [];
      for (const domid of ids) {
        const name = domains.find((d) => d.domid === domid)?.name ?? String(domid);
        for (const v of await call<VcpuInfo[]>({ op: 'getvcpuinfo', domid })) rows.push({ name, ...v });
      }
      return rows;
    }
    case 'vcpu-pin': {
      const domid = await x.resolve(r.domain);
      const nr = domains.find((d) => d.domid === domid)?.maxVcpus ?? 0;
      const n = Math.max(1, pool.pcpus);
      const vcpus = r.vcpu === 'all' ? Array.from({ length: nr }, (_, i) => i) : [vcpuNumber(r.vcpu)];
      const hard = r.hard === '-' ? null : parseCpuList(r.hard, n);
      const soft = r.soft === undefined || r.soft === '-' ? null : parseCpuList(r.soft, n);
      for (const vcpu of vcpus) await call({ op: 'setvcpuaffinity', domid, vcpu, hard, soft });
      return 0;
    }
    case 'vcpu-set':
      return vcpuSet(dom0.xs, dom0.k.hypercall, await x.resolve(r.domain), r.count, r.ignoreHost ?? false);
  }
}

function vcpuNumber(s: string): number {
  if (!/^[0-9]+$/.test(s)) throw new XlError('failed', `vcpu ${JSON.stringify(s)} (expected a number or "all")`);
  return Number(s);
}

/** xl's cpulist: "all", or comma-separated numbers and ranges ("0-2,5"); "^N" removes N. */
export function parseCpuList(s: string, nrCpus: number): number[] {
  const set = new Set<number>();
  for (const part of s.split(',')) {
    const p = part.trim();
    const neg = p.startsWith('^');
    const body = neg ? p.slice(1) : p;
    let range: number[];
    if (body === 'all') range = Array.from({ length: nrCpus }, (_, i) => i);
    else {
      const m = /^([0-9]+)(?:-([0-9]+))?$/.exec(body);
      if (!m) throw new XlError('failed', `cpu list ${JSON.stringify(s)}: ${JSON.stringify(p)} (expected N, N-M, all or ^N)`);
      const a = Number(m[1]);
      const b = m[2] === undefined ? a : Number(m[2]);
      if (b < a || b >= nrCpus) throw new XlError('failed', `cpu list ${JSON.stringify(s)}: ${p} (this host has cpus 0-${nrCpus - 1})`);
      range = Array.from({ length: b - a + 1 }, (_, i) => a + i);
    }
    for (const c of range) if (neg) set.delete(c); else set.add(c);
  }
  if (set.size === 0) throw new XlError('failed', `cpu list ${JSON.stringify(s)} names no cpu`);
  return [...set].sort((a, b) => a - b);
}
