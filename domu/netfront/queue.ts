/*
 * One netfront queue: a tx ring and an rx ring, their event channel(s), the tx pages and the rx
 * buffers the guest has posted.
 *
 * Linux: drivers/net/xen-netfront.c (struct netfront_queue, setup_netfront, xennet_start_xmit,
 * xennet_make_txreqs, xennet_tx_buf_gc, xennet_alloc_rx_buffers, xennet_poll, xennet_get_responses,
 * xennet_get_extras). The backend is not trusted either (the XSA-405 lesson): every response is
 * copied out once and checked before use:
 *
 *   rsp_prod − rsp_cons > ring size          "Illegal number of responses"  → device broken
 *   tx id ≥ ring size                        "Response has incorrect id"   → device broken
 *   tx id not in flight                      "Response for inactive request" → device broken
 *   rx status < 0, or offset + status > page  the packet is dropped, its slots recycled
 *   rx packet of more than 18 slots          "Too many slots", dropped
 *   rx extra-info of an unknown type         "Invalid extra type", dropped
 *   rx csum_blank on a frame that is not IPv4 TCP or UDP   checksum_setup fails, dropped
 *
 * Buffers, and where ringvisor differs: Linux grants each skb's own pages per packet and ends the
 * grants when the response comes. Here each tx id owns one page, granted read-only to the backend
 * once, and a frame is copied into the pages of the slots it uses (one slot per page it spans,
 * several chained by more_data: scatter-gather); each rx id owns one page granted read-write
 * once, re-posted as soon as the frame in it has been handed up. Netback grant-copies a packet's
 * first bytes and maps the rest read-only until the frame is let go, answering only then, so the
 * grants can stay; the slot and response rules are the protocol's.
 */
import type { Kernel } from '../../shared/kernel/kernel.ts';
import type { IdlePoller } from '../../shared/kernel/events.ts';
import {
  NETIF_RSP_NULL, NETIF_RSP_OKAY, NETIF_RX_SLOT, NETIF_TX_SLOT, NETRXF_csum_blank, NETRXF_data_validated, NETRXF_extra_info,
  NETRXF_more_data, NETTXF_csum_blank, NETTXF_data_validated, NETTXF_more_data,
  XEN_NETIF_EXTRA_FLAG_MORE, XEN_NETIF_EXTRA_TYPE_MAX, XEN_NETIF_NR_SLOTS_MIN, netif_extra_info, netif_rx_request,
  netif_rx_response, netif_tx_request, netif_tx_response,
} from '../../shared/public/io/netif.ts';
import { FrontRing } from '../../shared/public/io/ring.ts';
import { CHECKSUM_NONE, CHECKSUM_PARTIAL, CHECKSUM_UNNECESSARY, partialCsumStart } from '../../shared/kernel/net-csum.ts';
import { PAGE_SIZE } from '../../shared/public/xen.ts';
import { TRC_GUEST_NETFRONT_RX_POSTED } from '../../shared/public/trace.ts';

export interface QueueHooks {
  /** A frame arrived (valid only during the call), with its checksum state (shared/kernel/net-csum.ts). */
  receive(frame: Uint8Array, csum: number): void;
  /** Tx slots were freed. */
  txRoom(): void;
  /** The backend broke the protocol: stop the device. */
  broken(why: string): void;
}

