/*
 * Taking one packet off a vif's tx ring and checking it, as Linux's netback does, before any of
 * its data is touched.
 *
 * Linux: drivers/net/xen-netback/netback.c, xenvif_tx_build_gops (the per-packet loop),
 * xenvif_get_extras and xenvif_count_requests, xenvif_set_skb_gso. Each slot is copied out of the
 * shared ring once (RING_COPY_REQUEST, the XSA-155 lesson) and only the copy is read. The checks
 * and their outcomes, in Linux's order:
 *
 *   req_prod − req_cons > ring size        "Impossible number of requests"      fatal (XSA-39)
 *   extra_info flag, but no slot left      "Missing extra info"                 fatal
 *   extra type 0 or ≥ MAX                  "Invalid extra type"                 fatal
 *   more_data, but no slot left            "Asked for N slots but exceeds..."   fatal
 *   following slots ≥ fatal_skb_slots (20) "Malicious frontend using N slots"   fatal
 *   following slots ≥ 18 (LEGACY_SLOTS_MAX) "Too many slots"                    drop
 *   a later slot larger than what is left  "Invalid tx request, slot size..."   drop (buggy frontends)
 *   a later slot crossing its page         "Cross page boundary"                fatal
 *   first fragment < 14 bytes (ETH_HLEN)   "Bad packet size"                    drop
 *   first fragment crossing its page       "txreq.offset: ..., size: ..."       fatal
 *   GSO extra with size 0, or bad type     "GSO size must not be zero" / "Bad GSO type"   fatal
 *
 * "Following slots" counts the data slots after the first, as Linux's `slots` does: a packet of
 * 1 + 18 slots passes, 1 + 19 is dropped, 1 + 21 disables the vif. A drop consumes every slot of
 * the packet and answers each with NETIF_RSP_ERROR (extras with NETIF_RSP_NULL); fatal stops at
 * once and the caller disables the whole vif (xenvif_fatal_tx_err). MCAST_ADD / MCAST_DEL extras
 * are control requests, answered at once (ADD fails past 64 addresses).
 *
 * The first slot's size is the whole packet; after counting, `firstSize` is its own fragment
 * (size − Σ later sizes), as Linux rewrites txreq.size.
 */
import type { BackRing } from '../../../shared/public/io/ring.ts';
import {
  ETH_HLEN, FATAL_SKB_SLOTS_DEFAULT, NETIF_EXTRA_MCAST_ADDR, NETTXF_extra_info, NETTXF_more_data, XEN_NETBK_LEGACY_SLOTS_MAX,
  XEN_NETBK_MCAST_MAX, XEN_NETIF_EXTRA_FLAG_MORE, XEN_NETIF_EXTRA_TYPE_GSO, XEN_NETIF_EXTRA_TYPE_MAX,
  XEN_NETIF_EXTRA_TYPE_MCAST_ADD, XEN_NETIF_EXTRA_TYPE_MCAST_DEL, XEN_NETIF_GSO_TYPE_TCPV4, XEN_NETIF_GSO_TYPE_TCPV6,
  netif_extra_info, netif_tx_request,
} from '../../../shared/public/io/netif.ts';
import { PAGE_SIZE } from '../../../shared/public/xen.ts';

export const TX_NONE = 0;   // nothing to take (ring empty, or out of credit)
export const TX_PACKET = 1; // a good packet: plan holds its slots
export const TX_DROP = 2;   // consumed; answer every slot with ERROR
export const TX_FATAL = 3;  // disable the vif
export const TX_CONTROL = 4; // an MCAST request, answered with plan.controlStatus
export type TxVerdict = typeof TX_NONE | typeof TX_PACKET | typeof TX_DROP | typeof TX_FATAL | typeof TX_CONTROL;

const MAX_SLOTS = FATAL_SKB_SLOTS_DEFAULT + 2;

/** One packet's slots, copied out of the ring (ids for the responses, the rest for the copy). */
export class TxPlan {
  readonly gref = new Uint32Array(MAX_SLOTS);
  readonly offset = new Uint16Array(MAX_SLOTS);
  readonly size = new Uint16Array(MAX_SLOTS);
  readonly id = new Uint16Array(MAX_SLOTS);
  /** Data slots, the first included. */
  nSlots = 0;
  /** Extra-info slots after the first (each answered NETIF_RSP_NULL). */
  extraCount = 0;
  /** The whole packet's length (the first slot's size field). */
  total = 0;
  flags = 0;
  gsoSize = 0;
  gsoType = 0;
  controlStatus = 0;
  /** Why a packet was dropped or the vif disabled (for the log line). */
  reason = '';
}

export interface TxLimits {
  /** fatal_skb_slots (module parameter, default 20). */
  fatalSlots: number;
  /** The vif's registered multicast addresses (XEN_NETBK_MCAST_MAX at most). */
  mcast: Set<number>;
  /** Credit scheduling: may a packet of `size` bytes go now? (tx_credit_exceeded) */
  credit(size: number): boolean;
}

export const DEFAULT_FATAL_SLOTS = FATAL_SKB_SLOTS_DEFAULT;

const req = netif_tx_request.create();
const extra = netif_extra_info.create();

