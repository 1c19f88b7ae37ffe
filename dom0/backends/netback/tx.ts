/*
 * One queue's transmit side (guest → bridge): take packets off the tx ring, check them, copy their
 * data into Dom0 packet buffers with one GNTTABOP_copy per batch, answer, hand the frames on.
 *
 * Linux: drivers/net/xen-netback/netback.c, xenvif_tx_action → xenvif_tx_build_gops (up to the
 * NAPI budget of packets, their copy ops gathered in queue->tx_copy_ops) → gnttab_batch_copy (one
 * hypercall for the whole batch) → xenvif_tx_submit (check each op, respond, hand the skb up).
 * The checks on each packet are tx-build.ts.
 *
 * As Linux does since 3.15 (and with the XSA-423 fix of 2022): only the first
 * XEN_NETBACK_TX_COPY_LEN (128) bytes of a packet, taken from as many slots as it needs, are
 * grant-copied into a Dom0 packet page (the linear part: every header the bridge reads is Dom0's own
 * copy, out of the guest's reach); the rest of each slot stays in the guest's page, mapped
 * read-only (./map-cache.ts), as the packet's frags. The frontend's buffer is still in use then, so
 * its response waits until the last user of the frame lets go (Linux: the zerocopy callback and
 * xenvif_tx_dealloc_action; here Packet.onFree), and the answers of a burst go out together.
 * When a slot cannot be mapped (the mapping budget is spent) the packet is copied whole instead.
 * `netbackParams.txMap = false` copies every packet whole, as ringvisor's netback first did
 * (one copy op per slot piece, the response at once), for comparison.
 *
 * Per packet of a UDP datagram from the guest stack (two slots: 42 header bytes, then the
 * payload): with txMap, two small copy ops (42 + 86 bytes) and one frag, whose mapping is a cache
 * hit after the first lap of the ring; without, two copy ops of the whole data.
 */
import type { Kernel } from '../../../shared/kernel/kernel.ts';
import { grantBudget } from '../../../backends/lib/grant-budget.ts';
import { TxMapCache } from './map-cache.ts';
import { GNTCOPY_source_gref, GNTST_okay, newGnttabCopy, type GnttabCopy } from '../../../shared/public/grant_table.ts';
import {
  NETIF_RSP_ERROR, NETIF_RSP_NULL, NETIF_RSP_OKAY, NETTXF_csum_blank, NETTXF_data_validated, netif_tx_response,
} from '../../../shared/public/io/netif.ts';
import { CHECKSUM_PARTIAL, CHECKSUM_UNNECESSARY, l4CsumOffset, partialCsumStart } from '../../../shared/kernel/net-csum.ts';
import { ETH_HDR, IP_PROTO } from '../../../shared/public/net/inet.ts';
import type { BackRing } from '../../../shared/public/io/ring.ts';
import { DOMID_SELF, PAGE_SIZE } from '../../../shared/public/xen.ts';
import type { Packet } from '../../lib/packet.ts';
import type { QueueOwner, QueueStats } from './owner.ts';
import { TX_CONTROL, TX_DROP, TX_FATAL, TX_NONE, TxPlan, buildTx } from './tx-build.ts';

/** Packets taken off the tx ring per turn (Linux: the NAPI budget, 64). */
export const TX_BUDGET = 64;
/** Packets whose copies share one GNTTABOP_copy: the whole budget, as xenvif_tx_action batches. */
const TX_BATCH = 64;
/** Copy ops per hypercall (Linux: tx_copy_ops[MAX_PENDING_REQS]); a packet needs at most 19 slots + 16 page boundaries = 35. */
const TX_COPY_OPS = 256;
const TX_MAX_OPS_PER_PACKET = 40;
/** XEN_NETBACK_TX_COPY_LEN: the bytes of each packet copied into Dom0's linear part. */
export const TX_COPY_LEN = 128;
/** MAX_PENDING_REQS: packets whose responses wait for their frags to be let go (one per ring slot at most). */
const MAX_PENDING = 256;
const MAX_SLOTS = 22;

/** Module parameters (Linux: /sys/module/xen_netback/parameters), read when a queue connects. */
export const netbackParams = { txMap: true };

export class NetbackTx {
  private readonly plans: TxPlan[] = [];
  private readonly pkts: (Packet | null)[] = new Array(TX_BATCH).fill(null);
  private readonly opEnd = new Int32Array(TX_BATCH);
  private readonly ops: GnttabCopy[] = [];
  private readonly rsp = netif_tx_response.create();
  /** Per packet of the batch: its pending index when its frags are mapped, else -1. */
  private readonly pendOf = new Int32Array(TX_BATCH);
  private readonly cache: TxMapCache | null;
  /** Pending packets: the slot ids to answer, the extras, the mappings they hold. */
  private readonly pendIds = new Uint16Array(MAX_PENDING * MAX_SLOTS);
  private readonly pendSlots = new Uint8Array(MAX_PENDING);
  private readonly pendExtras = new Uint8Array(MAX_PENDING);
  private readonly pendEnt = new Int16Array(MAX_PENDING * MAX_SLOTS);
  private readonly pendNEnt = new Uint8Array(MAX_PENDING);
  private readonly pendFree: number[] = [];
  private pushQueued = false;

