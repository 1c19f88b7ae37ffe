/*
 * The host's boot options: the machine's memory, its pCPUs, the hypervisor's waiting policy.
 *
 * Xen: the hypervisor's command line (docs/misc/xen-command-line.pandoc), read once at boot.
 * Here: the RAM the frame allocator hands out, the pCPUs the scheduler gets, how a trapped vCPU
 * waits, where paging files go, whether Dom0's vCPUs are pinned (dom0_vcpus_pin), when freed
 * frames are scrubbed (scrub).
 *
 * Apart from host.ts so a reader finds what can be set without reading the lifecycle.
 */
import { availableParallelism } from 'node:os';
import type { WaitPolicy } from '../shared/wait.ts';

export interface HostOptions {
  /** Where domains' paging files go (mm/paging.ts); default: a temporary directory removed at close. */
  pagingDir?: string;
  /** Guest RAM, in MiB, the frame allocator hands out. */
  memoryMiB?: number;
  /** Where hypervisor messages go (Xen's console); default: stderr. */
  log?: (line: string) => void;
  /**
   * The hypervisor's own waiting policy (shared/wait.ts): how a vCPU whose access trapped waits
   * for its device model (hypervisor/ioreq-send.ts). A boot option, as Xen's own command line
   * holds its; the kernels' policy is on their command lines. Default irq.
   */
  wait?: WaitPolicy;
  /**
   * pCPU slots: at most this many vCPUs run guest code at once, as the credit scheduler decides
   * (sched/credit.ts). Default: this machine's cores (at most 31). 0: no scheduler, the host OS
   * decides which vCPU thread runs.
   */
  pcpus?: number;
  /**
   * The guest kernel (a module URL) to keep a spare vCPU thread loaded for from the start
   * (./vcpu-spares.ts), so that even the first DomU, or the first guest migrated in, finds one.
   * Without it, the host learns the kernel from its first DomU.
   */
  spareKernel?: string;
  /**
   * Xen's `dom0_vcpus_pin`: Dom0's vCPU v gets the hard affinity of pCPU v (modulo the slots), and
   * its thread runs only on the host core behind that slot (sched/thread-affinity.ts). Default:
   * off, or on if $RINGVISOR_DOM0_VCPUS_PIN is 1 (as `ringvisor host` has no flag for it).
   */
  dom0_vcpus_pin?: boolean;
  /**
   * When freed frames are zeroed (./page-alloc.ts, ./mm/scrub.ts): 'idle' (Xen 4.10+) marks them
   * need-scrub and an idle-priority thread zeroes them, or an allocation does if it gets there
   * first; 'free' zeroes each one in free_domheap_page, as Xen 4.9 did for a dying domain.
   * Default 'idle', or $RINGVISOR_SCRUB (idle|free), so that an A/B is one variable.
   */
  scrub?: 'idle' | 'free';
}

/** The default of `scrub`: $RINGVISOR_SCRUB=free scrubs at free, anything else at idle. */
export function defaultScrub(): 'idle' | 'free' {
  return process.env.RINGVISOR_SCRUB === 'free' ? 'free' : 'idle';
}

/** The default of dom0_vcpus_pin: $RINGVISOR_DOM0_VCPUS_PIN=1 turns it on. */
export function defaultDom0VcpusPin(): boolean {
  return process.env.RINGVISOR_DOM0_VCPUS_PIN === '1';
}

/** Dom0's config under dom0_vcpus_pin: vCPU v pinned to slot v mod `slots` (no slots: unchanged). */
export function dom0PinnedConfig<C extends { vcpu_hard_affinity?: number[][] }>(config: C, maxVcpus: number, slots: number): C {
  if (slots === 0) return config;
  return { ...config, vcpu_hard_affinity: Array.from({ length: maxVcpus }, (_, v) => [v % slots]) };
}

/** The default number of pCPU slots: $RINGVISOR_PCPUS if set (0 = no scheduler), else the machine's cores. */
export function defaultPcpus(): number {
  const env = process.env.RINGVISOR_PCPUS;
  if (env !== undefined && /^\d+$/.test(env)) return Math.min(31, Number(env));
  return Math.min(31, availableParallelism());
}
