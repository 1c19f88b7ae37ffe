/*
 * The control thread's side of scheduling: the pCPU slots, the timer interrupt, and the controls.
 *
 * Xen: the per-pCPU scheduler timers of credit.c (csched_tick every tick, csched_acct every
 * timeslice), scheduler_init / cpupool setup (how many pCPUs the pool has), and the domctls and
 * sysctls xl's scheduling commands use: XEN_DOMCTL_SCHEDOP_{get,put}info (sched-credit -d),
 * XEN_SYSCTL_SCHEDOP_{get,put}info (sched-credit -s), XEN_DOMCTL_{get,set}vcpuaffinity
 * (vcpu-pin), XEN_DOMCTL_getvcpuinfo (vcpu-list).
 *
 * The timer interrupt is here: one host timer on the control thread, every tick (timeslice / 3),
 * runs the credit scheduler's tick (and every third one its accounting) and fires due guest
 * timers. It only sets request bits: the running vCPUs act on them at their next preemption
 * point (see ../schedule.ts). `pcpus = 0` switches the scheduler off: no slots, the host OS alone
 * decides which vCPU thread runs (what ringvisor did before; the bench compares the two).
 */
import type { PcpuLoad, SchedOp, SchedPool, VcpuInfo } from '../../shared/public/sched.ts';
import { DOMID_XEN, XEN_EINVAL } from '../../shared/public/xen.ts';
import { dom0PinnedConfig } from '../host-options.ts';
import { TraceWriter, controlTraceSlot } from '../trace.ts';
import { RUNSTATE_running, V, VT, MAX_VCPUS, type HypervisorState } from '../state.ts';
import { CreditScheduler } from './credit.ts';
import {
  CSCHED_DEFAULT_RATELIMIT_US, CSCHED_DEFAULT_TSLICE_MS, CSCHED_DEFAULT_WEIGHT, CSCHED_TICKS_PER_TSLICE, DM, G, GF, MAX_PCPUS,
  P, PF, PRI_NAMES, U, UF_PARKED, UFL, allSlots, schedTables, unitOf, type SchedTables,
} from './tables.ts';
import { fireDueTimers, publishGuestTime } from './timer.ts';
import { ThreadAffinity } from './thread-affinity.ts';

/** What a domain asks of the scheduler at creation (xl.cfg weight, cap, cpus, cpus_soft). */
export interface DomainSchedConfig {
  weight?: number;
  cap?: number;
  /** Hard affinity: the slots its vCPUs may run on (all, if absent). */
  cpus?: number[];
  /** Soft affinity: the slots they prefer. */
  cpus_soft?: number[];
  /** Per vCPU (xl.cfg's list form), used instead of the two above: entry v is vCPU v's; missing entries mean all. */
  vcpu_hard_affinity?: number[][];
  vcpu_soft_affinity?: number[][];
}


export interface SchedCounters {
  accts: number; schedules: number; switches: number; steals: number; boosts: number; boost_preempts: number; parks: number;
  /** Decision → effect: from asking a running vCPU for its slot to its giving it up (ms): mean, max, how many. */
  lateMeanMs: number; lateMaxMs: number; lateN: number;
  /**
   * Host thread wake-ups scheduling made, counted (tables.ts G): slots handed to a waiting vCPU,
   * of those the ones whose thread slept and was woken, event deliveries that woke a blocked
   * vCPU's thread, and wake-ups that asked a running vCPU to reschedule (tickles).
   */
  handovers: number; slot_wakes: number; evt_wakes: number; tickles: number;
  /** Events that made a vCPU asleep in SCHEDOP_block runnable without waking its thread (credit.ts wakeBlocked). */
  wakes_queued: number;
  /** Slots handed to a thread not yet running and taken over by an awake vCPU (credit-wake.ts takeOver). */
  takeovers: number;
  /** Wake-up latencies (tables.ts G.SLOT_LAT_*, G.EVT_LAT_*): sums in µs (wrapping Int32: take differences) and counts. */
  slot_lat_us: number; slot_lat_n: number; evt_lat_us: number; evt_lat_n: number;
}

export class HostScheduler {
  readonly t: SchedTables;
  readonly credit: CreditScheduler;
  /** Hard affinity applied to the vCPU threads themselves (./thread-affinity.ts). */
  readonly affinity: ThreadAffinity;
  private timer: NodeJS.Timeout | null = null;

