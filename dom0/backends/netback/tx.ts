/*
 * One queue's transmit side (guest → bridge): take packets off the tx ring, check them, copy their
 * data into Dom0 packet buffers with one GNTTABOP_copy per batch, answer, hand the frames on.
 *
 * Linux: drivers/net/xen-netback/netback.c, xenvif_tx_action → xenvif_tx_build_gops (up to the
 * NAPI budget of packets, their copy ops gathered in queue->tx_copy_ops) → gnttab_batch_copy (one
 * hypercall for the whole batch) → xenvif_tx_submit (check each op, respond, hand the skb up).
 * The checks on each packet are tx-build.ts.
 *
 * Where ringvisor differs: Linux grant-copies only the first XEN_NETBACK_TX_COPY_LEN (128) bytes
 * and grant-maps the rest as zero-copy frags, answering the frontend only when the last user of the
 * skb lets go (the zerocopy callback and the dealloc thread). Here every slot is grant-copied into
 * Dom0 packet pages, so a packet is answered as soon as its batch is copied and no mapping of a
 * guest's page outlives a batch. The cost of that choice, per packet: one copy op per slot piece
 * (a UDP datagram from the guest stack is two slots, header and payload: two ops) where Linux
 * needs one copy op for the header and one map op for the payload.
 */
import type { Kernel } from '../../../shared/kernel/kernel.ts';
import { GNTCOPY_source_gref, GNTST_okay, newGnttabCopy, type GnttabCopy } from '../../../shared/public/grant_table.ts';
import { NETIF_RSP_ERROR, NETIF_RSP_NULL, NETIF_RSP_OKAY, netif_tx_response } from '../../../shared/public/io/netif.ts';
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

export class NetbackTx {
  private readonly plans: TxPlan[] = [];
  private readonly pkts: (Packet | null)[] = new Array(TX_BATCH).fill(null);
  private readonly opEnd = new Int32Array(TX_BATCH);
  private readonly ops: GnttabCopy[] = [];
  private readonly rsp = netif_tx_response.create();

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
    this.push();
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
    const r = this.rsp;
    const tx = this.ring;
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

  /** RING_PUSH_RESPONSES_AND_CHECK_NOTIFY: a notification only if the frontend's rsp_event asks. */
  private push(): void {
    if (this.ring.pushResponses()) {
      this.stats.notifications++;
      this.k.events.notify(this.port);
    }
  }
}
