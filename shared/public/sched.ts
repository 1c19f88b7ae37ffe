/*
 * The scheduler's control interface: what the toolstack may ask of the credit scheduler.
 *
 * Xen: xen/include/public/domctl.h and sysctl.h: XEN_DOMCTL_scheduler_op with
 * XEN_DOMCTL_SCHEDOP_{getinfo,putinfo} and struct xen_domctl_sched_credit {weight, cap};
 * XEN_SYSCTL_scheduler_op with struct xen_sysctl_credit_schedule {tslice_ms, ratelimit_us};
 * XEN_DOMCTL_{get,set}vcpuaffinity (cpumap_hard, cpumap_soft); XEN_DOMCTL_getvcpuinfo
 * (online, blocked, running, cpu_time, cpu). xl's sched-credit, vcpu-pin and vcpu-list use them.
 * ringvisor passes one tagged object per call through domctl_scheduler_op (control domain only).
 */

export type SchedOp =
  | { op: 'getinfo'; domid: number }
  | { op: 'putinfo'; domid: number; weight?: number; cap?: number }
  | { op: 'pool-getinfo' }
  | { op: 'pool-putinfo'; tslice_ms?: number; ratelimit_us?: number; boost?: boolean }
  | { op: 'getvcpuinfo'; domid: number }
  | { op: 'setvcpuaffinity'; domid: number; vcpu: number; hard: number[] | null; soft: number[] | null };

/** xen_domctl_sched_credit. */
export interface SchedCreditParams {
  weight: number;
  /** % of one pCPU; 0 = no cap. */
  cap: number;
}

/** xen_sysctl_credit_schedule, plus the pool's size. */
export interface SchedPool {
  /** pCPU slots; 0: no scheduler (the host OS decides). */
  pcpus: number;
  tslice_ms: number;
  ratelimit_us: number;
  /** BOOST on wake (always on in Xen; ringvisor can switch it off to measure what it buys). */
  boost: boolean;
}

/** One vCPU, as XEN_DOMCTL_getvcpuinfo and the affinity calls report it (xl vcpu-list's row). */
export interface VcpuInfo {
  domid: number;
  vcpu: number;
  /** The pCPU it runs on or last ran on; -1 if none yet. */
  cpu: number;
  state: 'running' | 'runnable' | 'blocked' | 'offline';
  running: boolean;
  time_ms: number;
  hard: number[];
  soft: number[];
  /** The credit scheduler's view: credit (10 per ms), priority, parked by its cap. */
  credit: number;
  pri: string;
  parked: boolean;
}

/** A pCPU slot for xl info: which vCPU holds it, and the fraction of time since boot it was busy. */
export interface PcpuLoad {
  cpu: number;
  curr: string;
  load: number;
}