  /**
   * `dom0VcpusPin`: Xen's boot option dom0_vcpus_pin (../host-options.ts), Dom0's vCPU v pinned to
   * slot v; `log`: where a failure to pin a thread is said.
   */
  constructor(
    private readonly hv: HypervisorState, pcpus: number, log: (line: string) => void = (l) => process.stderr.write(`${l}\n`),
    readonly dom0VcpusPin = false,
  ) {
    if (!Number.isInteger(pcpus) || pcpus < 0 || pcpus > MAX_PCPUS) throw new RangeError(`pcpus must be 0..${MAX_PCPUS} (0: no scheduler)`);
    this.t = schedTables(hv.buffers.sched);
    // The control thread's decisions go into its own trace slot, a track of their own.
    const buf = hv.buffers.trace;
    const bank = hv.buffers.traceBank;
    this.credit = new CreditScheduler(hv, this.t, new TraceWriter(buf, DOMID_XEN, 0, controlTraceSlot(buf, bank), bank));
    this.affinity = new ThreadAffinity(() => this.pcpus, log);
    const i = this.t.i32;
    i[G.NR_PCPUS] = pcpus;
    i[G.TSLICE_US] = CSCHED_DEFAULT_TSLICE_MS * 1000;
    i[G.RATELIMIT_US] = CSCHED_DEFAULT_RATELIMIT_US;
    i[G.BOOST] = 1;
    // vcpu_wake on the event sender's side (credit.ts wakeBlocked): off unless RINGVISOR_SENDER_WAKE=1,
    // until a quiet machine says it pays (its header has the counts and the fairness it cost here).
    i[G.SENDER_WAKE] = process.env.RINGVISOR_SENDER_WAKE === '1' ? 1 : 0;
    // Work conservation (credit-wake.ts takeOver): off unless RINGVISOR_TAKEOVER=1. Measured quiet
    // against main, one run each, it left the 16-guest aggregate where it was (87.3K against 86.9K)
    // and the pinned 16 lower (73K against 91K): not shown to help, so not on by default.
    i[G.TAKEOVER] = process.env.RINGVISOR_TAKEOVER === '1' ? 1 : 0;
    this.t.f64[GF.BOOT] = performance.timeOrigin + performance.now();
    for (let p = 0; p < pcpus; p++) this.t.f64[this.t.pf(p, PF.START)] = this.t.f64[GF.BOOT];
    this.arm();
  }

  get pcpus(): number {
    return this.t.nrPcpus;
  }

  /** The timer interrupt: re-armed each time, so a new timeslice changes the tick at once. */
  private arm(): void {
    const tickMs = this.t.i32[G.TSLICE_US] / 1000 / CSCHED_TICKS_PER_TSLICE;
    this.timer = setTimeout(() => {
      const now = performance.timeOrigin + performance.now();
      if (this.pcpus > 0) this.credit.tick(now);
      fireDueTimers(this.hv, this.t, now);
      this.arm();
    }, tickMs);
    this.timer.unref();
  }

  close(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
  }

  /** A domain is built: its weight and cap, each vCPU's affinity, its clock. */
  domainCreated(domid: number, nrVcpus: number, config: DomainSchedConfig): void {
    const cfg = domid === 0 && this.dom0VcpusPin ? dom0PinnedConfig(config, nrVcpus, this.pcpus) : config;
    this.credit.initDomain(domid, cfg.weight ?? CSCHED_DEFAULT_WEIGHT, cfg.cap ?? 0);
    // libxl: a per-vCPU list wins over the single list; a vCPU it does not reach gets every pCPU.
    const pick = (perVcpu: number[][] | undefined, all: number[] | undefined, v: number): number =>
      perVcpu ? (perVcpu[v] ? maskOf(perVcpu[v]) : 0) : all ? maskOf(all) : 0;
    for (let v = 0; v < nrVcpus; v++) {
      this.credit.initUnit(unitOf(domid, v), pick(cfg.vcpu_hard_affinity, cfg.cpus, v), pick(cfg.vcpu_soft_affinity, cfg.cpus_soft, v));
    }
    publishGuestTime(this.hv, this.t, domid, nrVcpus);
  }

  /** A vCPU thread ended (however it ended): whatever slot or queue place it had is freed. */
  vcpuGone(domid: number, vcpu: number): void {
    this.affinity.threadGone(domid, vcpu);
    if (this.pcpus > 0) this.credit.release(unitOf(domid, vcpu), performance.timeOrigin + performance.now(), true);
  }

  /** A vCPU thread told its kernel thread id: pin it to its hard affinity's cores, if narrower than all. */
  threadStarted(domid: number, vcpu: number, tid: number): void {
    this.affinity.threadStarted(domid, vcpu, tid, this.t.i32[this.t.u(unitOf(domid, vcpu), U.HARD)]);
  }

  /** Wake a vCPU waiting for a slot so it sees a stop request. */
  kickWaiter(domid: number, vcpu: number): void {
    Atomics.notify(this.t.i32, this.t.u(unitOf(domid, vcpu), U.SLOT));
  }

