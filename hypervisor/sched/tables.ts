/*
 * The credit scheduler's state, in shared memory so that every thread can run the scheduler.
 *
 * Xen: the structures of xen/common/sched/credit.c: csched_private (the pool: timeslice,
 * ratelimit, the credit totals), csched_pcpu (one per physical CPU, with its runqueue),
 * csched_unit (one per vCPU: priority, credit, flags) and csched_dom (weight, cap). Xen keeps
 * them in its heap and reaches them by pointer under per-runqueue locks; ringvisor lays them out
 * as fixed tables in one SharedArrayBuffer, guarded by one lock word (G.LOCK), because decisions
 * are made in whichever vCPU thread reaches a preemption point, and by the control thread's tick.
 *
 * A "pCPU" here is a slot: permission for one vCPU thread to run guest code. At most NR_PCPUS
 * threads hold one at a time; the host OS still picks which core runs each holder.
 *
 * Time is in milliseconds (Float64) on the clock every thread shares (schedule.ts `now`).
 * Credit is Xen's unit: 10 credits per millisecond of CPU (CSCHED_CREDITS_PER_MSEC).
 * A runqueue is not a list: a queued vCPU carries the pCPU it waits on (U.RUNQ) and a ticket
 * (U.SEQ) that orders it FIFO within its priority; picking scans the registered vCPUs, at most
 * MAX_DOMAINS × MAX_VCPUS, usually a dozen.
 */
import { MAX_DOMAINS, MAX_VCPUS } from '../state.ts';

/** Slots a host may have. Affinity masks are 31-bit words, so 31 at most. */
export const MAX_PCPUS = 31;
/* (Sizes are computed on use: state.ts imports this module, and this one imports state.ts's limits.) */
const nrUnits = () => MAX_DOMAINS * MAX_VCPUS;

export const CSCHED_CREDITS_PER_MSEC = 10;
export const CSCHED_DEFAULT_WEIGHT = 256;
export const CSCHED_DEFAULT_TSLICE_MS = 30;
export const CSCHED_TICKS_PER_TSLICE = 3;
export const CSCHED_DEFAULT_RATELIMIT_US = 1000;

/* Priorities (credit.c CSCHED_PRI_*): larger runs first. */
export const CSCHED_PRI_TS_BOOST = 0;
export const CSCHED_PRI_TS_UNDER = -1;
export const CSCHED_PRI_TS_OVER = -2;
export const CSCHED_PRI_IDLE = -64;
export const PRI_NAMES: Record<number, string> = { 0: 'BOOST', [-1]: 'UNDER', [-2]: 'OVER', [-64]: 'IDLE' };

/* csched_private and counters: Int32 words. */
export const G = {
  LOCK: 0,
  NR_PCPUS: 1,       // 0: the scheduler is off, the host OS decides (no slots)
  TSLICE_US: 2,
  RATELIMIT_US: 3,
  SEQ: 4,            // runqueue tickets
  BOOST: 5,          // 1: BOOST on wake (Xen always; 0 is ringvisor's switch for the comparison)
  ACCTS: 6,          // accounting periods run
  SCHEDULES: 7,      // decisions taken (csched_schedule calls)
  SWITCHES: 8,       // decisions that changed a slot's vCPU
  STEALS: 9,         // vCPUs taken from another slot's runqueue
  BOOSTS: 10,        // wake-ups at BOOST
  BOOST_PREEMPTS: 11, // a BOOST vCPU took a slot from an OVER or UNDER one
  PARKS: 12,         // capped vCPUs parked
  HIGH: 13,          // highest registered unit index + 1: how far a runqueue scan goes
  LATE_N: 14,        // decisions whose effect was measured (GF.LATE_SUM)
  /*
   * What scheduling costs the host, counted (not timed): each vCPU is a thread, and every time a
   * sleeping one must run, the host OS wakes it (a futex wake-up, ~45 µs here). Xen's pCPUs have
   * no such cost; the bench suites scale and net show these per request and per packet.
   */
  HANDOVERS: 15,     // a slot given by one thread to a vCPU waiting for it (release, preemption, the tick filling an idle slot)
  SLOT_WAKES: 16,    // ... of which found its thread asleep and woke it (Atomics.notify woke a waiter)
  EVT_WAKES: 17,     // event deliveries that woke a vCPU thread asleep in SCHEDOP_block
  TICKLES: 18,       // reschedule requests a wake-up made (__runq_tickle of a busy slot)
  /*
   * What those wake-ups cost in time: from the decision (slot given; event sent) to the woken
   * thread running guest code again, summed in µs (Int32, read as differences over a window), and
   * how many. A pCPU slot given to a sleeping thread is held but idle for that long.
   */
  SLOT_LAT_US: 19,   // slot given → its thread runs (waitForSlot returns)
  SLOT_LAT_N: 20,
  EVT_LAT_US: 21,    // event that woke a thread in SCHEDOP_block → that thread runs again
  EVT_LAT_N: 22,
  WAKES_QUEUED: 23,  // events that made a vCPU asleep in SCHEDOP_block runnable without waking its thread (credit.ts wakeBlocked)
  SENDER_WAKE: 24,   // 1: an event's sender makes a blocked vCPU runnable (credit.ts wakeBlocked; RINGVISOR_SENDER_WAKE=1); 0 (default): its thread wakes to do it
  TAKEOVERS: 25,     // slots handed to a sleeping thread and taken, before it ran, by a vCPU whose thread was awake (credit-wake.ts takeOver)
  TAKEOVER: 26,      // 1: an awake vCPU may take over a pending hand-over (credit-wake.ts takeOver); 0 (default; RINGVISOR_TAKEOVER=1 sets 1): not
  WORDS: 28,
} as const;

