/*
 * Trace records: the event ids and the binary layout of the per-vCPU trace buffers.
 *
 * Xen: xen/include/public/trace.h (event id = class | subclass | number, struct t_buf with
 * cons/prod counted modulo twice the buffer, struct t_rec) and xen/common/trace.c (__trace_var:
 * a record written by the CPU where the event happens, into that CPU's buffer, with no lock).
 *
 * ringvisor's "CPU" is a vCPU thread, so there is one buffer per vCPU slot (domid * MAX_VCPUS +
 * vcpu), written only by that thread, drained by Dom0's tracer (the sysctl) or the host, and one
 * more for the control thread. A process may run several hosts (a migration's two), each with
 * its own domain ids, so the slots come in banks, one per host: a host's slot is its bank's
 * first slot + its own number, and a record names its bank. A record
 * is fixed: 8 words = 32 bytes: the event id, the bank, domain and vCPU, a Float64 timestamp (ms, on
 * the host's clock: performance.timeOrigin + now) and four u32 data words. Xen's t_rec varies
 * in length (extra_u32 count); a fixed record keeps the writer to a handful of stores.
 *
 * Whether anything is written is decided by one word, TB_MASK, the enabled classes (Xen's
 * tb_event_mask): every trace point first ANDs its class with it, so tracing off costs a load
 * and a branch.
 */

/* Classes (trace.h's TRC_* values). */
export const TRC_GEN = 0x0001_f000;
export const TRC_SCHED = 0x0002_f000;   // left for the scheduler: runstate changes, switches, wakes
export const TRC_HVM = 0x0008_f000;     // traps and ioreq round trips
export const TRC_MEM = 0x0010_f000;     // grant map/unmap/copy
export const TRC_PV = 0x0020_f000;      // hypercalls, event-channel sends and deliveries
export const TRC_GUEST = 0x0800_f000;   // written by guest kernels through HYPERVISOR_xentrace
export const TRC_ALL = 0x0fff_f000;
export const TRC_CLS_MASK = 0x0fff_0000;

export const TRACE_CLASSES: Record<string, number> = {
  gen: TRC_GEN, sched: TRC_SCHED, hvm: TRC_HVM, mem: TRC_MEM, pv: TRC_PV, guest: TRC_GUEST, all: TRC_ALL,
};

/* The low 12 bits: bit 11 ends a slice, bit 10 begins one, neither is an instant. */
export const TRC_BEGIN = 0x400;
export const TRC_END = 0x800;
export const TRC_NUM_MASK = 0x3ff;

/* Events the hypervisor writes. */
export const TRC_LOST_RECORDS = (TRC_GEN & TRC_CLS_MASK) | 0x1001;          // d0 = records lost
export const TRC_PV_HYPERCALL = (TRC_PV & TRC_CLS_MASK) | 0x1000 | 1;      // d0 = hypercall (HC_*)
export const TRC_PV_EVTCHN_SEND = (TRC_PV & TRC_CLS_MASK) | 0x2000 | 1;    // d0 = local port, d1 = remote dom, d2 = remote port
export const TRC_MEM_GRANT_MAP = (TRC_MEM & TRC_CLS_MASK) | 0x1000 | 1;    // d0 = granting dom, d1 = ref
export const TRC_MEM_GRANT_UNMAP = (TRC_MEM & TRC_CLS_MASK) | 0x1000 | 2;  // d0 = handle
export const TRC_MEM_GRANT_COPY = (TRC_MEM & TRC_CLS_MASK) | 0x1000 | 3;   // d0 = ops
export const TRC_HVM_TRAP = (TRC_HVM & TRC_CLS_MASK) | 0x1000 | 1;         // d0 = port or address, d1 = dir (1 write), d2 = size
export const TRC_HVM_IOREQ = (TRC_HVM & TRC_CLS_MASK) | 0x1000 | 2;        // guest side: d0 = addr, d1 = dir
export const TRC_HVM_IRQ = (TRC_HVM & TRC_CLS_MASK) | 0x1000 | 3;          // d0 = guest dom, d1 = isa irq, d2 = level
export const TRC_SCHED_SWITCH = (TRC_SCHED & TRC_CLS_MASK) | 0x8000 | 0x00a;
/*
 * The credit scheduler's own events (credit.c's TRC_CSCHED_*, in TRC_SCHED_CLASS = 0x00022000 with
 * the credit scheduler's id 0). TICKLE is credit.c's number 6 (the pCPU __runq_tickle asks to
 * reschedule). The tick and the accounting have no record in credit.c (Xen's tick is per pCPU and
 * silent; its ACCOUNT_START/STOP, numbers 2 and 3, mark one vCPU joining and leaving the active
 * list); ringvisor's control thread runs both for every slot at once, so each gets a slice of its
 * own, numbered past credit.c's last (11), to show what the control thread decides and when.
 */