  /** sched-credit -d: weight 1..65535, cap 0..100 × pCPUs (% of one pCPU; 0 = none). */
  getDomain(domid: number): { weight: number; cap: number } {
    return { weight: this.t.i32[this.t.dm(domid, DM.WEIGHT)], cap: this.t.i32[this.t.dm(domid, DM.CAP)] };
  }
  setDomain(domid: number, weight: number | undefined, cap: number | undefined): string | null {
    const cur = this.getDomain(domid);
    const w = weight ?? cur.weight;
    const c = cap ?? cur.cap;
    if (!Number.isInteger(w) || w < 1 || w > 65535) return `weight ${w} (expected 1..65535)`;
    if (!Number.isInteger(c) || c < 0 || c > 100 * Math.max(1, this.pcpus)) return `cap ${c} (expected 0..${100 * Math.max(1, this.pcpus)})`;
    this.credit.setDomain(domid, w, c);
    return null;
  }

  /** sched-credit -s: the pool. */
  getPool(): SchedPool {
    const i = this.t.i32;
    return { pcpus: this.pcpus, tslice_ms: i[G.TSLICE_US] / 1000, ratelimit_us: i[G.RATELIMIT_US], boost: i[G.BOOST] !== 0 };
  }
  setPool(tsliceMs: number | undefined, ratelimitUs: number | undefined, boost?: boolean): string | null {
    const cur = this.getPool();
    const ts = tsliceMs ?? cur.tslice_ms;
    const rl = ratelimitUs ?? cur.ratelimit_us;
    if (!Number.isInteger(ts) || ts < 1 || ts > 1000) return `timeslice ${ts} ms (expected 1..1000)`;
    if (!Number.isInteger(rl) || (rl !== 0 && (rl < 100 || rl > 500_000))) return `ratelimit ${rl} us (expected 0 or 100..500000)`;
    if (rl > ts * 1000) return `ratelimit ${rl} us is longer than the timeslice (${ts} ms)`;
    this.credit.setPool(ts * 1000, rl);
    if (boost !== undefined) this.t.i32[G.BOOST] = boost ? 1 : 0;
    return null;
  }

  /** vcpu-pin: hard and soft affinity of one vCPU (null: leave as is). */
  pin(domid: number, vcpu: number, hard: number[] | null, soft: number[] | null): string | null {
    const u = unitOf(domid, vcpu);
    if (this.t.i32[this.t.u(u, U.EXISTS)] !== 1) return `domain ${domid} has no vCPU ${vcpu}`;
    const n = Math.max(1, this.pcpus);
    for (const c of [...(hard ?? []), ...(soft ?? [])]) if (!Number.isInteger(c) || c < 0 || c >= n) return `cpu ${c} (this host has cpus 0..${n - 1})`;
    const h = hard ? maskOf(hard) : this.t.i32[this.t.u(u, U.HARD)];
    const s = soft ? maskOf(soft) : this.t.i32[this.t.u(u, U.SOFT)];
    if ((h & allSlots(n)) === 0) return 'an empty hard affinity';
    this.credit.setAffinity(u, h, s);
    this.affinity.affinityChanged(domid, vcpu, h);
    return null;
  }

  /** vcpu-list's rows for one domain with `nrVcpus` vCPUs. */
  vcpus(domid: number, nrVcpus: number): VcpuInfo[] {
    const t = this.t;
    const hv = this.hv;
    const n = Math.max(1, this.pcpus);
    const now = performance.timeOrigin + performance.now();
    const out: VcpuInfo[] = [];
    for (let v = 0; v < nrVcpus && v < MAX_VCPUS; v++) {
      const u = unitOf(domid, v);
      const rs = Atomics.load(hv.vcpus, hv.vcpu(domid, v, V.RUNSTATE));
      const alive = Atomics.load(hv.vcpus, hv.vcpu(domid, v, V.ALIVE)) === 1;
      const tb = u * VT.WORDS;
      let time = hv.vcpuTime[tb + VT.RUNNING];
      if (alive && rs === RUNSTATE_running) time += now - hv.vcpuTime[tb + VT.SINCE];
      const slot = Atomics.load(t.i32, t.u(u, U.SLOT)) - 1;
      // With slots, "running" is the scheduler's word (it holds a slot): the thread that just lost
      // one may not have written its runstate yet.
      const onSlot = this.pcpus > 0 ? slot >= 0 : rs === RUNSTATE_running;
      const state = !alive ? 'offline' : onSlot ? 'running'
        : rs === RUNSTATE_running ? 'runnable' : (['running', 'runnable', 'blocked', 'offline'] as const)[rs] ?? 'offline';
      const ranOn = t.i32[t.u(u, U.RAN_ON)];
      out.push({
        domid, vcpu: v,
        // xl vcpu-list prints no CPU for a vCPU that is down.
        cpu: this.pcpus === 0 || state === 'offline' ? -1 : slot >= 0 ? slot : ranOn !== 0 ? t.i32[t.u(u, U.PROCESSOR)] : -1,
        state, running: alive && onSlot, time_ms: time,
        hard: slotsOf(t.i32[t.u(u, U.HARD)], n), soft: slotsOf(t.i32[t.u(u, U.SOFT)], n),
        credit: t.f64[t.uf(u, UFL.CREDIT)], pri: PRI_NAMES[t.i32[t.u(u, U.PRI)]] ?? '?',
        parked: (t.i32[t.u(u, U.FLAGS)] & UF_PARKED) !== 0,
      });
    }
    return out;
  }

