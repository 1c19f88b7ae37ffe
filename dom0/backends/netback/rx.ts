/*
 * One queue's receive side (bridge → guest): frames wait in a backlog until the guest has posted
 * buffers, then are grant-copied into them in batches and answered in the same slots.
 *
 * Linux: drivers/net/xen-netback/rx.c (xenvif_rx_queue_tail with rx_queue_max; xenvif_rx_action:
 * up to RX_BATCH_SIZE packets per pass, each only when the ring holds enough requests for it
 * (xenvif_rx_ring_slots_available); xenvif_rx_copy_add gathers GNTTABOP_copy ops, flushed with one
 * hypercall every COPY_BATCH_SIZE ops (xenvif_rx_copy_flush), where a failed op turns its slot's
 * status into an error; then RING_PUSH_RESPONSES_AND_CHECK_NOTIFY).
 *
 * A burst of frames (one tx batch of another vif) arrives in one microtask and goes out together,
 * as NAPI does: one copy hypercall and at most one notification for the burst.
 */
import type { Kernel } from '../../../shared/kernel/kernel.ts';
import { GNTCOPY_dest_gref, GNTST_okay, newGnttabCopy, type GnttabCopy } from '../../../shared/public/grant_table.ts';
import { NETIF_RSP_ERROR, NETRXF_more_data, netif_rx_request, netif_rx_response } from '../../../shared/public/io/netif.ts';
import type { BackRing } from '../../../shared/public/io/ring.ts';
import { DOMID_SELF, PAGE_SIZE } from '../../../shared/public/xen.ts';
import type { Packet } from '../../lib/packet.ts';
import type { QueueOwner, QueueStats } from './owner.ts';

/** COPY_BATCH_SIZE and RX_BATCH_SIZE in Linux's rx.c. */
const COPY_BATCH = 64;
const RX_BATCH = 64;
/** Frames that may wait for a guest's rx buffers before more are dropped (Linux: rx_queue_max). */
export const RX_BACKLOG = 256;

export class NetbackRx {
  private readonly ops: GnttabCopy[] = [];
  private readonly req = netif_rx_request.create();
  private readonly rsp = netif_rx_response.create();
  /** Frames waiting for rx buffers: a ring of RX_BACKLOG. */
  private readonly backlog: (Packet | null)[] = new Array(RX_BACKLOG).fill(null);
  private head = 0;
  /** Frames waiting now. */
  count = 0;
  private readonly slotOfOp = new Int32Array(COPY_BATCH);
  private scheduled = false;

  constructor(
    private readonly k: Kernel,
    private readonly owner: QueueOwner,
    private readonly ring: BackRing,
    private readonly port: number,
    private readonly stats: QueueStats,
    private readonly stopped: () => boolean,
    /** Runs flush() inside the queue's guard (a frontend's fault ends at its own vif). */
    private readonly guarded: (run: () => void) => void,
  ) {
    for (let i = 0; i < COPY_BATCH; i++) this.ops.push(newGnttabCopy());
  }

  /** xenvif_rx_queue_tail: a frame for this guest (the caller's reference becomes ours). False: dropped. */
  enqueue(p: Packet): boolean {
    if (this.stopped() || this.count === RX_BACKLOG) {
      this.stats.rx_dropped++;
      p.release();
      return false;
    }
    this.backlog[(this.head + this.count) % RX_BACKLOG] = p;
    this.count++;
    if (!this.scheduled) {
      this.scheduled = true;
      queueMicrotask(this.flushLater);
    }
    return true;
  }

  private readonly flushLater = (): void => {
    this.scheduled = false;
    if (!this.stopped()) this.guarded(this.flushNow);
  };

  private readonly flushNow = (): void => this.flush();

  /** xenvif_rx_action: copy waiting frames into posted buffers, COPY_BATCH ops per hypercall. */
  flush(): void {
    const rx = this.ring;
    let frames = 0;
    let nOps = 0;
    while (this.count > 0 && frames < RX_BATCH) {
      const p = this.backlog[this.head]!;
      const need = p.nPages;
      if (rx.requestOverflow()) {
        this.owner.fatal(`rx req_prod ${rx.reqProd()} is more than ${rx.size} ahead of rsp_prod ${rx.rsp_prod_pvt}`);
        return;
      }
      if (rx.unconsumedRequests() < need) break; // wait for buffers (the queue arms req_event before sleeping)
      if (nOps + need > COPY_BATCH) {
        this.copy(nOps);
        nOps = 0;
      }
      let left = p.len;
      for (let s = 0; s < need; s++) {
        rx.takeRequest(this.req.words);
        const n = Math.min(left, PAGE_SIZE);
        const o = this.ops[nOps];
        o.flags = GNTCOPY_dest_gref;
        o.source.gfn = p.gfns[s];
        o.source.domid = DOMID_SELF;
        o.source.offset = 0;
        o.dest.ref = this.req.gref;
        o.dest.domid = this.owner.frontend;
        o.dest.offset = 0;
        o.len = n;
        o.status = 0;
        // The response is built now and written after the copy (its status may change then).
        this.slotOfOp[nOps] = (this.req.id & 0xffff) | (s + 1 < need ? 1 << 16 : 0);
        left -= n;
        nOps++;
      }
      this.backlog[this.head] = null;
      this.head = (this.head + 1) % RX_BACKLOG;
      this.count--;
      this.stats.rx_packets++;
      this.stats.rx_bytes += p.len;
      p.release();
      frames++;
    }
    if (nOps > 0) this.copy(nOps);
  }

  /** Run `n` rx copy ops and write their responses (a failed copy answers ERROR). */
  private copy(n: number): void {
    this.k.hypercall.gnttab_copy(this.ops, n);
    this.stats.grant_copy_ops += n;
    this.stats.copy_batches++;
    const r = this.rsp;
    const rx = this.ring;
    for (let i = 0; i < n; i++) {
      const o = this.ops[i];
      const tag = this.slotOfOp[i];
      r.clear();
      r.id = tag & 0xffff;
      r.offset = 0;
      r.flags = (tag >> 16) !== 0 ? NETRXF_more_data : 0;
      r.status = o.status === GNTST_okay ? o.len : NETIF_RSP_ERROR;
      rx.putResponse(r.words);
    }
    if (rx.pushResponses()) {
      this.stats.notifications++;
      this.k.events.notify(this.port);
    }
  }

  /** Drop every waiting frame (the queue stops). */
  drop(): void {
    while (this.count > 0) {
      this.backlog[this.head]!.release();
      this.backlog[this.head] = null;
      this.head = (this.head + 1) % RX_BACKLOG;
      this.count--;
    }
  }
}
