/*
 * The domctl argument checks, and the error a refused domctl carries.
 *
 * Xen: xen/common/domain.c's sanitise_domain_config and the checks at the top of each do_domctl
 * case (xen/common/domctl.c): a value out of range is EINVAL before anything is built. The memory
 * daemons' settings (ringvisor's stand-ins for xenpaging's and the sharing scanner's knobs,
 * hypervisor/mm/mm-daemons.ts) are checked the same way.
 *
 * Apart from host.ts because they are pure: a config or a settings object in, a DomctlError or
 * nothing out, with no domain, thread or shared state involved, so they read (and are tested,
 * test/xl-create-checks.test.ts) on their own.
 */
import type { DomainConfig } from '../shared/public/hypercall.ts';
import { XEN_EINVAL } from '../shared/public/xen.ts';
import { MAX_VCPUS } from './state.ts';

/**
 * A domctl refused, as Xen refuses it: an errno for the caller (the toolstack turns it into the
 * config key responsible), and the reason in words for the hypervisor's log.
 */
export class DomctlError extends Error {
  constructor(readonly errno: number, message: string) {
    super(message);
    this.name = 'DomctlError';
  }
}

/* The memory daemons' settings from a domctl: only the named keys, each of its kind, or EINVAL. */
export function checkedSettings(v: unknown, keys: Record<string, 'boolean' | 'count'>): Record<string, unknown> {
  if (typeof v !== 'object' || v === null) throw new DomctlError(XEN_EINVAL, 'memory daemon settings must be an object');
  const out: Record<string, unknown> = {};
  for (const [k, x] of Object.entries(v)) {
    const kind = keys[k];
    if (kind === undefined || x === undefined) continue;
    if (kind === 'boolean' ? typeof x !== 'boolean' : !(Number.isSafeInteger(x) && (x as number) >= 0 && (x as number) <= 1 << 24)) {
      throw new DomctlError(XEN_EINVAL, `memory daemon setting ${k}: ${String(x)} (expected ${kind === 'boolean' ? 'true or false' : 'a whole number'})`);
    }
    out[k] = x;
  }
  return out;
}

/* Xen's domctl argument checks: a bad value is EINVAL (e.g. more vCPUs than MAX_VCPUS). */
export function validateConfig(c: DomainConfig): void {
  if (typeof c.name !== 'string' || c.name.length === 0) throw new DomctlError(XEN_EINVAL, 'domain config: name must be a non-empty string');
  if (!Number.isInteger(c.vcpus) || c.vcpus < 1 || c.vcpus > MAX_VCPUS) throw new DomctlError(XEN_EINVAL, `domain config ${c.name}: vcpus must be 1..${MAX_VCPUS}`);
  const max = c.max_vcpus ?? c.vcpus;
  if (!Number.isInteger(max) || max < c.vcpus || max > MAX_VCPUS) throw new DomctlError(XEN_EINVAL, `domain config ${c.name}: max_vcpus must be vcpus..${MAX_VCPUS}`);
  for (const key of ['vcpu_hard_affinity', 'vcpu_soft_affinity'] as const) {
    const l = c[key];
    if (l !== undefined && !(Array.isArray(l) && l.length <= max && l.every((m) => Array.isArray(m) && m.every((p) => Number.isInteger(p) && p >= 0 && p < 31)))) {
      throw new DomctlError(XEN_EINVAL, `domain config ${c.name}: ${key} must be at most max_vcpus lists of pCPU numbers 0..30`);
    }
  }
  if (!Number.isInteger(c.memoryKiB) || c.memoryKiB < 64) throw new DomctlError(XEN_EINVAL, `domain config ${c.name}: memory must be at least 64 KiB`);
  if (c.maxmemKiB !== undefined && !(Number.isInteger(c.maxmemKiB) && c.maxmemKiB >= c.memoryKiB)) {
    throw new DomctlError(XEN_EINVAL, `domain config ${c.name}: maxmem must be at least memory`);
  }
  if (typeof c.kernel !== 'string') throw new DomctlError(XEN_EINVAL, `domain config ${c.name}: kernel must be a module URL`);
  if (c.weight !== undefined && !(Number.isInteger(c.weight) && c.weight >= 1 && c.weight <= 65535)) throw new DomctlError(XEN_EINVAL, `domain config ${c.name}: weight must be 1..65535`);
  if (c.cap !== undefined && !(Number.isInteger(c.cap) && c.cap >= 0 && c.cap <= 100 * 31)) throw new DomctlError(XEN_EINVAL, `domain config ${c.name}: cap must be 0 (none) or a % of one pCPU`);
  for (const key of ['cpus', 'cpus_soft'] as const) {
    const l = c[key];
    if (l !== undefined && !(Array.isArray(l) && l.length > 0 && l.every((p) => Number.isInteger(p) && p >= 0 && p < 31))) {
      throw new DomctlError(XEN_EINVAL, `domain config ${c.name}: ${key} must list pCPU numbers 0..30`);
    }
  }
}
