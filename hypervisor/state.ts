/*
 * The hypervisor's state, all of it in SharedArrayBuffers so that a hypercall can run on
 * whichever thread made it: machine memory, the frame table, struct domain and struct vcpu,
 * each domain's P2M, event-channel table, active grant table and maptrack.
 *
 * Xen: the globals and per-domain structures of xen/common (struct domain, struct vcpu,
 * struct page_info, d->evtchn, d->grant_table->active, maptrack). Xen keeps them in its own
 * heap and reaches them by pointer; ringvisor lays each one out as a fixed-size table indexed by
 * domain id, declared here once, so every thread builds the same views at start.
 *
 * Machine memory begins with the Xen heap: for each domain slot, one shared_info frame and
 * GRANT_FRAMES grant-table frames, which guests map into their physmap as Xen's are mapped.
 * The frames after it are what the frame allocator hands out as guest RAM.
 */
import { PAGE_SIZE, PAGE_WORDS } from '../shared/public/xen.ts';
import { GRANT_ENTRIES_PER_PAGE } from '../shared/public/grant_table.ts';
import { NR_EVTCHN_PORTS } from '../shared/public/event_channel.ts';
import { allocateSchedBuffer } from './sched/tables.ts';
import { claimTraceBank, traceBuffer } from './trace.ts';
import { allocateMmBuffer } from './mm/mm-state.ts';

/* Limits, chosen once (Xen's equivalents are boot or domain-creation parameters). */
export const MAX_DOMAINS = 64;             // domain ids 0..63
export const MAX_VCPUS = 8;                // per domain
/*
 * Each domain's P2M is a fixed window of MAX_GUEST_PAGES entries: 4 GiB of guest-physical space,
 * RAM at the bottom, the kernel's holes for foreign mappings above it (shared/kernel/pages.ts).
 * The P2M table is one SharedArrayBuffer for all domains (1 GiB of virtual space); the kernel
 * commits its pages only when an entry is written, so a window costs what the domain maps, not
 * its reach. The host's RAM is capped at MAX_HOST_MEMORY_MIB so that every guest the host can
 * hold, with its holes, fits its window: no guest is refused for its size, only for what is free.
 */
export const MAX_GUEST_PAGES = 1 << 20;
/** Largest `ringvisor host --memory`: 3 GiB of RAM leaves 1 GiB of each window for holes. */
export const MAX_HOST_MEMORY_MIB = 3 * 1024;
export const GRANT_FRAMES = 16;            // Xen's default max is 64; 16 frames = 8192 refs
export const NR_GRANT_ENTRIES = GRANT_FRAMES * GRANT_ENTRIES_PER_PAGE;
export const MAPTRACK_ENTRIES = 8192;      // grant mappings one domain may hold at once
export const XENHEAP_FRAMES_PER_DOMAIN = 1 + GRANT_FRAMES;
export const XENHEAP_FRAMES = MAX_DOMAINS * XENHEAP_FRAMES_PER_DOMAIN;

/* struct domain: one row of Int32 words per domain id. */
export const D = {
  STATE: 0,            // DOMSTATE_*
  GENERATION: 1,       // bumped at every creation, so a stale id can be told apart
  FLAGS: 2,            // DOMF_*
  NR_VCPUS: 3,
  MAX_PAGES: 4,
  TOT_PAGES: 5,        // RAM frames it owns
  SHUTDOWN_REASON: 6,  // SHUTDOWN_* or -1
  PAUSE_COUNT: 7,      // >0: vCPUs stop at their next preemption point (they wait on this word)
  EVENT_LOCK: 8,       // d->event_lock: the port table
  MAPTRACK_LOCK: 9,    // the maptrack free list
  MAPTRACK_FREE: 10,   // head of the maptrack free list (handle+1; 0 = empty)
  MAPTRACK_USED: 11,   // handles in use
  PINNED: 12,          // active grant entries of this domain pinned by someone (map or copy)
  TEARDOWN_DONE: 13,   // 1 once destroy has released everything it can; the slot frees when PINNED is 0
  ONLINE_VCPUS: 14,    // vCPUs up: not down (VCPUOP_down, or never brought up) and not halted (hlt with interrupts off)
  RESUME_GFN: 15,      // the saved vCPU context: the gfn SCHEDOP_shutdown(suspend) named (+1; 0 = none)
  WORDS: 16,
} as const;
export const DOMSTATE_FREE = 0;
export const DOMSTATE_CREATING = 1;
export const DOMSTATE_RUNNING = 2;   // running or paused: pause is a count, not a state
export const DOMSTATE_SHUTDOWN = 3;  // stopped by SCHEDOP_shutdown or a crash, awaiting the toolstack
export const DOMSTATE_DYING = 4;     // being torn down
export const DOMF_PRIVILEGED = 1;    // is_control_domain
export const DOMF_INITDOMAIN = 2;    // Dom0

