/*
 * The guest kernel's event-channel layer: binding ports to handlers and taking upcalls.
 *
 * Xen/Linux: drivers/xen/events/events_base.c (bind_evtchn_to_irqhandler, notify_remote_via_evtchn,
 * xen_evtchn_do_upcall) and events_2l.c (the 2-level scan); mini-os events.c.
 *
 * The scan follows the order the hypervisor's delivery relies on (see
 * hypervisor/event-channel.ts): clear evtchn_upcall_pending, then take the selector words with
 * an exchange, then for each selected word take the pending-and-unmasked bits, clearing each
 * port's pending bit before calling its handler. An event that arrives during the handler sets
 * the bits again, so it is seen by the next scan, never lost. Each vCPU runs its own copy of
 * this layer and takes only the ports it has handlers for (those bound to it); another vCPU's
 * bit in the same word is left for that vCPU.
 *
 * Handlers run synchronously inside the scan, as interrupt handlers do: they should take what
 * the ring offers and hand anything slow to async code.
 */
import type { Hypercalls } from '../public/hypercall.ts';
import { DEFAULT_WAIT_POLICY, spinBudgetUs, spinUntil, type WaitPolicy } from '../wait.ts';
import { shared_info, vcpu_info } from '../public/xen.ts';
import { NR_EVTCHN_PORTS } from '../public/event_channel.ts';
import * as trace from '../public/trace.ts';
// Copied once: an imported binding read per request costs some 15 ns under tsx (hypervisor/trace.ts).
const { TRC_GUEST_EVTCHN_UPCALL } = trace;

export type EventHandler = (port: number) => void;

/** cpuidle-haltpoll's guest_halt_poll_grow_start (50,000 ns): where a poll limit of 0 grows to. */
export const HALTPOLL_GROW_START_US = 50;

const PENDING = shared_info.evtchn_pending >> 2;
const MASK = shared_info.evtchn_mask >> 2;
/** Words of pending bits (32 ports each); selector bit w names word w. */
const WORDS = NR_EVTCHN_PORTS >> 5;

export class EventChannels {
  private readonly handlers: (EventHandler | undefined)[] = new Array(NR_EVTCHN_PORTS);
  private readonly upcall: number;
  private readonly sel: number;
  private running = false;
  private asyncWork = false;
  private readonly pollers: IdlePoller[] = [];
  /** Where the next look over the pollers starts (see anyWork, armPollers). */
  private nextPoller = 0;
  /** Where the next scan of pending ports starts (see dispatch), and the selector words it took. */
  private nextPort = 0;
  private nextArm = 0;
  private readonly sels = new Int32Array(vcpu_info.PENDING_SEL_WORDS);
  /** The run's waiting policy (shared/wait.ts), set at boot from the command line (kernel.ts). */
  policy: WaitPolicy = DEFAULT_WAIT_POLICY;
  /** Events handled, for the kernel's own statistics. */
  handled = 0;
  /** The idle loop's record: polls begun, polls that found work, arm-and-recheck rounds, sleeps. */
  readonly idle = { polls: 0, pollHits: 0, armHits: 0, sleeps: 0, peerStops: 0, grows: 0, shrinks: 0 };
  /**
   * How long the idle loop spins now, in µs, under `poll`: adapted between 0 and the policy's
   * budget as cpuidle-haltpoll adapts guest_halt_poll_ns's poll limit (see adjustPollLimit).
   */
  pollLimitUs = -1;
  /**
   * Is the peer behind a device's event channel preempted (GuestSched.evtchn_peer_preempted)?
   * Set at boot by kernel.ts; until then no peer counts as preempted.
   */
  peerPreempted: (port: number) => boolean = () => false;

  constructor(
    private readonly hypercall: Hypercalls,
    /** shared_info as 32-bit words (mapped at boot). */
    private readonly si: Int32Array,
    vcpu: number,
  ) {
    this.upcall = (vcpu * vcpu_info.SIZE + vcpu_info.evtchn_upcall_pending) >> 2;
    this.sel = (vcpu * vcpu_info.SIZE + vcpu_info.evtchn_pending_sel) >> 2;
  }

  /** bind_evtchn_to_irqhandler: route `port` to `handler` and unmask it. */
  bind(port: number, handler: EventHandler): void {
    this.handlers[port] = handler;
    this.unmask(port);
  }

  /** unbind_from_irqhandler: mask the port and forget the handler (the port stays open). */
  unbind(port: number): void {
    this.mask(port);
    this.handlers[port] = undefined;
  }

  /** Allocate an unbound port for `remote` and bind a handler to it (the frontend's half). */
  allocUnbound(remote: number, handler: EventHandler): number {
    const port = this.hypercall.evtchn_alloc_unbound(0x7ff0 /* DOMID_SELF */, remote);
    if (port < 0) throw new Error(`evtchn_alloc_unbound(remote d${remote}) failed: ${port}`);
    this.bind(port, handler);
    return port;
  }