export class NetfrontQueue implements IdlePoller {
  readonly tx: FrontRing;
  readonly rx: FrontRing;
  readonly txRef: number;
  readonly rxRef: number;
  readonly txPort: number;
  readonly rxPort: number;
  readonly stats = {
    tx_packets: 0, tx_bytes: 0, tx_slots: 0, tx_errors: 0, rx_packets: 0, rx_bytes: 0, rx_errors: 0,
    notifications: 0, interrupts: 0,
    /** Frames sent csum_blank; frames received csum_blank or data_validated. */
    tx_csum_blank: 0, rx_csum_blank: 0, rx_data_validated: 0,
  };
  private readonly ringGfns: number[];
  private readonly txPages: Uint8Array[] = [];
  private readonly txGfns: number[] = [];
  private readonly txRefs: number[] = [];
  private readonly txBusy: Uint8Array;
  private readonly freeTx: number[] = [];
  private readonly rxPages: Uint8Array[] = [];
  private readonly rxGfns: number[] = [];
  private readonly rxRefs: number[] = [];
  private readonly rxViews: (Uint8Array | null)[] = [];
  private readonly rxPageOff: number[] = [];
  private readonly txReq = netif_tx_request.create();
  private readonly txRsp = netif_tx_response.create();
  private readonly rxReq = netif_rx_request.create();
  private readonly rxRsp = netif_rx_response.create();
  private readonly extra = netif_extra_info.create();
  /** A slot's bytes gathered from several fragments before they go to its tx page (see transmit). */
  private readonly stage = new Uint8Array(PAGE_SIZE);
  private stageView = this.stage;
  /** A received frame is gathered here when it spans slots (64 KiB: XEN_NETIF_MAX_TX_SIZE). */
  private readonly gather = new Uint8Array(0x10000);
  private dead: string | null = null;
  private pushScheduled = false;
  /** The stack found the ring full and waits for room (netfront's queue is stopped). */
  wantRoom = false;

  /** `buffers` (a power of two ≤ 256): tx pages and posted rx buffers, bounded by the grant references the vCPU has. */
  constructor(private readonly k: Kernel, private readonly backend: number, split: boolean, private readonly hooks: QueueHooks, private readonly buffers = 256) {
    this.ringGfns = k.pages.allocMany(2);
    this.tx = new FrontRing([k.memory.pageWords(this.ringGfns[0], true)], NETIF_TX_SLOT, netif_tx_response.size);
    this.rx = new FrontRing([k.memory.pageWords(this.ringGfns[1], true)], NETIF_RX_SLOT, NETIF_RX_SLOT);
    this.tx.tracer = this.rx.tracer = k.hypercall; // ring push / consume records (TRC_GUEST)
    this.txRef = k.gnttab.grant(backend, this.ringGfns[0], false);
    this.rxRef = k.gnttab.grant(backend, this.ringGfns[1], false);
    this.txBusy = new Uint8Array(this.tx.size);
    for (let id = 0; id < buffers; id++) {
      const gfn = k.pages.alloc();
      this.txGfns.push(gfn);
      this.txPages.push(k.memory.page(gfn, true));
      this.txRefs.push(k.gnttab.grant(backend, gfn, true));
    }
    for (let id = buffers - 1; id >= 0; id--) this.freeTx.push(id);
    for (let id = 0; id < buffers; id++) {
      const gfn = k.pages.alloc();
      this.rxGfns.push(gfn);
      this.rxPages.push(k.memory.page(gfn, true));
      this.rxPageOff.push(this.rxPages[this.rxPages.length - 1].byteOffset);
      this.rxViews.push(null);
      this.rxRefs.push(k.gnttab.grant(backend, gfn, false));
    }
    if (split) {
      this.txPort = k.events.allocUnbound(backend, this.onTx);
      this.rxPort = k.events.allocUnbound(backend, this.onRx);
    } else {
      this.txPort = this.rxPort = k.events.allocUnbound(backend, this.onBoth);
    }
    // xennet_alloc_rx_buffers: post every buffer; the backend fills them in ring order.
    for (let i = 0; i < buffers; i++) this.postRx();
    this.rx.pushRequests();
    k.hypercall.xentrace(TRC_GUEST_NETFRONT_RX_POSTED, this.rxRef, buffers, 0, 0);
    k.events.addPoller(this);
  }

  get split(): boolean {
    return this.txPort !== this.rxPort;
  }