/* struct vcpu: Int32 words, plus Float64 time accounting (runstate, as vcpu_runstate_info). */
export const V = {
  RUNSTATE: 0,   // RUNSTATE_*
  REQUEST: 1,    // VREQ_* bits the control thread sets; checked at every preemption point
  ALIVE: 2,      // 1 while the thread runs
  DOWN: 3,       // _VPF_down: 1 while the vCPU is down (not brought up, or VCPUOP_down); it waits on this word (sched/vcpu-op.ts)
  WORDS: 4,
} as const;
export const RUNSTATE_running = 0;
export const RUNSTATE_runnable = 1;
export const RUNSTATE_blocked = 2;
export const RUNSTATE_offline = 3;
export const VREQ_CHECK = 1;  // look at the domain's pause count
export const VREQ_STOP = 2;   // leave: the domain is shutting down or being destroyed
export const VREQ_RESCHED = 4; // the scheduler wants this slot back: run csched_schedule (sched/credit.ts)
export const VREQ_SLOT = 8;    // this vCPU holds no pCPU slot: get one before running guest code
/* Float64 per vCPU: time spent in each runstate (ms) and when the current one began. */
export const VT = { RUNNING: 0, RUNNABLE: 1, BLOCKED: 2, OFFLINE: 3, SINCE: 4, WORDS: 8 } as const;

/* struct page_info: per machine frame. */
export const F = {
  OWNER: 0,    // domid + 1; 0 = free; XEN_OWNER = the Xen heap
  REF: 1,      // foreign mappings (grant maps) currently holding the frame
  ORPHAN: 2,   // 1: the owner died while mapped; the last unmap frees the frame
  PIN: 3,      // who set its owner's P2M_PINNED: PIN_BY_FOREIGN (undone at the last unmap) or PIN_HELD (kept); mm/fault.ts
  GFN: 4,      // the owner's gfn + 1, written by a foreign mapping (Xen's M2P entry), so its unmap can find the entry
  MAPS: 5,     // foreign mappings ever made of it: the pager sees one that came and went while it copied the page out
  WORDS: 8,
} as const;
export const XEN_OWNER = 0x7ff2 + 1;

/* P2M entries (Uint32): the machine frame in the low bits, flags above. 0 = no translation. */
export const P2M_PRESENT = 0x8000_0000;
export const P2M_READONLY = 0x4000_0000;
export const P2M_FOREIGN = 0x2000_0000; // a grant mapping: the frame belongs to another domain
export const P2M_RESERVED = 0x1000_0000; // being filled by a grant map in progress (not yet present)
/*
 * Entry types of the memory-management features (hypervisor/mm/). Xen keeps a p2m_type_t per
 * entry; these are its types ringvisor needs, as bits between the flags and the frame number.
 * An entry that is not PRESENT but has POD or PAGED is RAM the guest owns that faults into the
 * gate's fault path (guest-memory.ts → mm/fault.ts) instead of faulting the guest.
 */
export const P2M_POD = 0x0800_0000;    // p2m_populate_on_demand: RAM not yet backed; first access gets a zeroed frame (mm/pod.ts)
export const P2M_SHARED = 0x0400_0000; // p2m_ram_shared: PRESENT|READONLY, the frame is dom_cow's; a write breaks the share (mm/sharing.ts)
export const P2M_PAGED = 0x0200_0000;  // p2m_ram_paged: the contents are in the domain's paging file at gfn × 4096 (mm/paging.ts)
/* The guest holds an unchecked view of the page (page()/pageWords()), or someone mapped or pinned it
 * by grant or foreign map: sharing and paging leave it alone, as Xen's nominate refuses a page
 * with extra references (-EBUSY). */
export const P2M_PINNED = 0x0100_0000;
export const P2M_MFN_MASK = 0x00ff_ffff; // 64 GiB of frames: far above MAX_HOST_MEMORY_MIB

/* Event-channel port (struct evtchn): Int32 words. */
export const E = { STATE: 0, REMOTE_DOM: 1, REMOTE_PORT: 2, NOTIFY_VCPU: 3, WORDS: 4 } as const;