export const TRC_SCHED_CLASS = (TRC_SCHED & TRC_CLS_MASK) | 0x2000;
export const TRC_CSCHED_TICKLE = TRC_SCHED_CLASS | 6;    // d0 = the slot asked to reschedule, d1 = the vCPU on it (domid << 8 | vcpu)
export const TRC_CSCHED_TICK = TRC_SCHED_CLASS | 12;     // B: d0 = slots; E: d0 = switches so far
export const TRC_CSCHED_ACCT = TRC_SCHED_CLASS | 13;     // B: d0 = slots; E: d0 = accountings so far, d1 = parks so far

/* Hypercall numbers in TRC_PV_HYPERCALL's d0 (xen.h __HYPERVISOR_*). */
export const HC_event_channel_op = 32;
export const HC_grant_table_op = 20;
export const HC_dm_op = 41;

/*
 * Events guest kernels write (HYPERVISOR_xentrace takes the low 16 bits; the hypervisor puts
 * them in TRC_GUEST). Subclasses: the generic ring, blkfront, blkback, the IDE driver, the IDE
 * device model, the disk file.
 */
export const TRC_GUEST_RING_PUSH = 0x1000 | 1;     // d0 = new prod, d1 = old, d2 = 1 at the backend
export const TRC_GUEST_RING_CONSUME = 0x1000 | 2;  // d0 = cons, d1 = 1 at the backend
export const TRC_GUEST_EVTCHN_UPCALL = 0x1000 | 3; // d0 = port whose handler runs (an event delivered)
export const TRC_GUEST_BLKFRONT_SUBMIT = 0x2000 | 1;   // d0 = devid, d1 = request id, d2 = op, d3 = sector
export const TRC_GUEST_BLKFRONT_COMPLETE = 0x2000 | 2; // d0 = devid, d1 = request id, d2 = status
export const TRC_GUEST_BLKBACK_REQUEST = 0x3000 | 1;   // d0 = frontend dom, d1 = devid, d2 = request id, d3 = sector
export const TRC_GUEST_DISK_IO = 0x3000 | 2;           // d0 = frontend dom, d1 = sector, d2 = sectors, d3 = 1 write
export const TRC_GUEST_IDE_COMMAND = 0x4000 | 1;       // d0 = ATA command, d1 = lba, d2 = sectors
export const TRC_GUEST_IDE_DONE = 0x4000 | 2;          // d0 = status
export const TRC_GUEST_DM_IOREQ = 0x5000 | 1;          // d0 = guest dom, d1 = addr, d2 = dir
/*
 * A resume and its reconnection (the path from a migrated guest's unpause to its first answer,
 * README "Save, restore and live migration"; tools/trace/resume-timeline.ts reads them): xenbus
 * and the guest's xenstore requests, then the network.
 */
