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
import {
  NETIF_RSP_ERROR, NETRXF_csum_blank, NETRXF_data_validated, NETRXF_more_data, netif_rx_request, netif_rx_response,
} from '../../../shared/public/io/netif.ts';
import { CHECKSUM_PARTIAL, CHECKSUM_UNNECESSARY } from '../../../shared/kernel/net-csum.ts';
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
  /** The batch being gathered: ops, and per rx buffer its request id, more_data, bytes, last op. */
  private nOps = 0;
  private nSlots = 0;
  private curRef = 0;
  /** Frames whose ops are in the batch (released once it is copied). */
  private readonly held: (Packet | null)[] = new Array(COPY_BATCH).fill(null);
  private nHeld = 0;
  private readonly slotId = new Int32Array(COPY_BATCH);
  /** The response flags of each buffer: more_data, and on a frame's first its checksum state. */
  private readonly slotFlags = new Uint16Array(COPY_BATCH);
  private readonly slotBytes = new Int32Array(COPY_BATCH);
  private readonly slotOpEnd = new Int32Array(COPY_BATCH);
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

  /**
   * xenvif_rx_action: copy waiting frames into posted buffers, at most COPY_BATCH ops per hypercall.
   * A frame fills its buffers in order, each one whole before the next (xenvif_rx_next_chunk): an op
   * never crosses a page on either side, so a piece of the frame that straddles the end of a buffer
   * (a mapped frag after the linear part) takes two.
   */
  flush(): void {
    const rx = this.ring;
    let frames = 0;
    while (this.count > 0 && frames < RX_BATCH) {
      const p = this.backlog[this.head]!;
      const need = Math.max(1, Math.ceil(p.len / PAGE_SIZE));
      if (rx.requestOverflow()) {
        this.owner.fatal(`rx req_prod ${rx.reqProd()} is more than ${rx.size} ahead of rsp_prod ${rx.rsp_prod_pvt}`);
        return;
      }
      if (p.len > 0 && rx.unconsumedRequests() < need) break; // wait for buffers (the queue arms req_event before sleeping)
      this.backlog[this.head] = null;
      this.head = (this.head + 1) % RX_BACKLOG;
      this.count--;
      frames++;
      if (p.len === 0) { // nothing to copy (the bridge never passes one on)
        this.stats.rx_dropped++;
        p.release();
        continue;
      }
      // Ops for this frame: one per piece, plus one per buffer boundary a piece may cross.
      if (this.nOps + p.nPages + p.nFrags + need > COPY_BATCH || this.nSlots + need > COPY_BATCH) this.copy();
      this.fill(p, need);
      // Its pages (and mapped frags) are named by gfn in the ops: it is released after the copy.
      this.held[this.nHeld++] = p;
      this.stats.rx_packets++;
      this.stats.rx_bytes += p.len;
    }
    if (this.nOps > 0 || this.nHeld > 0) this.copy();
  }

  /** Copy ops for frame `p` (not empty) into `need` buffers taken off the ring as they fill. */
  private fill(p: Packet, need: number): void {
    this.dOff = PAGE_SIZE; // no buffer yet
    this.fSlots = 0;
    this.fNeed = need;
    // xenvif_rx_data_slot: a partial checksum goes on as csum_blank | data_validated, a verified one as data_validated.
    this.fCsum = p.csum === CHECKSUM_PARTIAL ? NETRXF_csum_blank | NETRXF_data_validated
      : p.csum === CHECKSUM_UNNECESSARY ? NETRXF_data_validated : 0;
    if (p.csum === CHECKSUM_PARTIAL) this.stats.rx_csum_blank++;
    else if (p.csum === CHECKSUM_UNNECESSARY) this.stats.rx_data_validated++;
    for (let i = 0, left = p.linLen; left > 0; i++) {
      const n = Math.min(left, PAGE_SIZE);
      this.piece(p.gfns[i], 0, n);
      left -= n;
    }
    for (let f = 0; f < p.nFrags; f++) this.piece(p.fragGfn[f], p.fragOff[f], p.fragLen[f]);
  }

  private dOff = 0;
  private fSlots = 0;
  private fNeed = 0;
  private fCsum = 0;

  /** xenvif_rx_copy_add for one piece of a frame, split where a buffer ends. */
  private piece(gfn: number, off: number, len: number): void {
    while (len > 0) {
      if (this.dOff === PAGE_SIZE) {
        this.ring.takeRequest(this.req.words);
        this.fSlots++;
        const sl = this.nSlots++;
        this.slotId[sl] = this.req.id & 0xffff;
        this.slotFlags[sl] = (this.fSlots < this.fNeed ? NETRXF_more_data : 0) | (this.fSlots === 1 ? this.fCsum : 0);
        this.slotBytes[sl] = 0;
        this.slotOpEnd[sl] = this.nOps;
        this.curRef = this.req.gref;
        this.dOff = 0;
      }
      const n = Math.min(len, PAGE_SIZE - this.dOff);
      const o = this.ops[this.nOps++];
      o.flags = GNTCOPY_dest_gref;
      o.source.gfn = gfn;
      o.source.domid = DOMID_SELF;
      o.source.offset = off;
      o.dest.ref = this.curRef;
      o.dest.domid = this.owner.frontend;
      o.dest.offset = this.dOff;
      o.len = n;
      o.status = 0;
      const sl = this.nSlots - 1;
      this.slotBytes[sl] += n;
      this.slotOpEnd[sl] = this.nOps;
      this.dOff += n;
      off += n;
      len -= n;
    }
  }

  /** Run the gathered ops with one GNTTABOP_copy and answer each buffer (any failed op: ERROR). */
  private copy(): void {
    if (this.nOps > 0) {
      this.k.hypercall.gnttab_copy(this.ops, this.nOps);
      this.stats.grant_copy_ops += this.nOps;
      this.stats.copy_batches++;
    }
    const r = this.rsp;
    const rx = this.ring;
    let op = 0;
    for (let sl = 0; sl < this.nSlots; sl++) {
      let ok = true;
      for (; op < this.slotOpEnd[sl]; op++) if (this.ops[op].status !== GNTST_okay) ok = false;
      r.clear();
      r.id = this.slotId[sl];
      r.offset = 0;
      r.flags = this.slotFlags[sl];
      r.status = ok ? this.slotBytes[sl] : NETIF_RSP_ERROR;
      rx.putResponse(r.words);
    }
    this.nOps = 0;
    this.nSlots = 0;
    for (let i = 0; i < this.nHeld; i++) {
      this.held[i]!.release();
      this.held[i] = null;
    }
    this.nHeld = 0;
    if (rx.pushResponses()) {
      this.stats.notifications++;
      this.stats.rx_notifications++;
      this.k.events.notify(this.port);
    }
  }

  /** Drop every waiting frame (the queue stops), and a batch cut short by a fatal error. */
  drop(): void {
    for (let i = 0; i < this.nHeld; i++) {
      this.held[i]!.release();
      this.held[i] = null;
    }
    this.nHeld = 0;
    this.nOps = 0;
    this.nSlots = 0;
    while (this.count > 0) {
      this.backlog[this.head]!.release();
      this.backlog[this.head] = null;
      this.head = (this.head + 1) % RX_BACKLOG;
      this.count--;
    }
  }
}
