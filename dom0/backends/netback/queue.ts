/*
 * One queue of a vif as netback serves it: a tx ring (guest → bridge) and an rx ring (bridge →
 * guest), their event channels, and the frames waiting for the guest.
 *
 * Linux: drivers/net/xen-netback/netback.c (xenvif_tx_action: build the copy ops for a batch of
 * packets, one GNTTABOP_copy, check each op, respond, hand the frames up) and rx.c
 * (xenvif_rx_action: for each queued frame, wait until the guest has posted enough buffers, grant-
 * copy the frame into them in batches of COPY_BATCH_SIZE ops, answer in the same slots); the ring
 * mapping is interface.c's xenvif_map_frontend_data_rings and xenvif_connect_data.
 *
 * Where ringvisor differs: Linux grant-copies only the first 128 bytes of a tx packet and maps the
 * rest (zero-copy frags, unmapped later by a dealloc thread). Here the whole packet is grant-copied
 * into Dom0 packet pages: one mechanism, no mapping outlives a batch, and the bridge then hands a
 * Dom0-owned frame to the other vif, whose rx side grant-copies it into the other guest's buffer.
 *
 * Work is bounded per turn (TX_BUDGET packets, RX_BATCH frames): a guest that keeps its ring full
 * gets served again at the next turn of Dom0's idle loop, after everybody else.
 */
import type { Kernel } from '../../../shared/kernel/kernel.ts';
import type { IdlePoller } from '../../../shared/kernel/events.ts';
import { GNTCOPY_dest_gref, GNTCOPY_source_gref, GNTST_okay, newGnttabCopy, type GnttabCopy } from '../../../shared/public/grant_table.ts';
import {
  NETIF_RSP_ERROR, NETIF_RSP_NULL, NETIF_RSP_OKAY, NETIF_RX_SLOT, NETIF_TX_SLOT, NETRXF_more_data,
  netif_rx_request, netif_rx_response, netif_tx_response,
} from '../../../shared/public/io/netif.ts';
import { BackRing } from '../../../shared/public/io/ring.ts';
import { DOMID_SELF, PAGE_SIZE } from '../../../shared/public/xen.ts';
import type { Packet, PacketPool } from '../../lib/packet.ts';
import { GrantMapper } from '../blkback/grants.ts';
import { grantBudget } from '../../lib/grant-budget.ts';
import { TX_CONTROL, TX_DROP, TX_FATAL, TX_NONE, TxPlan, buildTx, type TxLimits } from './tx-build.ts';

/** Packets taken off the tx ring per turn (Linux: the NAPI budget, 64). */
export const TX_BUDGET = 64;
/** Packets whose copies share one GNTTABOP_copy. */
const TX_BATCH = 16;
/** COPY_BATCH_SIZE and RX_BATCH_SIZE in Linux's rx.c. */
const COPY_BATCH = 64;
/** Tx copy ops per hypercall; a packet needs at most 19 slots + 16 page boundaries = 35. */
const TX_COPY_OPS = 128;
const TX_MAX_OPS_PER_PACKET = 40;
const RX_BATCH = 64;
/** Frames that may wait for a guest's rx buffers before more are dropped (Linux: rx_queue_max). */
export const RX_BACKLOG = 256;

/** What a queue needs from its vif. */
export interface QueueOwner {
  readonly frontend: number;
  readonly pool: PacketPool;
  readonly limits: TxLimits;
  /** A good frame came off the tx ring (the vif hands it to the bridge; the reference is passed on). */
  transmitted(p: Packet): void;
  /** A malformed packet was dropped (rate-limited log). */
  dropped(why: string): void;
  /** The frontend broke the protocol: disable the whole vif. */
  fatal(why: string): void;
}

export interface QueueRings {
  txRef: number;
  rxRef: number;
  /** The frontend's ports: one for both rings, or one each (feature-split-event-channels). */
  txPort: number;
  rxPort: number;
}