  constructor(
    private readonly k: Kernel,
    private readonly owner: QueueOwner,
    private readonly ring: BackRing,
    private readonly port: number,
    private readonly stats: QueueStats,
    private readonly stopped: () => boolean,
  ) {
    for (let i = 0; i < TX_BATCH; i++) this.plans.push(new TxPlan());
    for (let i = 0; i < TX_COPY_OPS; i++) this.ops.push(newGnttabCopy());
    this.cache = netbackParams.txMap ? new TxMapCache(k, owner.frontend, grantBudget(k)) : null;
    for (let i = MAX_PENDING - 1; i >= 0; i--) this.pendFree.push(i);
  }

  /** The queue is going: mappings no packet uses are unmapped now, the others when let go. */
  close(): void {
    if (this.cache === null) return;
    this.cache.close();
    this.stats.grant_unmap_ops = this.cache.stats.unmaps;
  }

  /** Mappings still held (for tests). */
  get mapped(): number {
    return this.cache?.held ?? 0;
  }

  /** xenvif_tx_action: at most TX_BUDGET packets this turn. */
  serve(): void {
    let done = 0;
    while (!this.stopped() && done < TX_BUDGET) {
      const n = this.buildBatch();
      if (n === 0) break;
      done += n;
    }
  }

  /** Take up to TX_BATCH packets, copy them all with one hypercall, answer and hand them on. */
  private buildBatch(): number {
    const tx = this.ring;
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
      let p: Packet | null = null;
      let pend = -1;
      if (this.cache !== null && plan.total > TX_COPY_LEN && this.pendFree.length > 0) {
        p = owner.pool.alloc(TX_COPY_LEN);
        pend = p === null ? -1 : this.headAndFrags(plan, p, nOps);
        if (p !== null && pend < 0) p.release(); // a slot could not be mapped: copy it all below
        if (pend >= 0) nOps += this.headOps;
        else p = null;
      }
      if (p === null) {
        p = owner.pool.alloc(plan.total);
        if (p === null) {
          // Dom0 is out of packet buffers: drop, as Linux does when alloc_skb fails.
          this.stats.tx_errors++;
          this.respond(plan, NETIF_RSP_ERROR);
          continue;
        }
        nOps = this.copyOps(plan, p, nOps);
      }
      this.pkts[nPkts] = p;
      this.pendOf[nPkts] = pend;
      this.opEnd[nPkts] = nOps;
      nPkts++;
    }
    if (nPkts === 0) {
      this.push();
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
      const pend = this.pendOf[i];
      if (pend < 0 || !ok) this.respond(this.plans[i], ok ? NETIF_RSP_OKAY : NETIF_RSP_ERROR);
      if (pend >= 0) {
        if (ok) {
          // Answered when the frame is let go (its frags are the guest's pages).
          p.tag = pend;
          p.onFree = this.freed;
          this.stats.tx_deferred_responses++;
        } else {
          this.unpend(pend);
        }
      }
      if (!ok) {
        this.stats.tx_errors++;
        owner.dropped(`grant copy of packet id ${this.plans[i].id[0]} failed`);
        p.release();
        continue;
      }
      if (!this.csumSetup(this.plans[i].flags, p)) {
        // "Can't setup checksum in net_tx_action": freed quietly (its response still says OKAY).
        this.stats.tx_csum_errors++;
        p.release();
        continue;
      }
      this.stats.tx_packets++;
      this.stats.tx_bytes += p.len;
      owner.transmitted(p);
    }
    this.push();
    return nPkts;
  }

  /**
   * xenvif_tx_submit's checksum state, then checksum_setup: NETTXF_csum_blank makes the frame
   * CHECKSUM_PARTIAL, whose transport header must be found in Dom0's copy of its first bytes
   * (skb_checksum_setup: IPv4, TCP or UDP, not a fragment), else it is freed; data_validated alone
   * makes it CHECKSUM_UNNECESSARY. Read from the linear part only: Dom0's copy, out of the guest's reach.
   */
  private csumSetup(flags: number, p: Packet): boolean {
    if ((flags & NETTXF_csum_blank) !== 0) {
      const start = partialCsumStart(p.pages[0], Math.min(p.linLen, PAGE_SIZE));
      if (start < 0) return false;
      p.csum = CHECKSUM_PARTIAL;
      p.csumStart = start;
      p.csumOffset = l4CsumOffset(p.pages[0][ETH_HDR + IP_PROTO]);
      this.stats.tx_csum_partial++;
    } else if ((flags & NETTXF_data_validated) !== 0) {
      p.csum = CHECKSUM_UNNECESSARY;
    }
    return true;
  }

  /** Copy ops the last headAndFrags() added. */
  private headOps = 0;

  /**
   * xenvif_get_requests after the XSA-423 fix: copy ops for the first TX_COPY_LEN bytes into `p`'s
   * linear page, from as many slots as they span; the rest of each slot becomes a mapped frag.
   * Returns the packet's pending index, or -1 (nothing held) if a slot cannot be mapped.
   */
  private headAndFrags(plan: TxPlan, p: Packet, nOps: number): number {
    const cache = this.cache!;
    const pend = this.pendFree.pop()!;
    const base = pend * MAX_SLOTS;
    let nEnt = 0;
    let left = TX_COPY_LEN;
    let at = 0;
    const first = nOps;
    const dom = this.owner.frontend;
    for (let s = 0; s < plan.nSlots; s++) {
      let off = plan.offset[s];
      let size = plan.size[s];
      if (left > 0 && size > 0) {
        const n = Math.min(left, size);
        const o = this.ops[nOps++];
        o.flags = GNTCOPY_source_gref;
        o.source.ref = plan.gref[s];
        o.source.domid = dom;
        o.source.offset = off;
        o.dest.gfn = p.gfns[0];
        o.dest.domid = DOMID_SELF;
        o.dest.offset = at;
        o.len = n;
        o.status = 0;
        at += n;
        left -= n;
        off += n;
        size -= n;
      }
      if (size > 0) {
        const e = cache.get(plan.gref[s]);
        if (e < 0) {
          for (let k = 0; k < nEnt; k++) cache.release(this.pendEnt[base + k]);
          this.pendFree.push(pend);
          this.syncMapStats();
          return -1;
        }
        cache.hold(e);
        this.pendEnt[base + nEnt++] = e;
        p.addFrag(cache.gfn[e], off, size, cache.views[e]);
        this.stats.tx_frags_mapped++;
      }
    }
    for (let s = 0; s < plan.nSlots; s++) this.pendIds[base + s] = plan.id[s];
    this.pendSlots[pend] = plan.nSlots;
    this.pendExtras[pend] = plan.extraCount;
    this.pendNEnt[pend] = nEnt;
    this.headOps = nOps - first;
    this.syncMapStats();
    return pend;
  }

  private syncMapStats(): void {
    this.stats.grant_map_ops = this.cache!.stats.maps;
    this.stats.grant_unmap_ops = this.cache!.stats.unmaps;
  }

  /** A frame with mapped frags was let go: answer its slots (xenvif_tx_dealloc_action, then make_tx_response). */
  private readonly freed = (p: Packet): void => {
    const pend = p.tag;
    if (!this.stopped()) {
      const base = pend * MAX_SLOTS;
      this.respondSlots(this.pendIds, base, this.pendSlots[pend], this.pendExtras[pend], NETIF_RSP_OKAY);
      if (!this.pushQueued) {
        this.pushQueued = true;
        queueMicrotask(this.pushLater); // the answers of one burst go out with one push
      }
    }
    this.unpend(pend);
  };

  private readonly pushLater = (): void => {
    this.pushQueued = false;
    if (!this.stopped()) this.push();
  };

  /** Let go of a pending packet's mappings and its index. */
  private unpend(pend: number): void {
    const base = pend * MAX_SLOTS;
    for (let k = 0; k < this.pendNEnt[pend]; k++) this.cache!.release(this.pendEnt[base + k]);
    this.pendNEnt[pend] = 0;
    this.pendFree.push(pend);
    this.syncMapStats();
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
    this.respondSlots(plan.id, 0, plan.nSlots, plan.extraCount, status);
  }

  private respondSlots(ids: Uint16Array, base: number, nSlots: number, extras: number, status: number): void {
    const r = this.rsp;
    const tx = this.ring;
    r.clear();
    r.id = ids[base];
    r.status = status;
    tx.putResponse(r.words);
    for (let e = 0; e < extras; e++) {
      r.id = 0;
      r.status = NETIF_RSP_NULL;
      tx.putResponse(r.words);
    }
    for (let s = 1; s < nSlots; s++) {
      r.id = ids[base + s];
      r.status = status;
      tx.putResponse(r.words);
    }
  }

  /** RING_PUSH_RESPONSES_AND_CHECK_NOTIFY: a notification only if the frontend's rsp_event asks. */
  private push(): void {
    if (this.ring.pushResponses()) {
      this.stats.notifications++;
      this.stats.tx_notifications++;
      this.k.events.notify(this.port);
    }
  }
}
