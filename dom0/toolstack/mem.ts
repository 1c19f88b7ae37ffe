/*
 * xl mem-set and xl mem-max: a running domain's balloon target and its ceiling.
 *
 * Xen: tools/xl/xl_mem.c (parse_mem_size_kb: a number with an optional unit b, k, m, g or t, KiB
 * when none) and tools/libs/light/libxl_mem.c. libxl_set_memory_target with enforce: the target
 * must not exceed memory/static-max; Xen's max_pages becomes target + LIBXL_MAXMEM_CONSTANT (the
 * slack), then memory/target is written and the guest's balloon follows it. libxl_domain_setmaxmem:
 * refused below the current target; max_pages becomes max + slack and memory/static-max is
 * written; the guest is not told.
 */
import { LIBXL_MAXMEM_CONSTANT_KIB, XS_MEMORY_STATIC_MAX, XS_MEMORY_TARGET } from '../../shared/public/memory.ts';
import { domainPath } from '../../shared/public/io/xenbus.ts';
import { errnoName } from '../../shared/public/xen.ts';
import type { Hypercalls } from '../../shared/public/hypercall.ts';
import type { XenbusClient } from '../../shared/kernel/xenbus/client.ts';
import { XlError } from './libxl.ts';

const UNITS: Readonly<Record<string, number>> = { b: 1 / 1024, k: 1, m: 1024, g: 1024 * 1024, t: 1024 * 1024 * 1024 };

/** parse_mem_size_kb: "256m" → 262144; a bare number is KiB. Throws XlError on anything else. */
export function parseMemSizeKiB(s: string): number {
  const m = /^([0-9]+)([bkmgtBKMGT]?)$/.exec(s.trim());
  if (!m) throw new XlError('failed', `invalid memory size: ${s} (expected a number with an optional unit b, k, m, g or t; KiB when none)`);
  const kib = Math.floor(Number(m[1]) * UNITS[(m[2] || 'k').toLowerCase()]);
  if (!Number.isSafeInteger(kib)) throw new XlError('failed', `invalid memory size: ${s} (too large)`);
  return kib;
}

async function readKiB(xs: XenbusClient, domid: number, key: string): Promise<number> {
  const v = await xs.tryRead(`${domainPath(domid)}/${key}`);
  if (v === null || !/^[0-9]+$/.test(v)) throw new XlError('failed', `domain ${domid} has no ${key} (is it a domain this toolstack built?)`);
  return Number(v);
}

/** libxl_set_memory_target (enforce = 1). Returns the new target in KiB. */
export async function memSet(hc: Hypercalls, xs: XenbusClient, domid: number, size: string): Promise<number> {
  const target = parseMemSizeKiB(size);
  if (domid === 0) throw new XlError('failed', 'Domain-0 keeps its memory in ringvisor (it has no balloon)');
  const staticMax = await readKiB(xs, domid, XS_MEMORY_STATIC_MAX);
  if (target > staticMax) {
    throw new XlError('failed', `memory_dynamic_max must be less than or equal to memory_static_max: ${target} KiB asked, ` +
      `static-max is ${staticMax} KiB (raise it first with mem-max)`);
  }
  if (target < 1024) throw new XlError('failed', `memory target ${target} KiB is below the 1 MiB a guest needs to run`);
  const rc = await hc.domctl_max_mem(domid, target + LIBXL_MAXMEM_CONSTANT_KIB);
  if (rc < 0) throw new XlError('failed', `cannot set domain ${domid}'s max_mem: ${errnoName(rc)}`);
  const pod = await hc.domctl_set_pod_target(domid, target);
  if (pod < 0) throw new XlError('failed', `cannot set domain ${domid}'s PoD target: ${errnoName(pod)}`);
  await xs.write(`${domainPath(domid)}/${XS_MEMORY_TARGET}`, String(target));
  return target;
}

/** libxl_domain_setmaxmem. Returns the new static-max in KiB. */
export async function memMax(hc: Hypercalls, xs: XenbusClient, domid: number, size: string): Promise<number> {
  const max = parseMemSizeKiB(size);
  if (domid === 0) throw new XlError('failed', 'Domain-0 keeps its memory in ringvisor (it has no balloon)');
  const target = await readKiB(xs, domid, XS_MEMORY_TARGET);
  if (max < target) {
    throw new XlError('failed', `memory_static_max must be greater than or equal to memory_dynamic_max: ${max} KiB asked, ` +
      `the target is ${target} KiB (lower it first with mem-set)`);
  }
  const rc = await hc.domctl_max_mem(domid, max + LIBXL_MAXMEM_CONSTANT_KIB);
  if (rc < 0) throw new XlError('failed', `cannot set domain ${domid}'s max_mem: ${errnoName(rc)}`);
  await xs.write(`${domainPath(domid)}/${XS_MEMORY_STATIC_MAX}`, String(max));
  return max;
}

/** The sharing scanner's or the pager's settings as the hypervisor answered (an errno is an error). */
export function memDaemon(answer: unknown): unknown {
  if (typeof answer === 'number') throw new XlError('failed', `the hypervisor refused: ${errnoName(answer)}`);
  return answer;
}