  /** xl info: each slot's vCPU and how busy it has been since boot (0..1). */
  pcpuLoad(): PcpuLoad[] {
    const t = this.t;
    const now = performance.timeOrigin + performance.now();
    const up = Math.max(1e-9, now - t.f64[GF.BOOT]);
    const out = [];
    for (let p = 0; p < this.pcpus; p++) {
      const cur = t.i32[t.p(p, P.CURR)] - 1;
      const busy = t.f64[t.pf(p, PF.BUSY)] + (cur >= 0 ? now - t.f64[t.pf(p, PF.START)] : 0);
      out.push({ cpu: p, curr: cur < 0 ? 'idle' : `d${Math.floor(cur / MAX_VCPUS)}v${cur % MAX_VCPUS}`, load: busy / up });
    }
    return out;
  }

  /**
   * XEN_DOMCTL_scheduler_op & co., from the control domain (Host.domctl; `nrVcpus` is the
   * domain's, or -1 if there is no such domain). Bad arguments are an error string, not a throw.
   */
  op(o: SchedOp, nrVcpus: (domid: number) => number): unknown {
    const dom = 'domid' in o ? nrVcpus(o.domid) : 0;
    if (dom < 0) return { error: `no domain ${(o as { domid: number }).domid}` };
    const result = (e: string | null) => (e === null ? 0 : { error: e });
    switch (o.op) {
      case 'getinfo': return this.getDomain(o.domid);
      case 'putinfo': return result(this.setDomain(o.domid, o.weight, o.cap));
      case 'pool-getinfo': return this.getPool();
      case 'pool-putinfo': return result(this.setPool(o.tslice_ms, o.ratelimit_us, o.boost));
      case 'getvcpuinfo': return this.vcpus(o.domid, dom);
      case 'setvcpuaffinity':
        if (!Number.isInteger(o.vcpu) || o.vcpu < 0 || o.vcpu >= dom) return { error: `domain ${o.domid} has no vCPU ${o.vcpu}` };
        if (this.pcpus === 0) return { error: 'this host has no scheduler (pcpus 0): nothing to pin to' };
        return result(this.pin(o.domid, o.vcpu, o.hard, o.soft));
      default: return -XEN_EINVAL;
    }
  }

  counters(): SchedCounters {
    const i = this.t.i32;
    return {
      accts: i[G.ACCTS], schedules: i[G.SCHEDULES], switches: i[G.SWITCHES], steals: i[G.STEALS],
      boosts: i[G.BOOSTS], boost_preempts: i[G.BOOST_PREEMPTS], parks: i[G.PARKS],
      lateMeanMs: i[G.LATE_N] > 0 ? this.t.f64[GF.LATE_SUM] / i[G.LATE_N] : 0, lateMaxMs: this.t.f64[GF.LATE_MAX], lateN: i[G.LATE_N],
      handovers: i[G.HANDOVERS], slot_wakes: i[G.SLOT_WAKES], evt_wakes: Atomics.load(i, G.EVT_WAKES), tickles: i[G.TICKLES],
      wakes_queued: i[G.WAKES_QUEUED], takeovers: i[G.TAKEOVERS],
      slot_lat_us: Atomics.load(i, G.SLOT_LAT_US), slot_lat_n: Atomics.load(i, G.SLOT_LAT_N),
      evt_lat_us: Atomics.load(i, G.EVT_LAT_US), evt_lat_n: Atomics.load(i, G.EVT_LAT_N),
    };
  }

  /** Per-vCPU scheduler counters: BOOSTs, preemptions, and the slots it ran on (a bitmask). */
  unitCounters(domid: number, vcpu: number): { boosts: number; preempted: number; ranOn: number[] } {
    const u = unitOf(domid, vcpu);
    const i = this.t.i32;
    return { boosts: i[this.t.u(u, U.BOOSTS)], preempted: i[this.t.u(u, U.PREEMPTED)], ranOn: slotsOf(i[this.t.u(u, U.RAN_ON)], MAX_PCPUS) };
  }
}

function maskOf(cpus: readonly number[]): number {
  let m = 0;
  for (const c of cpus) m |= 1 << c;
  return m;
}

function slotsOf(mask: number, n: number): number[] {
  const out: number[] = [];
  for (let p = 0; p < n; p++) if ((mask & (1 << p)) !== 0) out.push(p);
  return out;
}
