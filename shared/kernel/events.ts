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

const PENDING = shared_info.evtchn_pending >> 2;
const MASK = shared_info.evtchn_mask >> 2;

export class EventChannels {
  private readonly handlers: (EventHandler | undefined)[] = new Array(NR_EVTCHN_PORTS);
  private readonly upcall: number;
  private readonly sel: number;
  private running = false;
  private asyncWork = false;
  private readonly pollers: IdlePoller[] = [];
  /** Where the next look over the pollers starts (see anyWork). */
  private nextPoller = 0;
  /** The run's waiting policy (shared/wait.ts), set at boot from the command line (kernel.ts). */
  policy: WaitPolicy = DEFAULT_WAIT_POLICY;
  /** Events handled, for the kernel's own statistics. */
  handled = 0;
  /** The idle loop's record: polls begun, polls that found work, arm-and-recheck rounds, sleeps. */
  readonly idle = { polls: 0, pollHits: 0, armHits: 0, sleeps: 0 };

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

  /** The 2-level scan (see header). Returns how many ports' handlers ran. */
  dispatch(): number {
    const si = this.si;
    if (Atomics.load(si, this.upcall) === 0) return 0;
    Atomics.store(si, this.upcall, 0);
    let n = 0;
    for (let s = 0; s < vcpu_info.PENDING_SEL_WORDS; s++) {
      let sel = Atomics.exchange(si, this.sel + s, 0);
      while (sel !== 0) {
        const sbit = 31 - Math.clz32(sel & -sel);
        sel &= sel - 1;
        const w = s * 32 + sbit;
        let bits = Atomics.load(si, PENDING + w) & ~Atomics.load(si, MASK + w);
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
          this.hypercall.xentrace(TRC_GUEST_EVTCHN_UPCALL, port, 0, 0, 0);
          h(port);
        }
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
    while (this.running) {
      const dispatched = this.dispatch() > 0;
      let polled = false;
      if (!dispatched && this.pollers.length > 0) {
        const budget = this.wantsSpin() ? spinBudgetUs(this.policy) : 0;
        if (budget > 0) this.idle.polls++;
        if (budget > 0 && spinUntil(this.anyWork, budget)) {
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

  /** Every poller arms its event index and looks once more (RING_FINAL_CHECK_FOR_*). */
  private armPollers(): boolean {
    let found = false;
    for (const p of this.pollers) if (p.prepareToSleep()) found = true;
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
}
