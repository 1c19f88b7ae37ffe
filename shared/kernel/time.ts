/*
 * The guest's clock and timers: system time from vcpu_time_info, sleeping on VIRQ_TIMER.
 *
 * Xen/Linux: arch/x86/xen/time.c (xen_clocksource_read → pvclock_clocksource_read, the
 * version-retry read of vcpu_time_info; xen_read_wallclock from shared_info's wc_*; the
 * clockevent that programs VCPUOP_set_singleshot_timer and takes VIRQ_TIMER) and
 * kernel/time/timer.c's idea of a timer list. mini-os's time.c does the same in a page.
 *
 * A guest never uses a host timer: `sleep(ms)` records a deadline in system time, programs the
 * vCPU's one singleshot timer (set_timer_op) for the earliest deadline, and the VIRQ_TIMER handler
 * resolves every sleeper whose deadline has passed, in deadline order (FIFO among equal ones),
 * then programs the next. A sleeper is never resolved early: the handler checks the clock itself,
 * whatever woke it. The kernel's idle loop (events.ts) blocks meanwhile, so the vCPU gives up its
 * pCPU while it sleeps.
 */
import { VIRQ_TIMER } from '../public/event_channel.ts';
import type { Cpu, Hypercalls } from '../public/hypercall.ts';
import { shared_info, vcpu_info, vcpu_time_info } from '../public/xen.ts';
import type { EventChannels } from './events.ts';
import { viewAs } from '../view.ts';

interface Sleeper {
  deadlineNs: number;
  seq: number;
  resolve: () => void;
}

export class GuestClock {
  private readonly f64: Float64Array;
  private readonly base: number;

  constructor(private readonly si: Int32Array, private readonly cpu: Cpu, vcpu: number) {
    this.f64 = viewAs(si, Float64Array);
    this.base = vcpu * vcpu_info.SIZE + vcpu_info.time;
  }

  /** pvclock_clocksource_read: ns since the host booted. */
  systemTimeNs(): number {
    const si = this.si;
    const ver = (this.base + vcpu_time_info.version) >> 2;
    for (;;) {
      const v0 = Atomics.load(si, ver);
      const tsc = this.f64[(this.base + vcpu_time_info.tsc_timestamp) >> 3];
      const sys = this.f64[(this.base + vcpu_time_info.system_time) >> 3];
      const mul = si[(this.base + vcpu_time_info.tsc_to_system_mul) >> 2] >>> 0;
      const shift = si[(this.base + vcpu_time_info.tsc_shift) >> 2];
      if ((v0 & 1) !== 0 || Atomics.load(si, ver) !== v0) continue;
      const delta = this.cpu.rdtsc() - tsc;
      const scaled = shift >= 0 ? delta * 2 ** shift : delta / 2 ** -shift;
      return sys + (scaled * mul) / 2 ** 32;
    }
  }

  /** xen_read_wallclock: Unix time in ms, now. */
  wallClockMs(): number {
    const si = this.si;
    for (;;) {
      const v0 = Atomics.load(si, shared_info.wc_version >> 2);
      const sec = si[shared_info.wc_sec >> 2] >>> 0;
      const nsec = si[shared_info.wc_nsec >> 2] >>> 0;
      if ((v0 & 1) !== 0 || Atomics.load(si, shared_info.wc_version >> 2) !== v0) continue;
      return sec * 1000 + nsec / 1e6 + this.systemTimeNs() / 1e6;
    }
  }
}

export class GuestTimers {
  private readonly sleepers: Sleeper[] = [];
  private seq = 0;
  private programmed = 0;
  /** VIRQ_TIMER events taken, and sleepers resolved. */
  readonly stats = { virqs: 0, fired: 0 };

  constructor(private readonly hypercall: Hypercalls, private readonly clock: GuestClock, events: EventChannels, vcpu: number) {
    const port = hypercall.evtchn_bind_virq(VIRQ_TIMER, vcpu);
    if (port < 0) throw new Error(`bind VIRQ_TIMER on vCPU ${vcpu} failed: ${port}`);
    events.bind(port, () => {
      this.stats.virqs++;
      this.expire();
    });
  }

  /** Resolve after at least `ms` milliseconds of system time. */
  sleep(ms: number): Promise<void> {
    return this.until(this.clock.systemTimeNs() + ms * 1e6);
  }

  /** Resolve once system time has reached `deadlineNs`. */
  until(deadlineNs: number): Promise<void> {
    return new Promise((resolve) => {
      const s: Sleeper = { deadlineNs, seq: this.seq++, resolve };
      // Keep the list sorted by deadline, FIFO among equals (a few sleepers: insertion is enough).
      let i = this.sleepers.length;
      while (i > 0 && this.sleepers[i - 1].deadlineNs > deadlineNs) i--;
      this.sleepers.splice(i, 0, s);
      this.program();
    });
  }

  private expire(): void {
    const now = this.clock.systemTimeNs();
    let n = 0;
    while (n < this.sleepers.length && this.sleepers[n].deadlineNs <= now) n++;
    const due = this.sleepers.splice(0, n);
    this.programmed = 0;
    this.program();
    for (const s of due) {
      this.stats.fired++;
      s.resolve();
    }
  }

  /** Program the singleshot timer for the earliest deadline (once per change). */
  private program(): void {
    const next = this.sleepers.length > 0 ? this.sleepers[0].deadlineNs : 0;
    if (next === this.programmed) return;
    this.programmed = next;
    this.hypercall.set_timer_op(next);
  }
}