/* Active grant entry (struct active_grant_entry): Int32 words, per granting domain and ref. */
export const A = {
  LOCK: 0,
  PIN: 1,     // host mappings: writable count in the low 16 bits, read-only count in the high 16
  DOMID: 2,   // the domain using it while pinned
  MFN: 3,     // the machine frame, resolved at first pin
  WORDS: 4,
} as const;
export const GNTPIN_hstw_inc = 1;
export const GNTPIN_hstr_inc = 1 << 16;
export const GNTPIN_hstw_mask = 0xffff;

/* Maptrack entry: Int32 words, per mapping domain and handle. */
export const M = {
  FLAGS: 0,     // 0 = free; else MT_INUSE | GNTMAP_readonly?
  DOM: 1,       // granting domain
  REF: 2,
  GFN: 3,       // where in the mapper's physmap (while in use); next free handle+1 (while free)
  WORDS: 4,
} as const;
export const MT_INUSE = 1 << 16;

/* Counters: per vCPU, Float64, written only by that vCPU's thread, summed by readers. */
export const COUNTERS = [
  'hypercalls', 'notifications', 'wakeups', 'blocks', 'grant_maps', 'grant_unmaps', 'grant_copies',
  'grant_copy_bytes', 'page_faults', 'traps',
  // The emulated-device path (ioreq.ts, p2m-foreign.ts): accesses forwarded to a device model,
  // and the device model's foreign mappings of guest frames (QEMU's mapcache fills).
  'ioreqs', 'foreign_maps', 'foreign_unmaps',
  // Writes a vCPU put on a buffered ioreq page instead of waiting for the device model.
  'bufioreqs',
] as const;
export type CounterName = (typeof COUNTERS)[number];
export const C: Readonly<Record<CounterName, number>> = Object.fromEntries(COUNTERS.map((n, i) => [n, i])) as never;
export const NR_COUNTERS = 16;

/*
 * ioreq servers (struct hvm_ioreq_server, d->ioreq_server.server[]) and the ISA IRQ lines an
 * emulated device raises (Xen's hvm_irq, reduced to "which event channel does IRQ n become").
 * One row of Int32 words per target domain; the row's LOCK guards all of it. See ioreq.ts.
 */
export const MAX_IOREQ_SERVERS = 4;  // Xen allows 8 per domain
export const MAX_IO_RANGES = 8;      // port or MMIO ranges one server claims
export const NR_ISA_IRQS = 16;
/* One ioreq server, at IO.SERVERS + s * SV.WORDS in its domain's row. */
export const SV = {
  STATE: 0,      // IOREQ_SERVER_*
  EMULATOR: 1,   // the device model's domain (the only one that may operate on the server)
  MFN: 2,        // the synchronous ioreq page: one struct ioreq per vCPU
  BUF_MFN: 3,    // the buffered ioreq page (0: the server has none)
  RANGES: 4,     // MAX_IO_RANGES × {type (XEN_DMOP_IO_RANGE_* + 1; 0 = free), first, last}
  VP_EPORT: 4 + MAX_IO_RANGES * 3, // MAX_VCPUS ports in the target, one per vCPU, bound by the emulator
  BUF_PORT: 4 + MAX_IO_RANGES * 3 + MAX_VCPUS,      // bufioreq_evtchn: the target's port for the buffered page
  BUF_WINDOW: 5 + MAX_IO_RANGES * 3 + MAX_VCPUS,    // the 1 MiB window all buffered zones lie in (+1; 0 = none yet)
  BUF_ZONES: 6 + MAX_IO_RANGES * 3 + MAX_VCPUS,     // MAX_BUF_ZONES × {first, last}; first = last = 0: free
  WORDS: 6 + MAX_IO_RANGES * 3 + MAX_VCPUS + 2 * 8,
} as const;
export const MAX_BUF_ZONES = 8;
export const IOREQ_SERVER_FREE = 0;
export const IOREQ_SERVER_DISABLED = 1;
export const IOREQ_SERVER_ENABLED = 2;
export const IO = {
  LOCK: 0,
  IRQ_LEVEL: 1,                 // bit n: ISA IRQ n asserted by the device model
  IRQ_PORT: 2,                  // NR_ISA_IRQS words: the emulator-side end of IRQ n's channel (0 = unbound)
  IRQ_DOM: 2 + NR_ISA_IRQS,     // NR_ISA_IRQS words: the domain that port lives in
  SERVERS: 2 + 2 * NR_ISA_IRQS,
  WORDS: 2 + 2 * NR_ISA_IRQS + MAX_IOREQ_SERVERS * SV.WORDS,
} as const;
/* Foreign mappings (XENMAPSPACE_gmfn_foreign, acquired resources): one bit per gfn of the mapper. */
export const FOREIGNMAP_WORDS = MAX_GUEST_PAGES / 32;
/*
 * The P2M generation (guest-memory.ts, "Taking a frame back"): one word per domain, bumped after
 * any of its P2M entries is removed or changed, so views checked against it go back through the
 * translate gate. Each word has a 64-byte line to itself: it is read once per request by every
 * vCPU of its domain and written at every unmap, and should not bounce other domains' lines.
 */