  private readonly onTx = (): void => { this.stats.interrupts++; this.reapTx(); };
  private readonly onRx = (): void => { this.stats.interrupts++; this.reapRx(); };
  private readonly onBoth = (): void => { this.stats.interrupts++; this.reapTx(); this.reapRx(); };

  /** Tx slots free now (a frame needs one per fragment piece). */
  get txFree(): number {
    return this.dead === null ? Math.min(this.freeTx.length, this.tx.freeRequests()) : 0;
  }

  /**
   * xennet_start_xmit: put one frame on the tx ring (the caller checked that its ⌈total / page⌉ slots ≤ txFree).
   * The frame's bytes are laid out in the tx pages as Linux's linear skb lies in its pages: the
   * fragments one after the other, one slot per page the frame spans (xennet_make_txreqs splits
   * the linear area at page boundaries). A UDP datagram of up to a page is one slot, as a Linux
   * guest's is (ip_append_data builds a linear skb for a plain sendto); a larger frame takes
   * several slots chained by more_data (scatter-gather). The bytes go into the page granted for
   * their slot (Linux grants the skb's own pages instead; ours are granted once). Published at the end of the current burst (a microtask), so a burst of
   * frames costs one index update and at most one notification.
   */
  transmit(frags: readonly Uint8Array[], total: number, csumBlank: boolean): void {
    const r = this.txReq;
    // xennet_start_xmit: CHECKSUM_PARTIAL goes as csum_blank | data_validated, on the first slot only.
    let csum = csumBlank ? NETTXF_csum_blank | NETTXF_data_validated : 0;
    if (csumBlank) this.stats.tx_csum_blank++;
    let f = 0;
    let at = 0; // within frags[f]
    for (let sent = 0; sent < total;) {
      const len = Math.min(PAGE_SIZE, total - sent);
      const id = this.freeTx.pop()!;
      this.txBusy[id] = 1;
      const page = this.txPages[id];
      // Fill this slot's page from the fragments, in order (zero-length ones take nothing: XSA-448).
      // One fragment: straight into the page. Several (headers, then a payload at byte 42): gathered
      // in plain memory first, then one copy into the page, as a copy into shared memory goes a word
      // at a time only when both ends are equally aligned (else byte by byte: 4x slower, and more).
      const direct = frags[f].length - at >= len;
      const dst = direct ? page : this.stage;
      for (let put = 0; put < len;) {
        const frag = frags[f];
        const k = Math.min(frag.length - at, len - put);
        if (k > 0) dst.set(k === frag.length ? frag : frag.subarray(at, at + k), put);
        put += k;
        at += k;
        if (at === frag.length) { f++; at = 0; }
      }
      if (!direct) {
        if (this.stageView.length !== len) this.stageView = this.stage.subarray(0, len); // a stream's frames are one size: no view per frame
        page.set(this.stageView);
      }
      r.clear();
      r.gref = this.txRefs[id];
      r.offset = 0;
      r.flags = (sent + len < total ? NETTXF_more_data : 0) | csum;
      csum = 0;
      r.id = id;
      r.size = sent === 0 ? total : len;
      this.tx.putRequest(r.words);
      this.stats.tx_slots++;
      sent += len;
    }
    this.stats.tx_packets++;
    this.stats.tx_bytes += total;
    this.schedulePush();
  }

  private schedulePush(): void {
    if (this.pushScheduled) return;
    this.pushScheduled = true;
    queueMicrotask(this.push);
  }

  private readonly push = (): void => {
    this.pushScheduled = false;
    if (this.dead !== null) return;
    if (this.tx.pushRequests()) {
      this.stats.notifications++;
      this.k.events.notify(this.txPort);
    }
  };

  /* ---- IdlePoller ---- */

  poll(): boolean {
    if (this.dead !== null) return false;
    const tx = this.tx.unconsumedResponses() !== 0;
    const rx = this.rx.unconsumedResponses() !== 0;
    if (tx) this.reapTx();
    if (rx) this.reapRx();
    return tx || rx;
  }