export const TRC_GUEST_RESUME_BOOT = 0x6000 | 1;       // d0 = resume gfn: the kernel's first step in resume mode
export const TRC_GUEST_RESUME_RECORD = 0x6000 | 2;     // d0 = resume gfn: the record read, its pages taken back
export const TRC_GUEST_XS_REQUEST = 0x6000 | 3;        // d0 = XS_* type, d1 = req_id, d2 = 1 if it began a round trip (none in flight)
export const TRC_GUEST_XS_REPLY = 0x6000 | 4;          // d0 = XS_* type (XS_ERROR for an error), d1 = req_id
export const TRC_GUEST_XS_WATCH_EVENT = 0x6000 | 5;    // a watch event arrived
export const TRC_GUEST_XENBUS_STATE = 0x6000 | 6;      // d0 = other end's domain, d1 = device id, d2 = state written, d3 = 1 backend
export const TRC_GUEST_XENSTORED_REQUEST = 0x6000 | 7; // xenstored took a request: d0 = domain (or 0x7fff: a socket or Dom0), d1 = XS_* type, d2 = req_id
export const TRC_GUEST_NETBACK_CONNECT = 0x7000 | 1;   // B/E: d0 = frontend domain, d1 = device id (netback's connect)
export const TRC_GUEST_NETBACK_BRIDGED = 0x7000 | 2;   // d0 = frontend domain, d1 = device id: the hotplug step put the vif on its bridge
export const TRC_GUEST_NETFRONT_RX_POSTED = 0x7000 | 3; // d0 = queue, d1 = rx buffers posted in all
export const TRC_GUEST_NET_GARP = 0x7000 | 4;          // d0 = the IPv4 address announced (gratuitous ARP sent)
export const TRC_GUEST_NET_UDP_IN = 0x7000 | 5;        // d0 = source IPv4, d1 = source port, d2 = destination port, d3 = length
export const TRC_GUEST_NET_UDP_OUT = 0x7000 | 6;       // d0 = destination IPv4, d1 = source port, d2 = destination port, d3 = length

/* The trace buffer: a header, one t_buf per vCPU slot, then the slots' records. */
export const TB_MASK = 0;        // enabled classes (tb_event_mask); 0 = off
export const TB_SLOTS = 1;       // number of slots
export const TB_RECORDS = 2;     // records per slot (a power of two)
export const TB_BANK_SLOTS = 3;  // slots per bank (one host's vCPU slots, then its control thread's)
/*
 * The header and each t_buf take a 64-byte cache line of their own. With tracing on, every trace
 * point on every thread reads TB_MASK, and each writer stores its slot's prod once a record: with
 * the mask and Dom0's t_buf (slot 0) on one line, and four slots' t_bufs to a line, each record
 * Dom0 wrote cost the guest's next trace point a cache miss on the line Dom0's core had just
 * written (and neighbouring slots the same between themselves). Xen's t_bufs are per-CPU pages.
 */
export const TB_HEADER = 16;
export const TB_T_BUF = 16;      // words per t_buf: cons, prod, lost, then padding to 64 bytes
export const T_CONS = 0;
export const T_PROD = 1;
export const T_LOST = 2;
export const REC_WORDS = 8;
export const R_EVENT = 0;
export const R_CPU = 1;          // bank << 24 | domid << 8 | vcpu
export const R_TS = 2;           // Float64 at word 2 (byte 8): 8-byte aligned
export const R_DATA = 4;         // four u32

/** Byte size of a trace buffer for `slots` vCPU slots of `records` records each. */
export function traceBufferBytes(slots: number, records: number): number {
  return (TB_HEADER + slots * TB_T_BUF + slots * records * REC_WORDS) * 4;
}
/** Word index of slot `s`'s first record. */
export function recordBase(slots: number, records: number, s: number): number {
  return TB_HEADER + slots * TB_T_BUF + s * records * REC_WORDS;
}

/**
 * One drained record, as a tracer reads it (XEN_SYSCTL_tbuf_op's consumer). `host`: the bank,
 * which of the process's hosts wrote it (absent or 0 for the first; only a process running
 * several hosts at once has records from two).
 */
export interface TraceRecord { event: number; domid: number; vcpu: number; ts: number; data: [number, number, number, number]; host?: number }