export class NetbackQueue implements IdlePoller {
  readonly stats = {
    tx_packets: 0, tx_bytes: 0, tx_errors: 0, rx_packets: 0, rx_bytes: 0, rx_dropped: 0,
    notifications: 0, interrupts: 0, grant_copy_ops: 0, copy_batches: 0,
  };
  private tx: BackRing | null;
  private rx: BackRing | null;
  private readonly maps: GrantMapper;
  private readonly txPort: number;
  private readonly rxPort: number;
  private readonly plans: TxPlan[] = [];
  private readonly pkts: (Packet | null)[] = new Array(TX_BATCH).fill(null);
  private readonly opEnd = new Int32Array(TX_BATCH);
  private readonly ops: GnttabCopy[] = [];
  private readonly txRsp = netif_tx_response.create();
  private readonly rxReq = netif_rx_request.create();
  private readonly rxRsp = netif_rx_response.create();
  /** Frames waiting for rx buffers: a ring of RX_BACKLOG. */
  private readonly backlog: (Packet | null)[] = new Array(RX_BACKLOG).fill(null);
  private head = 0;
  private count = 0;
  private readonly rxSlotOfOp = new Int32Array(COPY_BATCH);
  private stopped = false;
  private rxScheduled = false;

  constructor(private readonly k: Kernel, private readonly owner: QueueOwner, readonly index: number, rings: QueueRings) {
    for (let i = 0; i < TX_BATCH; i++) this.plans.push(new TxPlan());
    for (let i = 0; i < TX_COPY_OPS; i++) this.ops.push(newGnttabCopy());
    this.maps = new GrantMapper(k, owner.frontend, grantBudget(k), true, 2);
    const page = (ref: number) => {
      const p = this.maps.page(ref, true);
      if (p === null) throw new Error(`cannot map ring ref ${ref} of d${owner.frontend}: ${this.maps.lastError}`);
      return new Int32Array(p.buffer, p.byteOffset, PAGE_SIZE >> 2);
    };
    let txPort = -1;
    try {
      this.tx = new BackRing([page(rings.txRef)], NETIF_TX_SLOT, netif_tx_response.size);
      this.rx = new BackRing([page(rings.rxRef)], NETIF_RX_SLOT, NETIF_RX_SLOT);
      if (rings.txPort === rings.rxPort) {
        txPort = k.events.bindInterdomain(owner.frontend, rings.txPort, this.onEvent);
        this.txPort = this.rxPort = txPort;
      } else {
        txPort = k.events.bindInterdomain(owner.frontend, rings.txPort, this.onEvent);
        this.txPort = txPort;
        this.rxPort = k.events.bindInterdomain(owner.frontend, rings.rxPort, this.onEvent);
      }
    } catch (e) {
      if (txPort >= 0) k.events.close(txPort);
      this.maps.releaseAll();
      throw e;
    }
    k.events.addPoller(this);
  }

  get split(): boolean {
    return this.txPort !== this.rxPort;
  }

  private readonly onEvent = (): void => {
    this.stats.interrupts++;
    this.guarded(this.workNow);
  };

  private readonly workNow = (): void => this.work();
  private readonly pollNow = (): void => { this.found = this.pollInner(); };
  private readonly armNow = (): void => { this.found = this.armInner(); };
  private found = false;

  /**
   * Every entry from Dom0's loop (event, poll, deferred flush) goes through here: whatever a
   * frontend's data makes go wrong ends at its own vif, never in Dom0's idle loop (issue 17).
   */
  private guarded(run: () => void): void {
    try {
      run();
    } catch (e) {
      this.owner.fatal(`internal error serving queue ${this.index}: ${e instanceof Error ? e.message : String(e)}`);
    }
  }

  /* ---- IdlePoller ---- */

  poll(): boolean {
    this.found = false;
    this.guarded(this.pollNow);
    return this.found;
  }

  prepareToSleep(): boolean {
    this.found = false;
    this.guarded(this.armNow);
    return this.found;
  }

  private pollInner(): boolean {
    if (this.stopped) return false;
    const tx = this.tx!.unconsumedRequests() !== 0;
    const rx = this.count > 0 && this.rx!.unconsumedRequests() !== 0;
    if (!tx && !rx) return false;
    this.work();
    return true;
  }

  private armInner(): boolean {
    if (this.stopped) return false;
    let found = this.tx!.finalCheckForRequests();
    if (this.count > 0) {
      const rx = this.rx!;
      const prod = rx.reqProd();
      rx.armRequestEvent(prod);
      if (rx.reqProd() !== prod) found = true;
    }
    if (found) this.work();
    return found;
  }

