/*
 * vCPU hot-plug: bringing a domain's vCPUs up and down.
 *
 * Xen: do_vcpu_op in xen/common/domain.c, VCPUOP_up / VCPUOP_down / VCPUOP_is_up of
 * xen/include/public/vcpu.h, and the _VPF_down pause flag. A domain is built with all the vCPUs
 * it may ever have (max_vcpus, xl.cfg `maxvcpus`); those not up sit in the hypervisor, offline,
 * holding no pCPU and earning no credit, until the guest brings them up. The guest decides, not
 * the toolstack: xl vcpu-set only writes the guest's `cpu/N/availability` nodes, and the guest
 * kernel (Linux drivers/xen/cpu_hotplug.c; here shared/kernel/smp.ts) calls these hypercalls.
 *
 * What vcpu.h promises, and how ringvisor keeps it: VCPUOP_down on *another* vCPU is asynchronous
 * (it "may return before the VCPU stops running"): the target is told through a request bit and
 * goes offline at its next preemption point (../schedule.ts waitWhileDown), wherever it was, as
 * Xen's vcpu_sleep_nosync stops it wherever it was. On the caller itself it is synchronous: the
 * call returns only when someone has brought the vCPU up again, and the vCPU carries on from
 * there (Linux's xen_pv_play_dead continues into cpu_bringup after it). The last vCPU up going
 * down powers the domain off, as Xen's do_vcpu_op does.
 *
 * Simplification: VCPUOP_initialise is folded into the build. A ringvisor vCPU has no registers
 * to load; its first instruction is its kernel image's `secondary` entry (Linux's
 * cpu_bringup_and_idle), so every vCPU is "initialised" from the start and VCPUOP_up is enough.
 * The builder brings up the first `vcpus` of them itself (Linux would boot every possible CPU and
 * then take down the ones marked offline; the state reached is the same, without the detour).
 */
import { XEN_ENOENT } from '../shared/public/xen.ts';
import type { Caller } from './caller.ts';
import { vcpu_kick } from './event-channel.ts';
import { schedTables, U, unitOf } from './sched/tables.ts';
import { D, V, VREQ_CHECK, type HypervisorState } from './state.ts';

/** What VCPUOP_down asks of its caller's thread beyond the flag (schedule.ts acts on it). */
export type VcpuDownResult = number | 'last-vcpu';

function exists(hv: HypervisorState, domid: number, vcpuid: number): boolean {
  return Number.isInteger(vcpuid) && vcpuid >= 0 && vcpuid < Atomics.load(hv.domains, domid * D.WORDS + D.NR_VCPUS);
}

/** VCPUOP_is_up: 1 if up, 0 if down, -ENOENT for a vCPU the domain does not have. */
export function vcpu_op_is_up(c: Caller, vcpuid: number): number {
  if (!exists(c.hv, c.domid, vcpuid)) return -XEN_ENOENT;
  return Atomics.load(c.hv.vcpus, c.hv.vcpu(c.domid, vcpuid, V.DOWN)) === 0 ? 1 : 0;
}

/**
 * VCPUOP_up: clear _VPF_down and wake the vCPU (its thread waits on that word); it becomes
 * runnable and competes for a pCPU like any other. Up already: nothing to do.
 */
export function vcpu_op_up(c: Caller, vcpuid: number): number {
  const hv = c.hv;
  if (!exists(hv, c.domid, vcpuid)) return -XEN_ENOENT;
  const word = hv.vcpu(c.domid, vcpuid, V.DOWN);
  if (Atomics.compareExchange(hv.vcpus, word, 1, 0) !== 1) return 0;
  Atomics.add(hv.domains, c.domid * D.WORDS + D.ONLINE_VCPUS, 1);
  Atomics.or(hv.vcpus, hv.vcpu(c.domid, vcpuid, V.REQUEST), VREQ_CHECK);
  Atomics.notify(hv.vcpus, word);
  return 0;
}

/**
 * VCPUOP_down: set _VPF_down and tell the vCPU, which stops at its next preemption point (at
 * once, if it is the caller: see the header). 'last-vcpu': no other vCPU is up, so the domain
 * must power off instead (the caller's thread does that; nothing was changed here).
 */
export function vcpu_op_down(c: Caller, vcpuid: number): VcpuDownResult {
  const hv = c.hv;
  if (!exists(hv, c.domid, vcpuid)) return -XEN_ENOENT;
  const word = hv.vcpu(c.domid, vcpuid, V.DOWN);
  if (Atomics.load(hv.vcpus, word) !== 0) return 0;
  const online = c.domid * D.WORDS + D.ONLINE_VCPUS;
  // Xen's check: is any *other* vCPU up? A CAS on the count keeps two vCPUs downing each other
  // at once from both succeeding and leaving none up.
  for (;;) {
    const n = Atomics.load(hv.domains, online);
    if (n <= 1) return 'last-vcpu';
    if (Atomics.compareExchange(hv.domains, online, n, n - 1) === n) break;
  }
  if (Atomics.compareExchange(hv.vcpus, word, 0, 1) !== 0) {
    Atomics.add(hv.domains, online, 1); // someone else took it down first
    return 0;
  }
  Atomics.or(hv.vcpus, hv.vcpu(c.domid, vcpuid, V.REQUEST), VREQ_CHECK);
  vcpu_kick(hv, c.domid, vcpuid); // one asleep in SCHEDOP_block wakes to its preemption point
  const t = schedTables(hv.buffers.sched);
  Atomics.notify(t.i32, t.u(unitOf(c.domid, vcpuid), U.SLOT)); // and one queued for a pCPU leaves the queue
  return 0;
}