/* Float64 globals. */
export const GF = {
  BOOT: 0,       // the host's boot on the shared clock (ms): Xen's system time counts from here
  LAST_ACCT: 1,  // when accounting last ran (ms)
  LATE_SUM: 2,   // decision → effect: ms from asking a vCPU for its slot to its giving it up (sum)
  LATE_MAX: 3,   // and the longest
  WORDS: 4,
} as const;

/* csched_pcpu: Int32 words per slot. */
export const P = {
  CURR: 0,       // unit index + 1 running on it; 0 = idle
  /*
   * 1: CURR was handed the slot by another thread and its thread has not run since (it is being
   * woken on U.SLOT): the slot is held, and idle. A vCPU whose thread is awake may take it over
   * (credit-wake.ts takeOver). Cleared when CURR's thread runs (credit.ts claim) or CURR changes.
   */
  PENDING: 1,
  WORDS: 2,
} as const;
/* Float64 per slot. */
export const PF = {
  START: 0,      // when the slot last changed between idle and busy (ms)
  SLICE: 1,      // when CURR's current time slice began (ms)
  BUSY: 2,       // ms this slot has had a vCPU, up to START (for xl info's load)
  RESCHED_AT: 3, // when its vCPU was last asked to reschedule (0: not asked since)
  WORDS: 4,
} as const;