  /** Everything there is to do, bounded: one tx budget, then the rx backlog. */
  work(): void {
    if (this.stopped) return;
    this.serveTx();
    if (!this.stopped) this.flushRx();
  }

  /* ---- tx: guest → bridge ---- */

  serveTx(): void {
    let done = 0;
    while (!this.stopped && done < TX_BUDGET) {
      const n = this.buildBatch();
      if (n === 0) break;
      done += n;
    }
  }

  /** Take up to TX_BATCH packets, copy them all with one hypercall, answer and hand them on. */
  private buildBatch(): number {
    const tx = this.tx!;
    const owner = this.owner;
    let nPkts = 0;
    let nOps = 0;
    while (nPkts < TX_BATCH && nOps + TX_MAX_OPS_PER_PACKET <= TX_COPY_OPS) {
      const plan = this.plans[nPkts];
      const v = buildTx(tx, plan, owner.limits);
      if (v === TX_NONE) break;
      if (v === TX_FATAL) {
        owner.fatal(plan.reason);
        return 0;
      }
      if (v === TX_CONTROL) {
        this.respond(plan, plan.controlStatus);
        continue;
      }
      if (v === TX_DROP) {
        this.stats.tx_errors++;
        owner.dropped(plan.reason);
        this.respond(plan, NETIF_RSP_ERROR);
        continue;
      }
      const p = owner.pool.alloc(plan.total);
      if (p === null) {
        // Dom0 is out of packet buffers: drop, as Linux does when alloc_skb fails.
        this.stats.tx_errors++;
        this.respond(plan, NETIF_RSP_ERROR);
        continue;
      }
      this.pkts[nPkts] = p;
      nOps = this.copyOps(plan, p, nOps);
      this.opEnd[nPkts] = nOps;
      nPkts++;
    }
    if (nPkts === 0) {
      this.pushTx();
      return 0;
    }
    this.k.hypercall.gnttab_copy(this.ops, nOps);
    this.stats.grant_copy_ops += nOps;
    this.stats.copy_batches++;
    let op = 0;
    for (let i = 0; i < nPkts; i++) {
      const p = this.pkts[i]!;
      this.pkts[i] = null;
      let ok = true;
      for (; op < this.opEnd[i]; op++) if (this.ops[op].status !== GNTST_okay) ok = false;
      this.respond(this.plans[i], ok ? NETIF_RSP_OKAY : NETIF_RSP_ERROR);
      if (!ok) {
        this.stats.tx_errors++;
        owner.dropped(`grant copy of packet id ${this.plans[i].id[0]} failed`);
        p.release();
        continue;
      }
      this.stats.tx_packets++;
      this.stats.tx_bytes += p.len;
      owner.transmitted(p);
    }
    this.pushTx();
    return nPkts;
  }

  /** One copy op per piece of each slot that fits in one Dom0 page. */
  private copyOps(plan: TxPlan, p: Packet, nOps: number): number {
    let at = 0;
    const dom = this.owner.frontend;
    for (let s = 0; s < plan.nSlots; s++) {
      let left = plan.size[s];
      let src = plan.offset[s];
      while (left > 0) {
        const dstOff = at & (PAGE_SIZE - 1);
        const n = Math.min(left, PAGE_SIZE - dstOff);
        const o = this.ops[nOps++];
        o.flags = GNTCOPY_source_gref;
        o.source.ref = plan.gref[s];
        o.source.domid = dom;
        o.source.offset = src;
        o.dest.gfn = p.gfns[at >> 12];
        o.dest.domid = DOMID_SELF;
        o.dest.offset = dstOff;
        o.len = n;
        o.status = 0;
        at += n;
        src += n;
        left -= n;
      }
    }
    return nOps;
  }

  /** make_tx_response for every slot of a packet: data slots get `status`, extras NULL. */
  private respond(plan: TxPlan, status: number): void {
    const r = this.txRsp;
    const tx = this.tx!;
    r.clear();
    r.id = plan.id[0];
    r.status = status;
    tx.putResponse(r.words);
    for (let e = 0; e < plan.extraCount; e++) {
      r.id = 0;
      r.status = NETIF_RSP_NULL;
      tx.putResponse(r.words);
    }
    for (let s = 1; s < plan.nSlots; s++) {
      r.id = plan.id[s];
      r.status = status;
      tx.putResponse(r.words);
    }
  }

