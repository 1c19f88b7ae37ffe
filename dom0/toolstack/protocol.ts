/*
 * The toolstack's control socket: how the `ringvisor` command line reaches the toolstack daemon
 * in Dom0.
 *
 * Xen: none. xl links libxl and runs in Dom0 itself; ringvisor's Dom0 is a thread of the host
 * process, so the command line is another process that talks to libxl's stand-in (dom0/toolstack/) over
 * a Unix socket in the host's run directory, as xenstore-* tools talk to xenstored's socket. It
 * carries the control plane only: requests, replies and console bytes, never guest I/O.
 *
 * Framing: each message is a 4-byte big-endian length, then that many bytes of MessagePack
 * (msgpackr, plain maps: no records extension, so any MessagePack reader could follow). A
 * message longer than MAX_FRAME closes the connection. Requests carry an id; the reply carries
 * it back. `console` turns the connection into a console session: the daemon then sends
 * `output` and finally `closed` events, the client sends `input`, and closing the socket
 * detaches (xl console's Ctrl-]).
 */
import { Packr, Unpackr } from 'msgpackr';
import type { DomainInfo } from '../../shared/public/hypercall.ts';
import type { DeviceRow } from '../../backends/lib/devstats.ts';
import type { PcpuLoad, SchedCreditParams } from '../../shared/public/sched.ts';

/** <runDir>/xl/socket, beside xenstored's <runDir>/xenstored/socket. */
export function xlSocketPath(runDir: string): string {
  return `${runDir}/xl/socket`;
}

/* The memory policy's settings and state (./mem-policy.ts does the work). */
export type MemState = 'off' | 'high' | 'overcommitted' | 'soft' | 'hard';

export interface MemPolicySettings {
  run: boolean;
  /** How often the policy looks (ms). */
  interval_ms: number;
  /** Free frames below which targets are lowered (ESX soft), and the pager's mark (ESX hard). */
  soft_pages: number;
  hard_pages: number;
  /** Untouched pages each guest keeps when its target is lowered (default 8 MiB: room for a guest still booting to grow). */
  headroom_pages: number;
}

export interface MemPolicyStatus {
  settings: MemPolicySettings;
  state: MemState;
  /** Each guest's target as the policy last set or left it in the soft state (KiB), by domid. */
  targets: Record<number, number>;
  /** What the policy did, oldest first (the last 32), and how many events in all. */
  events: string[];
  eventCount: number;
}


export const MAX_FRAME = 1 << 20;

export type XlVerb =
  | { verb: 'create'; path: string; paused?: boolean }
  | { verb: 'list' }
  | { verb: 'info' }
  | { verb: 'destroy'; domain: string }
  | { verb: 'shutdown'; domain: string; kind: 'poweroff' | 'reboot'; force?: boolean }
  | { verb: 'wait'; domain: string }
  | { verb: 'pause'; domain: string }
  | { verb: 'unpause'; domain: string }
  | { verb: 'block-list'; domain: string }
  | { verb: 'pci-list'; domain: string }
  | { verb: 'pci-assignable-list' }
  | { verb: 'block-backend-kill'; domain: string; vdev: string; restart: boolean; afterRequests?: number }
  | { verb: 'block-backend-start'; domain: string; vdev: string }
  | { verb: 'network-list'; domain: string }
  | { verb: 'network-attach'; domain: string; spec: string[] }
  | { verb: 'network-detach'; domain: string; device: string }
  | { verb: 'capture'; port: string; file: string; count?: number }
  | { verb: 'capture-stop'; port: string }
  | { verb: 'console'; domain: string }
  | { verb: 'top' }
  | { verb: 'trace'; mask: number; seconds: number; path: string }
  | { verb: 'console-history'; domain: string; max: number }
  | { verb: 'destroy-all' }
  | { verb: 'mem-set'; domain: string; size: string }
  | { verb: 'mem-max'; domain: string; size: string }
  | { verb: 'mem-sharing'; run?: boolean; pages_to_scan?: number; sleep_millisecs?: number }
  | { verb: 'mem-paging'; run?: boolean; low_water_pages?: number }
  | { verb: 'mem-policy'; run?: boolean; interval_ms?: number; soft_pages?: number; hard_pages?: number; headroom_pages?: number }
  | { verb: 'save'; domain: string; file: string }
  | { verb: 'restore'; file: string; paused?: boolean }
  | { verb: 'migrate-receive'; port?: number; address?: string; paused?: boolean }
  | { verb: 'migrate'; domain: string; host: string; port: number; maxIterations?: number; dirtyThreshold?: number; live?: boolean; carryHot?: boolean; giveWay?: boolean }
  | { verb: 'sched'; op: SchedRequest };

