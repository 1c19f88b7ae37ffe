/*
 * Writing and draining trace records: the per-vCPU trace buffers.
 *
 * Xen: xen/common/trace.c: __trace_var (write one record into this CPU's t_buf, no lock, no
 * allocation; count what did not fit and say so with TRC_LOST_RECORDS), tb_control /
 * XEN_SYSCTL_tbuf_op (set the event mask, enable, disable), and the consumer side of xentrace
 * (tools/xentrace/xentrace.c: read from cons to prod, then advance cons).
 *
 * The layout is shared/public/trace.ts. One buffer per host process (allocated once, handed to
 * every host's threads with the other hypervisor buffers), so a scenario's several hosts and the
 * tracer that reads them see one set; each host writes its own bank of slots. A slot has one
 * writer, its vCPU thread (or, for a bank's last slot, the control thread), so the writer needs
 * no lock: it fills a record, then publishes it by storing prod (Atomics.store orders the
 * record's words before it). The reader copies records between cons and prod, then stores cons.
 */
import {
  R_CPU, R_DATA, R_EVENT, R_TS, REC_WORDS, T_CONS, T_LOST, T_PROD, TB_BANK_SLOTS, TB_HEADER, TB_MASK, TB_RECORDS, TB_SLOTS, TB_T_BUF,
  TRC_CLS_MASK, TRC_LOST_RECORDS, recordBase, traceBufferBytes, type TraceRecord,
} from '../shared/public/trace.ts';

/*
 * The two constants the off path reads, copied into this module: in a loop measured under tsx
 * (loaded machine), on() reading the imported bindings cost about 45 ns a call, reading these
 * module-local copies about 15, the same as literals. With tracing off, on() is all a trace
 * point costs: where V8 inlines it (it does at the PV path's points), 0.5 to 1 ns, and some 2 to
 * 5 ns where it cannot (tools/trace/point-cost.ts, loaded machine). The mask is read from the
 * shared word at each point, as Xen reads tb_event_mask: a copy kept per thread and refreshed at
 * preemption points measured 0.26 ns against 0.37 per inlined point, too little to be worth a
 * mask that would turn on and off a hypercall late on each vCPU.
 */
const MASK_WORD = TB_MASK;
const CLASS_BITS = TRC_CLS_MASK;

/** Records per vCPU slot: 8192 × 32 bytes = 256 KiB; pages of idle slots are never touched. */
export const TRACE_RECORDS = 8192;

/**
 * Banks of slots, one per host running at once in this process (a migration scenario runs two,
 * a pool more): each host's domain ids and vCPU numbers are its own, so each gets its own slots.
 * Hosts take banks in turn; a fifth host at once would share the first's bank (and its records
 * would be told apart by nothing): a limit of the tracer, said here.
 */
export const TRACE_BANKS = 4;

let processBuffer: SharedArrayBuffer | null = null;
let nextBank = 0;
/**
 * The process's trace buffer (made on first use, on the control thread): per bank, one slot per
 * vCPU (`vcpuSlots`), and one more, the bank's last, for its host's control thread
 * (./sched/host-sched.ts: the timer interrupt's scheduling decisions), as Xen's trace buffers
 * are per CPU and its timer softirqs write into the buffer of the CPU they run on. Pages of
 * slots never written are never touched.
 */
export function traceBuffer(vcpuSlots: number): SharedArrayBuffer {
  if (processBuffer === null) {
    const bankSlots = vcpuSlots + 1;
    const slots = TRACE_BANKS * bankSlots;
    processBuffer = new SharedArrayBuffer(traceBufferBytes(slots, TRACE_RECORDS));
    const w = new Int32Array(processBuffer);
    w[TB_SLOTS] = slots;
    w[TB_RECORDS] = TRACE_RECORDS;
    w[TB_BANK_SLOTS] = bankSlots;
  }
  return processBuffer;
}
/** A new host's bank (the control thread, when it allocates the host's buffers). */
export function claimTraceBank(): number {
  const b = nextBank;
  nextBank = (nextBank + 1) % TRACE_BANKS;
  return b;
}
/** The slot of vCPU slot `vcpuSlot` (domid * MAX_VCPUS + vcpu) in bank `bank`. */
export function traceSlot(buf: SharedArrayBuffer, bank: number, vcpuSlot: number): number {
  return bank * new Int32Array(buf)[TB_BANK_SLOTS]! + vcpuSlot;
}
/** Bank `bank`'s control-thread slot: the bank's last. */
export function controlTraceSlot(buf: SharedArrayBuffer, bank = 0): number {
  return (bank + 1) * new Int32Array(buf)[TB_BANK_SLOTS]! - 1;
}