  busy(): boolean {
    return this.dead === null && this.freeTx.length < this.buffers;
  }

  prepareToSleep(): boolean {
    if (this.dead !== null) return false;
    // Tx completions only give buffers back (they are ours, granted once). While the stack waits
    // for room, ask to hear when half of what is in flight is done (the Xen tree's netfront did
    // so); otherwise only when all of it is, so a sender sleeping on something else (its peer's
    // acks) is not woken for completions at all. Either way a callback is always scheduled.
    const inFlight = (this.tx.req_prod_pvt - this.tx.rsp_cons) >>> 0;
    const tx = this.tx.finalCheckForResponsesAt(this.wantRoom ? (inFlight >> 1) + 1 : inFlight);
    const rx = this.rx.finalCheckForResponses();
    if (tx) this.reapTx();
    if (rx) this.reapRx();
    return tx || rx;
  }

  /** xennet_tx_buf_gc: take tx responses, checking each. */
  reapTx(): void {
    if (this.dead !== null) return;
    if (this.tx.responseOverflow()) return this.broke(`Illegal number of responses ${this.tx.unconsumedResponses()} on the tx ring`);
    let freed = 0;
    while (this.tx.unconsumedResponses() !== 0) {
      this.tx.takeResponse(this.txRsp.words);
      const status = this.txRsp.status;
      if (status === NETIF_RSP_NULL) continue;
      const id = this.txRsp.id;
      if (id >= this.buffers) return this.broke(`Response has incorrect id (${id})`);
      if (this.txBusy[id] !== 1) return this.broke(`Response for inactive request (id ${id})`);
      if (status !== NETIF_RSP_OKAY) this.stats.tx_errors++;
      this.txBusy[id] = 0;
      this.freeTx.push(id);
      freed++;
    }
    if (freed > 0) {
      this.wantRoom = false;
      this.hooks.txRoom();
    }
  }

  /** xennet_poll: take rx responses frame by frame, check them, hand frames up, re-post buffers. */
  reapRx(): void {
    if (this.dead !== null) return;
    const rx = this.rx;
    if (rx.responseOverflow()) return this.broke(`Illegal number of responses ${rx.unconsumedResponses()} on the rx ring`);
    let posted = 0;
    while (rx.unconsumedResponses() !== 0) {
      // Gather one frame: slots up to the one without more_data (and its extras).
      let len = 0;
      let slots = 0;
      let bad = '';
      let more = true;
      let frameSlot = -1;
      let frameOff = 0;
      let frameLen = 0;
      let frameFlags = 0;
      while (more) {
        if (rx.unconsumedResponses() === 0) {
          // The backend published part of a frame (netback never does): drop what we have.
          this.stats.rx_errors++;
          return this.finishRx(posted);
        }
        const idx = rx.rsp_cons & (this.buffers - 1); // the buffer posted at this index (see postRx)
        rx.takeResponse(this.rxRsp.words);
        slots++;
        const st = this.rxRsp.status;
        const off = this.rxRsp.offset;
        const flags = this.rxRsp.flags;
        more = (flags & NETRXF_more_data) !== 0;
        if (bad === '' && (st < 0 || off + st > PAGE_SIZE)) bad = `rx error status ${st} at offset ${off}`;
        else if (bad === '' && slots > XEN_NETIF_NR_SLOTS_MIN) bad = `Too many slots (${slots})`;
        else if (bad === '') {
          if (slots === 1) { frameSlot = idx; frameOff = off; frameLen = st; frameFlags = flags; }
          if (slots === 2) this.gather.set(this.rxPages[frameSlot].subarray(frameOff, frameOff + frameLen), 0);
          if (slots >= 2) this.gather.set(this.rxPages[idx].subarray(off, off + st), len);
          len += st;
        }
        posted += this.recycle();
        if ((flags & NETRXF_extra_info) !== 0) {
          // xennet_get_extras: each extra occupies a slot of its own, chained by FLAG_MORE.
          let more_extra = true;
          while (more_extra) {
            if (rx.unconsumedResponses() === 0) { bad ||= 'Missing extra info'; more = false; break; }
            rx.takeResponse(this.extra.words);
            posted += this.recycle();
            const t = this.extra.type;
            if (bad === '' && (t === 0 || t >= XEN_NETIF_EXTRA_TYPE_MAX)) bad = `Invalid extra type: ${t}`;
            more_extra = (this.extra.flags & XEN_NETIF_EXTRA_FLAG_MORE) !== 0;
          }
        }
      }
      if (bad !== '') {
        this.stats.rx_errors++;
        continue;
      }
      const frame = slots === 1 ? this.rxView(frameSlot, frameOff, frameLen) : this.gather.subarray(0, len);
      // The checksum state the backend gave (xennet_poll), then checksum_setup: a partial checksum
      // must be on an IPv4 TCP or UDP frame whose checksum field we hold, else the frame is dropped.
      let csum = CHECKSUM_NONE;
      if ((frameFlags & NETRXF_csum_blank) !== 0) {
        if (partialCsumStart(frame, frame.length) < 0) {
          this.stats.rx_errors++;
          continue;
        }
        csum = CHECKSUM_PARTIAL;
        this.stats.rx_csum_blank++;
      } else if ((frameFlags & NETRXF_data_validated) !== 0) {
        csum = CHECKSUM_UNNECESSARY;
        this.stats.rx_data_validated++;
      }
      this.stats.rx_packets++;
      this.stats.rx_bytes += len;
      this.hooks.receive(frame, csum);
    }
    this.finishRx(posted);
  }