  /** Bind to a port `remote` allocated for us, and handle it (the backend's half). */
  bindInterdomain(remote: number, remotePort: number, handler: EventHandler): number {
    const port = this.hypercall.evtchn_bind_interdomain(remote, remotePort);
    if (port < 0) throw new Error(`evtchn_bind_interdomain(d${remote}, port ${remotePort}) failed: ${port}`);
    this.bind(port, handler);
    return port;
  }

  /** Unbind and close. */
  close(port: number): void {
    this.unbind(port);
    this.hypercall.evtchn_close(port);
  }

  /** notify_remote_via_evtchn. */
  notify(port: number): void {
    this.hypercall.evtchn_send(port);
  }

  /** The guest masks a port itself: one bit in shared_info, no hypercall (as in Xen). */
  mask(port: number): void {
    Atomics.or(this.si, MASK + (port >> 5), 1 << (port & 31));
  }

  /** Unmasking may need to deliver an event that arrived while masked, so it is a hypercall. */
  unmask(port: number): void {
    this.hypercall.evtchn_unmask(port);
  }

  /**
   * The 2-level scan (see header). Returns how many ports' handlers ran. Round robin, as Linux's
   * evtchn_2l_handle_events: the scan starts at the port after the last one handled and goes
   * round to it, so when many ports are pending (Dom0 serving 16 guests' rings) the lowest-numbered
   * ones, the guests created first, are not always served first.
   */
  dispatch(): number {
    const si = this.si;
    if (Atomics.load(si, this.upcall) === 0) return 0;
    Atomics.store(si, this.upcall, 0);
    const sels = this.sels;
    for (let s = 0; s < sels.length; s++) sels[s] = Atomics.exchange(si, this.sel + s, 0);
    const startW = this.nextPort >> 5;
    const startB = this.nextPort & 31;
    let n = 0;
    // The start word is looked at twice: its ports from startB up first, those below it last.
    for (let i = 0; i <= WORDS; i++) {
      const w = (startW + i) % WORDS;
      if ((sels[w >> 5] & (1 << (w & 31))) === 0) continue;
      const part = i === 0 ? ~((1 << startB) - 1) : i === WORDS ? (1 << startB) - 1 : -1;
      let bits = Atomics.load(si, PENDING + w) & ~Atomics.load(si, MASK + w) & part;
      while (bits !== 0) {
        const b = 31 - Math.clz32(bits & -bits);
        bits &= bits - 1;
        const port = w * 32 + b;
        const h = this.handlers[port];
        // Only this vCPU's ports: one bound on another vCPU whose bit shares the word is that
        // vCPU's to take (Linux: active_evtchns masks the word with the CPU's cpu_evtchn_mask).
        if (h === undefined) continue;
        Atomics.and(si, PENDING + w, ~(1 << b));
        n++;
        this.nextPort = (port + 1) % NR_EVTCHN_PORTS;
        this.hypercall.xentrace(TRC_GUEST_EVTCHN_UPCALL, port, 0, 0, 0);
        h(port);
      }
    }
    this.handled += n;
    return n;
  }

  /** Register a driver that wants to be polled before the vCPU sleeps (see run()). */
  addPoller(p: IdlePoller): void {
    this.pollers.push(p);
  }

  removePoller(p: IdlePoller): void {
    const i = this.pollers.indexOf(p);
    if (i >= 0) this.pollers.splice(i, 1);
  }

  /**
   * The kernel's idle loop: handle pending events; then, under the `poll` policy and if some
   * driver is waiting for work (IdlePoller.busy), spin over the drivers and the upcall word for
   * up to the policy's budget; then let each driver arm its event index and look once more
   * (RING_FINAL_CHECK_FOR_*: ring semantics, under either policy); only then block in the
   * hypervisor. Runs until stop(). Under `irq` nothing spins: every completion a driver has not
   * seen by its final check is an event and a wake-up, as an interrupt is for Linux's drivers.
   *
   * Why spin at all, and for how long: shared/wait.ts. While a driver spins on its ring without
   * arming its event index, its peer sends it no notifications, so polling saves the peer's
   * hypercalls too; an emulated-disk driver has no ring to look at and spins on the upcall word
   * alone (cpuidle-haltpoll's way), its interrupt still being an event.
   *
   * Async code (drivers' completions, xenbus), timers, sockets and control messages run
   * between every two turns of the loop.
   */
  async run(): Promise<void> {
    this.running = true;
    let lastTurn = performance.now();
    if (this.pollLimitUs < 0) this.pollLimitUs = spinBudgetUs(this.policy);
    while (this.running) {
      const dispatched = this.dispatch() > 0;
      let polled = false;
      let idleFrom = -1;
      if (!dispatched && this.pollers.length > 0) {
        const wants = spinBudgetUs(this.policy) > 0 && this.wantsSpin();
        if (wants) idleFrom = performance.now();
        const budget = wants ? this.pollLimitUs : 0;
        if (budget > 0) this.idle.polls++;
        if (budget > 0 && spinUntil(this.anyWork, budget, this.peersPreempted)) {
          this.idle.pollHits++;
          polled = true;
        } else if (this.armPollers()) {
          this.idle.armHits++;
          polled = true;
        }
      }
      if (!dispatched && !polled) {
        this.idle.sleeps++;
        await this.hypercall.sched_block();
        lastTurn = performance.now();
        if (idleFrom >= 0) this.adjustPollLimit((lastTurn - idleFrom) * 1000);
        continue;
      }
      // Handlers may have resolved promises whose continuations take several microtask hops
      // before they submit more work, and the poll above is synchronous: so after an event, or
      // when a driver says it completed promise-based work, give the event loop a full turn
      // before polling again. A poller that completed work by callback needs no turn, but
      // timers, sockets and control messages get one at least every millisecond regardless.
      const now = performance.now();
      if (dispatched || this.asyncWork || now - lastTurn > 1) {
        this.asyncWork = false;
        lastTurn = now;
        await new Promise(setImmediate);
      } else {
        await null; // at least the microtasks drivers queued (a deferred ring push)
      }
    }
  }