/** Take the next packet off `ring` into `plan`. */
export function buildTx(ring: BackRing, plan: TxPlan, lim: TxLimits): TxVerdict {
  const reqProd = ring.reqProd();
  if (((reqProd - ring.req_cons) >>> 0) > ring.size) {
    plan.reason = `Impossible number of requests: req_prod ${reqProd}, req_cons ${ring.req_cons}, size ${ring.size}`;
    return TX_FATAL;
  }
  let work = ring.unconsumedRequests(reqProd);
  if (work === 0) return TX_NONE;
  ring.takeRequest(req.words);
  // Credit scheduling looks at the copy's size; a packet that must wait is put back (req_cons
  // goes back one, as Linux breaks out before advancing it) and copied afresh next time.
  if (!lim.credit(req.size)) {
    ring.req_cons = (ring.req_cons - 1) >>> 0;
    return TX_NONE;
  }
  work--;
  plan.nSlots = 1;
  plan.extraCount = 0;
  plan.gsoSize = 0;
  plan.gsoType = 0;
  plan.reason = '';
  plan.gref[0] = req.gref;
  plan.offset[0] = req.offset;
  plan.id[0] = req.id;
  plan.flags = req.flags;
  let firstSize = req.size;
  plan.total = firstSize;
  let mcastAdd = -1;
  let mcastDel = -1;
  let gso = false;

  if ((req.flags & NETTXF_extra_info) !== 0) {
    do {
      if (work-- <= 0) {
        plan.reason = 'Missing extra info';
        return TX_FATAL;
      }
      ring.takeRequest(extra.words);
      plan.extraCount++;
      const t = extra.type;
      if (t === 0 || t >= XEN_NETIF_EXTRA_TYPE_MAX) {
        plan.reason = `Invalid extra type: ${t}`;
        return TX_FATAL;
      }
      if (t === XEN_NETIF_EXTRA_TYPE_GSO) {
        gso = true;
        plan.gsoSize = extra.gso_size;
        plan.gsoType = extra.gso_type;
      } else if (t === XEN_NETIF_EXTRA_TYPE_MCAST_ADD || t === XEN_NETIF_EXTRA_TYPE_MCAST_DEL) {
        const m = macAt(extra.bytes, NETIF_EXTRA_MCAST_ADDR);
        if (t === XEN_NETIF_EXTRA_TYPE_MCAST_ADD) mcastAdd = m;
        else mcastDel = m;
      }
    } while ((extra.flags & XEN_NETIF_EXTRA_FLAG_MORE) !== 0);
  }

  if (mcastAdd >= 0) {
    const full = lim.mcast.size >= XEN_NETBK_MCAST_MAX && !lim.mcast.has(mcastAdd);
    if (!full) lim.mcast.add(mcastAdd);
    plan.controlStatus = full ? -1 : 0;
    if (full) plan.reason = 'Too many multicast addresses';
    return TX_CONTROL;
  }
  if (mcastDel >= 0) {
    lim.mcast.delete(mcastDel);
    plan.controlStatus = 0;
    return TX_CONTROL;
  }

  // xenvif_count_requests: the slots that follow.
  let drop = '';
  if ((req.flags & NETTXF_more_data) !== 0) {
    let slots = 0;
    let more: boolean;
    do {
      if (slots >= work) {
        plan.reason = `Asked for ${slots + 1} slots but exceeds this limit (${work} published)`;
        return TX_FATAL;
      }
      if (slots >= lim.fatalSlots) {
        plan.reason = `Malicious frontend using ${slots} slots, threshold ${lim.fatalSlots}`;
        return TX_FATAL;
      }
      if (drop === '' && slots >= XEN_NETBK_LEGACY_SLOTS_MAX) drop = `Too many slots (${slots}) exceeding limit (${XEN_NETBK_LEGACY_SLOTS_MAX})`;
      ring.takeRequest(req.words);
      const i = plan.nSlots;
      if (i < MAX_SLOTS) {
        plan.id[i] = req.id;
        plan.gref[i] = req.gref;
        plan.offset[i] = req.offset;
        plan.size[i] = req.size;
        plan.nSlots++;
      }
      if (drop === '' && req.size > firstSize) drop = `Invalid tx request, slot size ${req.size} > remaining size ${firstSize}`;
      firstSize = (firstSize - req.size) & 0xffff;
      slots++;
      if (req.offset + req.size > PAGE_SIZE) {
        plan.reason = `Cross page boundary, txp->offset: ${req.offset}, size: ${req.size}`;
        return TX_FATAL;
      }
      more = (req.flags & NETTXF_more_data) !== 0;
    } while (more);
  }
  plan.size[0] = firstSize;
  if (drop !== '') {
    plan.reason = drop;
    return TX_DROP;
  }
  if (firstSize < ETH_HLEN) {
    plan.reason = `Bad packet size: ${firstSize}`;
    return TX_DROP;
  }
  if (plan.offset[0] + firstSize > PAGE_SIZE) {
    plan.reason = `txreq.offset: ${plan.offset[0]}, size: ${firstSize}, end: ${plan.offset[0] + firstSize}`;
    return TX_FATAL;
  }
  if (gso) {
    if (plan.gsoSize === 0) {
      plan.reason = 'GSO size must not be zero';
      return TX_FATAL;
    }
    if (plan.gsoType !== XEN_NETIF_GSO_TYPE_TCPV4 && plan.gsoType !== XEN_NETIF_GSO_TYPE_TCPV6) {
      plan.reason = `Bad GSO type ${plan.gsoType}`;
      return TX_FATAL;
    }
  }
  return TX_PACKET;
}

function macAt(b: Uint8Array, off: number): number {
  return (b[off] * 0x10000 + b[off + 1] * 0x100 + b[off + 2]) * 0x1000000 + b[off + 3] * 0x10000 + b[off + 4] * 0x100 + b[off + 5];
}