/** `sched-credit`, `vcpu-list`, `vcpu-pin` (xl's sched and vCPU verbs), answered by ./sched.ts. */
export type SchedRequest =
  | { op: 'credit'; domain?: string; weight?: number; cap?: number }
  | { op: 'pool'; tslice_ms?: number; ratelimit_us?: number; boost?: boolean }
  | { op: 'vcpu-list'; domains: string[] }
  | { op: 'vcpu-pin'; domain: string; vcpu: string; hard: string; soft?: string }
  | { op: 'vcpu-set'; domain: string; count: string; ignoreHost?: boolean };

export type XlRequest = XlVerb & { id: number };

/** What failed: a config (file:line, nothing started) or anything else. Both exit 1 in the CLI. */
export type XlErrorKind = 'config' | 'domain' | 'failed';

export type XlMessage =
  | { id: number; ok: true; value: unknown }
  | { id: number; ok: false; kind: XlErrorKind; error: string }
  | { id: number; event: 'output'; data: Uint8Array }
  | { id: number; event: 'closed'; why: string };

/** Console keystrokes, on a connection in a console session. */
export interface XlInput { input: Uint8Array }

export interface CreateResult {
  domid: number;
  name: string;
  warnings: string[];
  /** Images create_images made for this start (the lecture's "files created at start-up"). */
  imagesCreated: string[];
  consoleLog: string;
}

export interface ListedDomain {
  name: string;
  domid: number;
  memMiB: number;
  /** vCPUs online (xl list's VCPUs), and how many it may have (maxvcpus). */
  vcpus: number;
  maxVcpus?: number;
  running: boolean;
  blocked: boolean;
  paused: boolean;
  shutdown: boolean;
  shutdownReason: string | null;
  dying: boolean;
  cpuSeconds: number;
}

export interface HostInfo {
  nr_cpus: number;
  total_memory: number;  // MiB
  free_memory: number;   // MiB
  nr_domains: number;
  max_domains: number;
  xen_version: string;
  xen_caps: string;
  run_dir: string;
  xenstored_socket: string;
  xl_socket: string;
  /** The scheduler's pCPU slots and their load (empty: no scheduler). */
  pcpus: PcpuLoad[];
  /** Page sharing, paging and PoD counters (hypervisor/mm/counters.ts). */
  mm?: Record<string, number>;
  /** The memory policy's state and what it did (./mem-policy.ts). */
  mem_policy?: MemPolicyStatus;
}

/**
 * One sample for `ringvisor top` and the web view: every domain as getdomaininfo reports it, the
 * host's memory, and every device Dom0 serves with its counters and rings (backends/lib/devstats.ts).
 * The tools turn two samples into rates.
 */
export interface TopSample {
  /** Host clock, ms (performance.timeOrigin + now): the interval between two samples. */
  time: number;
  nr_cpus: number;
  total_pages: number;
  free_pages: number;
  domains: DomainInfo[];
  devices: DeviceRow[];
  /**
   * Every numeric figure of XEN_SYSCTL_physinfo, by its name (total_pages, free_pages, and any
   * the hypervisor adds: the views show what is there, e.g. every `*_pages` in the memory picture).
   */
  host: Record<string, number>;
  /** The scheduler's pCPU slots: which vCPU holds each, and its load (empty: no scheduler). */
  pcpus: PcpuLoad[];
  /** Each domain's credit-scheduler parameters (XEN_DOMCTL_SCHEDOP_getinfo), by domid. */
  sched: Record<number, SchedCreditParams>;
}

export interface BlockListRow {
  vdev: number;
  backendId: number;
  handle: number;
  state: number;
  evtch: number;
  ringRef: number;
  backendPath: string;
}

const packr = new Packr({ useRecords: false });

/** One framed message. */
export function encodeFrame(m: XlRequest | XlMessage | XlInput): Buffer {
  const body = packr.pack(m);
  const frame = Buffer.allocUnsafe(4 + body.length);
  frame.writeUInt32BE(body.length, 0);
  body.copy(frame, 4);
  return frame;
}

/** Reassembles frames from stream chunks. feed() returns false once the peer broke the framing. */
export class FrameReader {
  private readonly unpackr = new Unpackr({ useRecords: false });
  private pending: Buffer = Buffer.alloc(0);

  constructor(private readonly onMessage: (m: unknown) => void) {}

  feed(chunk: Buffer): boolean {
    this.pending = this.pending.length === 0 ? chunk : Buffer.concat([this.pending, chunk]);
    while (this.pending.length >= 4) {
      const len = this.pending.readUInt32BE(0);
      if (len > MAX_FRAME) return false;
      if (this.pending.length < 4 + len) break;
      const body = this.pending.subarray(4, 4 + len);
      this.pending = this.pending.subarray(4 + len);
      let m: unknown;
      try {
        m = this.unpackr.unpack(body);
      } catch {
        return false;
      }
      this.onMessage(m);
    }
    return true;
  }
}