export const P2MGEN_STRIDE = 16;
/* Log-dirty (mm/log-dirty.ts): per domain a 16-word header, the dirty and writable-view bitmaps. */
export const LOGDIRTY_HEADER = 16;
export const LOGDIRTY_STRIDE = LOGDIRTY_HEADER + 2 * (MAX_GUEST_PAGES / 32);

/** The buffers that make up one host. Built by the control thread, passed to every vCPU thread. */
export interface HypervisorBuffers {
  nrFrames: number;
  machine: SharedArrayBuffer;
  frames: SharedArrayBuffer;      // page_info table
  allocator: SharedArrayBuffer;   // 16 header words + the clean and dirty free stacks (page-alloc.ts)
  domains: SharedArrayBuffer;
  vcpus: SharedArrayBuffer;
  vcpuTime: SharedArrayBuffer;
  counters: SharedArrayBuffer;
  p2m: SharedArrayBuffer;
  evtchn: SharedArrayBuffer;
  active: SharedArrayBuffer;
  maptrack: SharedArrayBuffer;
  ioreq: SharedArrayBuffer;       // per-domain ioreq servers and ISA IRQ routes (IO, SV below)
  foreignmap: SharedArrayBuffer;  // per-domain bitmap: which gfns hold a foreign (non-grant) mapping
  p2mgen: SharedArrayBuffer;      // per-domain P2M generation (P2MGEN_STRIDE words each)
  sched: SharedArrayBuffer;       // the credit scheduler's tables (sched/tables.ts)
  trace: SharedArrayBuffer;       // the per-vCPU trace buffers (trace.ts; one per process)
  traceBank: number;              // this host's bank of slots in it (trace.ts)
  mm: SharedArrayBuffer;          // PoD, sharing and paging counters and state (mm/mm-state.ts)
  logdirty: SharedArrayBuffer;    // per-domain log-dirty state and bitmaps (mm/log-dirty.ts)
  pci: SharedArrayBuffer;         // assigned devices, IOMMU faults, storage namespaces (passthrough/)
}

/** Words of hv.pci: a few per device, then the storage controller's namespace table (passthrough/). */
export const PCI_STATE_WORDS = 2048;

export function allocateBuffers(memoryMiB: number): HypervisorBuffers {
  if (!Number.isInteger(memoryMiB) || memoryMiB < 1 || memoryMiB > MAX_HOST_MEMORY_MIB) {
    throw new RangeError(`host memory ${memoryMiB} MiB (expected 1..${MAX_HOST_MEMORY_MIB} MiB: every guest's RAM must fit its P2M window)`);
  }
  const nrFrames = XENHEAP_FRAMES + Math.floor((memoryMiB * 1024 * 1024) / PAGE_SIZE);
  const i32 = (n: number) => new SharedArrayBuffer(n * 4);
  return {
    nrFrames,
    machine: new SharedArrayBuffer(nrFrames * PAGE_SIZE),
    frames: i32(nrFrames * F.WORDS),
    allocator: i32(16 + nrFrames),
    domains: i32(MAX_DOMAINS * D.WORDS),
    vcpus: i32(MAX_DOMAINS * MAX_VCPUS * V.WORDS),
    vcpuTime: new SharedArrayBuffer(MAX_DOMAINS * MAX_VCPUS * VT.WORDS * 8),
    counters: new SharedArrayBuffer(MAX_DOMAINS * MAX_VCPUS * NR_COUNTERS * 8),
    p2m: i32(MAX_DOMAINS * MAX_GUEST_PAGES),
    evtchn: i32(MAX_DOMAINS * NR_EVTCHN_PORTS * E.WORDS),
    active: i32(MAX_DOMAINS * NR_GRANT_ENTRIES * A.WORDS),
    maptrack: i32(MAX_DOMAINS * MAPTRACK_ENTRIES * M.WORDS),
    ioreq: i32(MAX_DOMAINS * IO.WORDS),
    foreignmap: i32(MAX_DOMAINS * FOREIGNMAP_WORDS),
    trace: traceBuffer(MAX_DOMAINS * MAX_VCPUS),
    traceBank: claimTraceBank(),
    p2mgen: i32(MAX_DOMAINS * P2MGEN_STRIDE),
    sched: allocateSchedBuffer(),
    mm: allocateMmBuffer(),
    logdirty: i32(MAX_DOMAINS * LOGDIRTY_STRIDE),
    pci: i32(PCI_STATE_WORDS),
  };
}

