/*
 * The guest's end of its xenstore ring page: how a DomU's xenbus client reaches xenstored.
 *
 * Xen/Linux: drivers/xen/xenbus/xenbus_comms.c (xb_write, xb_read, process_msg, the xenbus
 * interrupt handler) and xs_init / xenbus_init's use of start_info.store_mfn and store_evtchn;
 * the page is xs_wire.h's xenstore_domain_interface (shared/public/io/xs_wire.ts).
 *
 * The guest produces requests into `req` and consumes replies and watch events from `rsp`; both
 * are byte streams, so a 4 KiB request goes through the 1 KiB ring in pieces, each piece
 * published with req_prod. A piece is announced on the store event channel only if xenstored had
 * taken everything before it (xb_write: `if (prod <= intf->req_cons)`); otherwise xenstored is
 * still reading, and it looks at req_prod again before it stops (dom0/services/xenstored), so a
 * burst of requests costs one notification, not one each, and one wake-up of Dom0's vCPU.
 * Requests are written when sent, not at the end of the turn as Linux's xenbus thread would pick
 * them up: a kernel often sends reads and then does its own work while they travel (netfront's
 * prebuild), and a notification held to the end of that work would make Dom0 wait for it.
 * xenstored notifies back when it has consumed requests from a full ring or produced replies; the
 * handler then continues both directions. Messages are reassembled with XsMessageReader.
 *
 * The guest distrusts xenstored's indices too (Linux checks them the same way): an rsp_prod more
 * than a ring ahead of rsp_cons, or a reply announcing more than XENSTORE_PAYLOAD_MAX, ends the
 * transport, and every request in flight fails with EIO.
 */
import type { Kernel } from '../kernel.ts';
import { ByteRingView } from '../../public/io/byte-ring.ts';
import { ByteRingOutput } from '../byte-ring-output.ts';
import { XENSTORE_REQ_RING, XENSTORE_RSP_RING } from '../../public/io/xs_wire.ts';
import { PAGE_SIZE } from '../../public/xen.ts';
import { XenbusClient, type XsTransport } from './client.ts';
import { XsMessageReader } from './xs-message.ts';
import { viewAs } from '../../view.ts';

export class XsRingTransport implements XsTransport {
  onMessage: XsTransport['onMessage'] = null;
  onClose: XsTransport['onClose'] = null;
  /** Requests not yet wholly in the `req` ring. */
  private readonly req: ByteRingOutput;
  private readonly rsp: ByteRingView;
  private readonly reader = new XsMessageReader();
  private dead: string | null = null;
  /** notifications sent; suppressed: pieces published while xenstored was still reading (none sent). */
  readonly stats = { notifications: 0, suppressed: 0, interrupts: 0 };

  /** `page` is the mapped ring page as words; `notify` sends on the store event channel. */
  constructor(page: Int32Array, private readonly notify: () => void) {
    const bytes = viewAs(page, Uint8Array);
    this.req = new ByteRingOutput(new ByteRingView(bytes, page, XENSTORE_REQ_RING));
    this.rsp = new ByteRingView(bytes, page, XENSTORE_RSP_RING);
  }

  send(msg: Uint8Array): void {
    if (this.dead !== null) return;
    this.req.push(msg);
    if (this.req.pending === 1) this.pushRequests();
  }

  /** The store event channel's handler: xenstored made room or produced replies. */
  interrupt(): void {
    this.stats.interrupts++;
    if (this.dead !== null) return;
    this.pushRequests();
    this.takeReplies();
  }

  close(): void {
    this.fail('closed');
  }

  /**
   * xb_write: as much of the queue as fits (a full ring waits for xenstored's notification that it
   * made room), then one notification for all of it if xenstored had caught up (see the header).
   */
  private pushRequests(): void {
    const n = this.req.flush();
    if (n < 0) return this.fail('xenstored left req_cons more than a ring away from req_prod');
    if (n === 0) return;
    if (this.req.consumerCaughtUp) this.kick();
    else this.stats.suppressed++;
  }

  /** xb_read + process_msg: every complete message goes to the client. */
  private takeReplies(): void {
    const r = this.reader;
    let notify = false;
    for (;;) {
      const n = this.rsp.read(r.buffer, r.offset, r.wanted);
      if (n < 0) return this.fail('xenstored published rsp_prod more than a ring ahead of rsp_cons');
      notify ||= this.rsp.consumerShouldNotify;
      if (n === 0 && r.wanted > 0) break;
      const res = r.advance(n);
      if (res === 'oversize') return this.fail(`xenstored sent a ${r.header.len}-byte payload`);
      if (res === 'message') {
        const h = r.header;
        this.onMessage?.(h.type, h.req_id, h.tx_id, r.payload());
        r.reset();
      }
    }
    if (notify) this.kick();
  }

  private kick(): void {
    this.stats.notifications++;
    this.notify();
  }

  private fail(why: string): void {
    if (this.dead !== null) return;
    this.dead = why;
    this.req.clear();
    this.onClose?.(why);
  }
}

/**
 * xs_init for a guest: map nothing (the ring page is our own RAM, at start_info.store_mfn),
 * bind our end of the store event channel, and return the client. The kernel's idle loop
 * (k.events.run()) must be running for replies to arrive.
 */
export function xenbusInit(k: Kernel): XenbusClient {
  const port = k.si.store_evtchn;
  const transport = new XsRingTransport(k.memory.pageWords(k.si.store_gfn, true), () => k.events.notify(port));
  k.events.bind(port, () => transport.interrupt());
  const xs = new XenbusClient(transport);
  xs.tracer = k.hypercall;
  return xs;
}
