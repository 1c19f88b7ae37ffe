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
 * the bits again, so it is seen by the next scan, never lost.
 *
 * Handlers run synchronously inside the scan, as interrupt handlers do: they should take what
 * the ring offers and hand anything slow to async code.
 */
import type { Hypercalls } from '../public/hypercall.ts';
import { shared_info, vcpu_info } from '../public/xen.ts';
import { NR_EVTCHN_PORTS } from '../public/event_channel.ts';

export type EventHandler = (port: number) => void;

const PENDING = shared_info.evtchn_pending >> 2;
const MASK = shared_info.evtchn_mask >> 2;

export class EventChannels {
  private readonly handlers: (EventHandler | undefined)[] = new Array(NR_EVTCHN_PORTS);
  private readonly upcall: number;
  private readonly sel: number;
  private running = false;
  /** Events handled, for the kernel's own statistics. */
  handled = 0;

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
          Atomics.and(si, PENDING + w, ~(1 << b));
          const port = w * 32 + b;
          const h = this.handlers[port];
          if (h !== undefined) {
            n++;
            h(port);
          }
        }
      }
    }
    this.handled += n;
    return n;
  }

  /**
   * The kernel's idle loop: handle what is pending, give async code its turn, and block in the
   * hypervisor when there is nothing to do. Runs until stop().
   */
  async run(): Promise<void> {
    this.running = true;
    while (this.running) {
      if (this.dispatch() === 0) await this.hypercall.sched_block();
      else await new Promise(setImmediate); // let timers and control messages in, too
    }
  }

  stop(): void {
    this.running = false;
  }
}