/** Typed views over the buffers: one set per thread, built once. */
export class HypervisorState {
  readonly nrFrames: number;
  readonly mem8: Uint8Array;
  readonly mem32: Int32Array;
  readonly frames: Int32Array;
  readonly allocator: Int32Array;
  readonly domains: Int32Array;
  readonly vcpus: Int32Array;
  readonly vcpuTime: Float64Array;
  readonly counters: Float64Array;
  readonly p2m: Uint32Array;
  readonly evtchn: Int32Array;
  readonly active: Int32Array;
  readonly maptrack: Int32Array;
  readonly ioreq: Int32Array;
  readonly foreignmap: Int32Array;
  readonly p2mgen: Int32Array;
  readonly mm: Int32Array;
  readonly logdirty: Int32Array;
  readonly pci: Int32Array;
  /** Per domain: shared_info as words, and the grant table as words; fixed Xen-heap frames. */
  readonly sharedInfo: Int32Array[] = [];
  readonly grantTable: Uint32Array[] = [];

  constructor(readonly buffers: HypervisorBuffers) {
    this.nrFrames = buffers.nrFrames;
    this.mem8 = new Uint8Array(buffers.machine);
    this.mem32 = new Int32Array(buffers.machine);
    this.frames = new Int32Array(buffers.frames);
    this.allocator = new Int32Array(buffers.allocator);
    this.domains = new Int32Array(buffers.domains);
    this.vcpus = new Int32Array(buffers.vcpus);
    this.vcpuTime = new Float64Array(buffers.vcpuTime);
    this.counters = new Float64Array(buffers.counters);
    this.p2m = new Uint32Array(buffers.p2m);
    this.evtchn = new Int32Array(buffers.evtchn);
    this.active = new Int32Array(buffers.active);
    this.maptrack = new Int32Array(buffers.maptrack);
    this.ioreq = new Int32Array(buffers.ioreq);
    this.foreignmap = new Int32Array(buffers.foreignmap);
    this.p2mgen = new Int32Array(buffers.p2mgen);
    this.mm = new Int32Array(buffers.mm);
    this.logdirty = new Int32Array(buffers.logdirty);
    this.pci = new Int32Array(buffers.pci);
    for (let d = 0; d < MAX_DOMAINS; d++) {
      this.sharedInfo.push(new Int32Array(buffers.machine, sharedInfoMfn(d) * PAGE_SIZE, PAGE_WORDS));
      this.grantTable.push(new Uint32Array(buffers.machine, grantFrameMfn(d, 0) * PAGE_SIZE, GRANT_FRAMES * PAGE_WORDS));
    }
  }

  /** Index of word `w` of domain `d`'s struct domain. */
  dom(d: number, w: number): number {
    return d * D.WORDS + w;
  }
  vcpu(d: number, v: number, w: number): number {
    return (d * MAX_VCPUS + v) * V.WORDS + w;
  }
  /** The domain exists and is not being torn down (it may be still building, or shut down). */
  isAlive(d: number): boolean {
    if (!(d >= 0 && d < MAX_DOMAINS)) return false;
    const s = Atomics.load(this.domains, d * D.WORDS + D.STATE);
    return s === DOMSTATE_CREATING || s === DOMSTATE_RUNNING || s === DOMSTATE_SHUTDOWN;
  }
  /** Sum of a counter over a domain's vCPUs. */
  counter(d: number, name: CounterName): number {
    let sum = 0;
    for (let v = 0; v < MAX_VCPUS; v++) sum += this.counters[(d * MAX_VCPUS + v) * NR_COUNTERS + C[name]];
    return sum;
  }
}

export function sharedInfoMfn(domid: number): number {
  return domid * XENHEAP_FRAMES_PER_DOMAIN;
}
export function grantFrameMfn(domid: number, i: number): number {
  return domid * XENHEAP_FRAMES_PER_DOMAIN + 1 + i;
}