  private pushTx(): void {
    if (this.tx!.pushResponses()) {
      this.stats.notifications++;
      this.k.events.notify(this.txPort);
    }
  }

  /* ---- rx: bridge → guest ---- */

  /** A frame for this guest (the caller's reference becomes ours). False: dropped. */
  enqueue(p: Packet): boolean {
    if (this.stopped || this.count === RX_BACKLOG) {
      this.stats.rx_dropped++;
      p.release();
      return false;
    }
    this.backlog[(this.head + this.count) % RX_BACKLOG] = p;
    this.count++;
    if (!this.rxScheduled) {
      // Like NAPI: frames that arrive in one burst (one tx batch of another vif) go out together.
      this.rxScheduled = true;
      queueMicrotask(this.flushLater);
    }
    return true;
  }

  private readonly flushLater = (): void => {
    this.rxScheduled = false;
    if (!this.stopped) this.guarded(this.flushNow);
  };

  private readonly flushNow = (): void => this.flushRx();

  /** xenvif_rx_action: copy waiting frames into posted buffers, COPY_BATCH ops per hypercall. */
  flushRx(): void {
    const rx = this.rx!;
    let frames = 0;
    let nOps = 0;
    while (this.count > 0 && frames < RX_BATCH) {
      const p = this.backlog[this.head]!;
      const need = p.nPages;
      if (rx.requestOverflow()) {
        this.owner.fatal(`rx req_prod ${rx.reqProd()} is more than ${rx.size} ahead of rsp_prod ${rx.rsp_prod_pvt}`);
        return;
      }
      if (rx.unconsumedRequests() < need) break; // wait for buffers (prepareToSleep arms req_event)
      if (nOps + need > COPY_BATCH) {
        this.copyRx(nOps);
        nOps = 0;
      }
      let left = p.len;
      for (let s = 0; s < need; s++) {
        rx.takeRequest(this.rxReq.words);
        const n = Math.min(left, PAGE_SIZE);
        const o = this.ops[nOps];
        o.flags = GNTCOPY_dest_gref;
        o.source.gfn = p.gfns[s];
        o.source.domid = DOMID_SELF;
        o.source.offset = 0;
        o.dest.ref = this.rxReq.gref;
        o.dest.domid = this.owner.frontend;
        o.dest.offset = 0;
        o.len = n;
        o.status = 0;
        // The response is built now and written after the copy (its status may change then).
        this.rxSlotOfOp[nOps] = (this.rxReq.id & 0xffff) | (s + 1 < need ? 1 << 16 : 0);
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
    if (nOps > 0) this.copyRx(nOps);
  }

  /** Run `n` rx copy ops and write their responses (a failed copy answers ERROR). */
  private copyRx(n: number): void {
    this.k.hypercall.gnttab_copy(this.ops, n);
    this.stats.grant_copy_ops += n;
    this.stats.copy_batches++;
    const r = this.rxRsp;
    const rx = this.rx!;
    for (let i = 0; i < n; i++) {
      const o = this.ops[i];
      const tag = this.rxSlotOfOp[i];
      r.clear();
      r.id = tag & 0xffff;
      r.offset = 0;
      r.flags = (tag >> 16) !== 0 ? NETRXF_more_data : 0;
      r.status = o.status === GNTST_okay ? o.len : NETIF_RSP_ERROR;
      rx.putResponse(r.words);
    }
    if (rx.pushResponses()) {
      this.stats.notifications++;
      this.k.events.notify(this.rxPort);
    }
  }

  /** Stop serving (the vif is disabled or going away); frames waiting are dropped. */
  stop(): void {
    if (this.stopped) return;
    this.stopped = true;
    this.k.events.removePoller(this);
    this.k.events.unbind(this.txPort);
    if (this.split) this.k.events.unbind(this.rxPort);
    while (this.count > 0) {
      this.backlog[this.head]!.release();
      this.backlog[this.head] = null;
      this.head = (this.head + 1) % RX_BACKLOG;
      this.count--;
    }
  }

  /** xenvif_disconnect_data: stop, close the ports, unmap the rings. Safe to call twice. */
  disconnect(): void {
    this.stop();
    if (this.tx !== null) {
      this.k.events.close(this.txPort);
      if (this.split) this.k.events.close(this.rxPort);
    }
    this.tx = null;
    this.rx = null;
    this.maps.releaseAll();
  }
}