  /**
   * cpuidle-haltpoll's adjust_poll_limit (drivers/cpuidle/governors/haltpoll.c), after a spin that
   * ended in sleep: `blockUs` is how long the vCPU was idle, spin included. Woken within the
   * policy's budget but after the current limit: a longer spin would have caught it, so grow
   * (double, at least HALTPOLL_GROW_START_US). Idle for longer than the budget: no spin within the
   * budget could have helped, so shrink (halve, and below 1 µs stop). So on a machine where the
   * peer answers quickly the spin stays at the budget, and where answers come late (the peer
   * preempted by the host, the other side idle) it falls to nothing and the vCPU sleeps at once,
   * as under `irq`, instead of burning the core the peer needs. A spin that found work leaves the
   * limit alone, as in haltpoll.
   */
  private adjustPollLimit(blockUs: number): void {
    const max = spinBudgetUs(this.policy);
    if (blockUs > this.pollLimitUs && blockUs <= max) {
      this.pollLimitUs = Math.min(max, Math.max(HALTPOLL_GROW_START_US, this.pollLimitUs * 2));
      this.idle.grows++;
    } else if (blockUs > max && this.pollLimitUs > 0) {
      this.pollLimitUs = this.pollLimitUs < 2 ? 0 : this.pollLimitUs / 2;
      this.idle.shrinks++;
    }
  }

  /** A driver completed work whose continuations run as promise callbacks (see run()). */
  wakeAsync(): void {
    this.asyncWork = true;
  }

  /** Does any driver wait for work that is on its way (see IdlePoller.busy)? */
  private wantsSpin(): boolean {
    for (const p of this.pollers) if (p.busy === undefined || p.busy()) return true;
    return false;
  }

  /**
   * Spin only while the peer runs (DESIGN §12): the spin stops when every driver that waits for
   * work waits on a peer that is preempted (runnable but holding no pCPU), since no answer can
   * come before the scheduler runs one of them, and this vCPU may hold the pCPU it needs. A
   * driver that cannot name its peer (no peerPort) keeps the spin going. Looked at every 64 tries.
   */
  private readonly peersPreempted = (): boolean => {
    for (const p of this.pollers) {
      if (p.busy !== undefined && !p.busy()) continue;
      const port = p.peerPort?.() ?? -1;
      if (port < 0 || !this.peerPreempted(port)) return false;
    }
    this.idle.peerStops++;
    return true;
  };

  /**
   * One look over the pollers and the upcall flag (the spin's condition); true if anything turned
   * up. Round robin: the look starts after the poller that last had work, so a driver that always
   * has more (a backend serving full rings a bounded batch at a time) cannot keep the others waiting.
   */
  private readonly anyWork = (): boolean => {
    const ps = this.pollers;
    for (let j = 0; j < ps.length; j++) {
      const at = (this.nextPoller + j) % ps.length;
      if (ps[at].poll()) {
        this.nextPoller = at + 1;
        return true;
      }
    }
    return Atomics.load(this.si, this.upcall) !== 0;
  };

  /**
   * Every poller arms its event index and looks once more (RING_FINAL_CHECK_FOR_*). Each in turn,
   * starting one further each time, so the work this finds (a backend's rings) is not always
   * served in the order the rings were connected.
   */
  private armPollers(): boolean {
    const ps = this.pollers;
    let found = false;
    const start = this.nextArm++ % ps.length;
    for (let j = 0; j < ps.length; j++) {
      const p = ps[(start + j) % ps.length]; // a poller that stops removes itself: the list may shrink
      if (p !== undefined && p.prepareToSleep()) found = true;
    }
    return found;
  }

  stop(): void {
    this.running = false;
  }
}

/** A driver the idle loop looks at before the vCPU sleeps (a ring consumer, a device's waiter). */
export interface IdlePoller {
  /** Look for work and do it; true if there was some. */
  poll(): boolean;
  /** About to sleep: arm the event index and look once more; true if work appeared. */
  prepareToSleep(): boolean;
  /**
   * True while this driver waits for answers to its own requests (a frontend with I/O in flight):
   * only then is spinning for it worth anything under `poll`. A driver without busy() (a backend,
   * a device model) serves a peer that may send more at any time, so it always counts as waiting.
   */
  busy?(): boolean;
  /** The event channel on which this driver's peer answers (its remote end runs the peer), or -1. */
  peerPort?(): number;
}