  /** The view of a received frame in buffer `id`: the last one made for it again if it is the same range (a stream's are). */
  private rxView(id: number, off: number, len: number): Uint8Array {
    const v = this.rxViews[id];
    if (v !== null && v.byteOffset === this.rxPageOff[id] + off && v.length === len) return v;
    return (this.rxViews[id] = this.rxPages[id].subarray(off, off + len));
  }

  private finishRx(posted: number): void {
    if (posted > 0 && this.rx.pushRequests()) {
      this.stats.notifications++;
      this.k.events.notify(this.rxPort);
    }
  }

  /**
   * Re-post the buffer of the slot just consumed. The request index it goes to is 256 ahead of the
   * response just taken, so it names the same buffer id (netfront's rx id = index & (size − 1)).
   * The frame in it is handed up before the backend can fill it again: only after our push.
   */
  private recycle(): number {
    this.postRx();
    return 1;
  }

  private postRx(): void {
    // At most `buffers` requests are outstanding, so index r's buffer is free again by index r + buffers.
    const id = this.rx.req_prod_pvt & (this.buffers - 1);
    const r = this.rxReq;
    r.clear();
    r.id = id;
    r.gref = this.rxRefs[id];
    this.rx.putRequest(r.words);
  }

  private broke(why: string): void {
    if (this.dead !== null) return;
    this.dead = why;
    this.k.events.unbind(this.txPort);
    if (this.split) this.k.events.unbind(this.rxPort);
    this.hooks.broken(why);
  }

  get brokenReason(): string | null {
    return this.dead;
  }

  /** Give back rings, pages and ports (after the backend has let go). */
  free(): void {
    this.k.events.removePoller(this);
    this.k.events.close(this.txPort);
    if (this.split) this.k.events.close(this.rxPort);
    for (const ref of [this.txRef, this.rxRef, ...this.txRefs, ...this.rxRefs]) this.k.gnttab.endAccess(ref);
    for (const g of [...this.ringGfns, ...this.txGfns, ...this.rxGfns]) this.k.pages.release(g);
  }
}