/* csched_unit: Int32 words per vCPU (index domid * MAX_VCPUS + vcpu). */
export const U = {
  EXISTS: 0,     // 1 from thread start until the vCPU is gone
  PRI: 1,
  RUNQ: 2,       // slot + 1 whose runqueue it waits on; 0 = not queued
  SEQ: 3,
  SLOT: 4,       // slot + 1 it holds; 0 = none. The vCPU waits on this word for a slot
  PROCESSOR: 5,  // the slot it last ran on (v->processor)
  HARD: 6,       // hard affinity: bit p = may run on slot p
  SOFT: 7,       // soft affinity: preferred slots
  FLAGS: 8,      // UF_*
  RAN_ON: 9,     // bit p: has run on slot p (for tests and vcpu-list)
  BOOSTS: 10,    // its wake-ups at BOOST
  PREEMPTED: 11, // times it lost its slot to another vCPU (not counting blocking)
  /*
   * How many SCHEDOP_block calls of its thread wait on its evtchn_upcall_pending word (schedule.ts
   * block; a count, as host I/O may run a second one meanwhile): only while it is not 0 does an
   * event's sender call Atomics.notify (event-channel.ts evtchn_kick).
   * Set before the block looks at the flag and cleared after it wakes, so a sender that raises the
   * flag and then finds 0 here knows the block will see the flag and not sleep.
   */
  ASLEEP: 12,
  /*
   * Where its thread sleeps while it holds no slot (credit.ts wakeBlocked), changed under the
   * scheduler's lock: BLK_RUNNING, not given up in SCHEDOP_block (it runs, or waits on U.SLOT);
   * BLK_ASLEEP, it gave its slot up in SCHEDOP_block and its thread sleeps on its
   * evtchn_upcall_pending word; BLK_QUEUED, an event's sender made it runnable and queued it
   * without waking its thread, so the slot's hand-over wakes it on that word, where it sleeps.
   */
  BLOCKED: 13,
  /* 1: a slot handed to it was taken over before its thread ran (P.PENDING); not again until it runs. */
  DISPLACED: 14,
  WORDS: 15,
} as const;
export const BLK_RUNNING = 0;
export const BLK_ASLEEP = 1;
export const BLK_QUEUED = 2;
export const UF_ACTIVE = 1;   // on the active list: earns credit at accounting
export const UF_PARKED = 2;   // CSCHED_FLAG_UNIT_PARKED: capped and over its cap
/* Float64 per vCPU. */
export const UFL = {
  CREDIT: 0,
  LAST_BURN: 1,  // when credit was last charged (ms)
  TIMER: 2,      // singleshot timer deadline (ms on the shared clock); 0 = none
  GIVEN: 3,      // when it was last given a slot: its runstate is "running" from then on
  KICKED: 4,     // when an event last woke its thread in SCHEDOP_block (0: not since it ran)
  WOKEN: 5,      // when an event's sender made it runnable while its thread slept (BLK_QUEUED; 0: not since it ran)
  WORDS: 6,
} as const;

/* csched_dom: Int32 words per domain. */
export const DM = {
  WEIGHT: 0,
  CAP: 1,        // % of one pCPU; 0 = none
  WORDS: 2,
} as const;

/** One buffer holding every table: the Int32 tables (G words first), then the Float64 ones. */
const i32Words = () => G.WORDS + MAX_PCPUS * P.WORDS + nrUnits() * U.WORDS + MAX_DOMAINS * DM.WORDS;
const f64Words = () => GF.WORDS + MAX_PCPUS * PF.WORDS + nrUnits() * UFL.WORDS;
const f64Offset = () => Math.ceil((i32Words() * 4) / 8) * 8;

export function allocateSchedBuffer(): SharedArrayBuffer {
  return new SharedArrayBuffer(f64Offset() + f64Words() * 8);
}

/** Typed views over the scheduler's buffer, and index helpers. Built once per thread. */
export class SchedTables {
  readonly i32: Int32Array;
  readonly f64: Float64Array;

  constructor(readonly buffer: SharedArrayBuffer) {
    this.i32 = new Int32Array(buffer, 0, i32Words());
    this.f64 = new Float64Array(buffer, f64Offset(), f64Words());
  }

  get nrPcpus(): number {
    return Atomics.load(this.i32, G.NR_PCPUS);
  }
  p(slot: number, w: number): number {
    return G.WORDS + slot * P.WORDS + w;
  }
  pf(slot: number, w: number): number {
    return GF.WORDS + slot * PF.WORDS + w;
  }
  u(unit: number, w: number): number {
    return G.WORDS + MAX_PCPUS * P.WORDS + unit * U.WORDS + w;
  }
  uf(unit: number, w: number): number {
    return GF.WORDS + MAX_PCPUS * PF.WORDS + unit * UFL.WORDS + w;
  }
  dm(domid: number, w: number): number {
    return G.WORDS + MAX_PCPUS * P.WORDS + nrUnits() * U.WORDS + domid * DM.WORDS + w;
  }
}

export function unitOf(domid: number, vcpu: number): number {
  return domid * MAX_VCPUS + vcpu;
}

/** Every slot of a host with `n` slots, as an affinity mask. */
export function allSlots(n: number): number {
  return n >= MAX_PCPUS ? 0x7fff_ffff : (1 << n) - 1;
}

const tablesByBuffer = new WeakMap<SharedArrayBuffer, SchedTables>();
/** The views for a buffer, made once per thread. */
export function schedTables(buffer: SharedArrayBuffer): SchedTables {
  let t = tablesByBuffer.get(buffer);
  if (!t) {
    t = new SchedTables(buffer);
    tablesByBuffer.set(buffer, t);
  }
  return t;
}