/** One vCPU thread's writer: its slot's t_buf and records. */
export class TraceWriter {
  readonly words: Int32Array;
  readonly f64: Float64Array;
  readonly #tbuf: number;
  readonly #base: number;
  readonly #cpu: number;

  constructor(buf: SharedArrayBuffer, domid: number, vcpu: number, slot: number, bank = 0) {
    this.words = new Int32Array(buf);
    this.f64 = new Float64Array(buf);
    const slots = this.words[TB_SLOTS]!;
    // A slot past the buffer would write over another slot's records: a broken host invariant.
    if (!(Number.isInteger(slot) && slot >= 0 && slot < slots)) throw new RangeError(`trace slot ${slot} (the buffer has ${slots})`);
    this.#tbuf = TB_HEADER + slot * TB_T_BUF;
    this.#base = recordBase(slots, TRACE_RECORDS, slot);
    this.#cpu = (bank << 24) | (domid << 8) | vcpu;
  }

  /** tb_init_done && (tb_event_mask & event): the one check every trace point makes. */
  on(event: number): boolean {
    return (this.words[MASK_WORD]! & event & CLASS_BITS) !== 0;
  }

  /** __trace_var. The caller has checked on(event). Stores only: no allocation, no call out. */
  write(event: number, d0: number, d1: number, d2: number, d3: number): void {
    const w = this.words;
    const t = this.#tbuf;
    const prod = w[t + T_PROD]!;
    const cons = Atomics.load(w, t + T_CONS);
    if (((prod - cons) | 0) >= TRACE_RECORDS) {
      w[t + T_LOST]!++;
      return;
    }
    const lost = w[t + T_LOST]!;
    if (lost !== 0 && ((prod - cons) | 0) < TRACE_RECORDS - 1) {
      w[t + T_LOST] = 0;
      this.#put(prod, TRC_LOST_RECORDS, lost, 0, 0, 0);
      this.#put((prod + 1) | 0, event, d0, d1, d2, d3);
      Atomics.store(w, t + T_PROD, (prod + 2) | 0);
      return;
    }
    this.#put(prod, event, d0, d1, d2, d3);
    Atomics.store(w, t + T_PROD, (prod + 1) | 0);
  }

  #put(prod: number, event: number, d0: number, d1: number, d2: number, d3: number): void {
    const r = this.#base + (prod & (TRACE_RECORDS - 1)) * REC_WORDS;
    const w = this.words;
    w[r + R_EVENT] = event;
    w[r + R_CPU] = this.#cpu;
    this.f64[(r + R_TS) >> 1] = performance.timeOrigin + performance.now();
    w[r + R_DATA] = d0;
    w[r + R_DATA + 1] = d1;
    w[r + R_DATA + 2] = d2;
    w[r + R_DATA + 3] = d3;
  }
}

/** XEN_SYSCTL_tbuf_op set_evt_mask / enable / disable: 0 turns tracing off. */
export function setTraceMask(buf: SharedArrayBuffer, mask: number): void {
  Atomics.store(new Int32Array(buf), TB_MASK, mask);
}

/** The consumer loop of xentrace: every slot's records from cons to prod, then cons = prod. */
export function drainTrace(buf: SharedArrayBuffer, out: TraceRecord[]): void {
  const w = new Int32Array(buf);
  const f64 = new Float64Array(buf);
  const slots = w[TB_SLOTS]!;
  for (let s = 0; s < slots; s++) {
    const t = TB_HEADER + s * TB_T_BUF;
    const prod = Atomics.load(w, t + T_PROD);
    let cons = w[t + T_CONS]!;
    if (prod === cons) continue;
    const base = recordBase(slots, TRACE_RECORDS, s);
    for (; cons !== prod; cons = (cons + 1) | 0) {
      const r = base + (cons & (TRACE_RECORDS - 1)) * REC_WORDS;
      const cpu = w[r + R_CPU]!;
      out.push({
        event: w[r + R_EVENT]!, domid: (cpu >> 8) & 0xffff, vcpu: cpu & 0xff, ts: f64[(r + R_TS) >> 1]!,
        data: [w[r + R_DATA]! >>> 0, w[r + R_DATA + 1]! >>> 0, w[r + R_DATA + 2]! >>> 0, w[r + R_DATA + 3]! >>> 0],
        host: cpu >>> 24,
      });
    }
    Atomics.store(w, t + T_CONS, prod);
  }
}
