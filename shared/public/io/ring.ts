/*
 * The generic shared ring: one request/response ring on one or more shared pages, used by
 * every split device. A device supplies only its request and response layouts.
 *
 * Xen: xen/include/public/io/ring.h (DEFINE_RING_TYPES, SHARED_RING_INIT, FRONT_RING_INIT,
 * BACK_RING_ATTACH, RING_PUSH_REQUESTS_AND_CHECK_NOTIFY, RING_FINAL_CHECK_FOR_REQUESTS,
 * RING_COPY_REQUEST, RING_REQUEST_PROD_OVERFLOW, RING_RESPONSE_PROD_OVERFLOW).
 *
 * Layout. Page 0 begins with the 64-byte header; slots follow and may run on into further
 * pages (a multi-page ring is one buffer in Xen; here its pages are separate frames, so a slot
 * may straddle two of them and every slot access goes through the page list):
 *
 *   @0  u32 req_prod    the frontend publishes requests up to here
 *   @4  u32 req_event   the backend wants a notification when req_prod passes this
 *   @8  u32 rsp_prod    the backend publishes responses up to here
 *   @12 u32 rsp_event   the frontend wants a notification when rsp_prod passes this
 *   @16 u8  pvt[4]      device-private (netif uses one byte), then padding to 64
 *   @64 slots           size = largest power of two ≤ (bytes − 64) / slot; slot = max(req, rsp)
 *
 * Indices run freely as 32-bit counters and wrap at 2^32; a slot is `index & (size − 1)`, and
 * every comparison is a 32-bit difference, so wrap-around needs no special case.
 *
 * Ordering. Shared indices are read and written only with Atomics, whose sequential
 * consistency gives the barriers ring.h spells out: slot contents written before an
 * Atomics.store of the producer index are visible to whoever Atomics.loads that index
 * (ring.h's wmb), and the producer's store of its index followed by its load of the peer's
 * event index cannot be reordered (ring.h's mb before the notify check).
 *
 * Notification hold-off. A producer notifies only if the consumer's event index lies in the
 * range it just published: (new − event) < (new − old). A consumer about to sleep sets its
 * event index to "one more than I have consumed", then looks once more (the final check), so a
 * request published between its last look and its event-index store is never slept through.
 *
 * Trust. The backend treats the ring as hostile: it copies each request out before reading any
 * field (RING_COPY_REQUEST), and refuses a producer index more than one ring ahead of what it
 * has answered (RING_REQUEST_PROD_OVERFLOW). The frontend checks the response producer the
 * same way (RING_RESPONSE_PROD_OVERFLOW); checking each response's id is the device's job.
 *
 * Waiting. When a consumer has drained its ring it either arms its event index and sleeps at
 * once, or keeps looking for a bounded time first; that choice is the run's waiting policy
 * (shared/wait.ts), not the ring's. While a consumer looks without arming, its producer sends
 * no notifications at all: the hold-off above is what makes polling cheap.
 */
import * as trace from '../trace.ts';
// Copied once: an imported binding read per request costs some 15 ns under tsx (hypervisor/trace.ts).
const { TRC_GUEST_RING_CONSUME, TRC_GUEST_RING_PUSH } = trace;

/** Where a ring writes trace records: its kernel's HYPERVISOR_xentrace (hypercall.ts), or null. */
export interface RingTracer { xentrace(event: number, d0: number, d1: number, d2: number, d3: number): void }


export const sring = {
  req_prod: 0,
  req_event: 1,
  rsp_prod: 2,
  rsp_event: 3,
  /** Word index of the device-private bytes (netif's feature byte). */
  pvt: 4,
  HEADER_BYTES: 64,
  HEADER_WORDS: 16,
} as const;

const PAGE_BYTES = 4096;
const PAGE_WORD_SHIFT = 10;
const PAGE_WORD_MASK = (1 << PAGE_WORD_SHIFT) - 1;

/** __RING_SIZE: slots in a ring of `nrPages` pages with slots of `slotBytes`. */
export function ringSize(nrPages: number, slotBytes: number): number {
  const fit = Math.floor((nrPages * PAGE_BYTES - sring.HEADER_BYTES) / slotBytes);
  if (fit < 1) throw new RangeError(`a ${slotBytes}-byte slot does not fit in ${nrPages} page(s)`);
  return 1 << (31 - Math.clz32(fit));
}

/** The shared pages as words, and slot copies in and out. Both ends build one. */
class SharedRing {
  readonly size: number;
  readonly mask: number;
  readonly slotWords: number;
  readonly hdr: Int32Array;

  constructor(readonly pages: readonly Int32Array[], reqBytes: number, rspBytes: number) {
    const slotBytes = Math.max(reqBytes, rspBytes);
    if (slotBytes % 4 !== 0) throw new RangeError(`slot of ${slotBytes} bytes is not whole words`);
    this.size = ringSize(pages.length, slotBytes);
    this.mask = this.size - 1;
    this.slotWords = slotBytes >> 2;
    this.hdr = pages[0];
  }

  /** Copy slot `idx` out into private memory (RING_COPY_REQUEST / RING_COPY_RESPONSE). */
  copyOut(idx: number, dst: Int32Array): void {
    const base = sring.HEADER_WORDS + (idx & this.mask) * this.slotWords;
    const n = dst.length;
    if (this.pages.length === 1) {
      const p = this.pages[0];
      for (let k = 0; k < n; k++) dst[k] = p[base + k];
    } else {
      for (let k = 0; k < n; k++) {
        const w = base + k;
        dst[k] = this.pages[w >> PAGE_WORD_SHIFT][w & PAGE_WORD_MASK];
      }
    }
  }

  /** Copy a private request or response into slot `idx`. */
  copyIn(idx: number, src: Int32Array): void {
    const base = sring.HEADER_WORDS + (idx & this.mask) * this.slotWords;
    const n = src.length;
    if (this.pages.length === 1) {
      const p = this.pages[0];
      for (let k = 0; k < n; k++) p[base + k] = src[k];
    } else {
      for (let k = 0; k < n; k++) {
        const w = base + k;
        this.pages[w >> PAGE_WORD_SHIFT][w & PAGE_WORD_MASK] = src[k];
      }
    }
  }
}

/** The frontend's end: it produces requests and consumes responses. */
export class FrontRing {
  private readonly s: SharedRing;
  /** Private: requests written but not yet published. */
  req_prod_pvt: number;
  /** Private: responses consumed. */
  rsp_cons: number;
  /** Times the final check armed rsp_event (each allows at most one notification from the backend). */
  armed = 0;
  /** Trace points at push and consume (xentrace); null: none. */
  tracer: RingTracer | null = null;

  /**
   * SHARED_RING_INIT + FRONT_RING_INIT. Only the frontend initialises a ring: both producers
   * at `start` (0 in Xen; a test may start near 2^32 to prove wrap-around), both event indices
   * one past it, the rest of the header zero.
   */
  constructor(pages: readonly Int32Array[], reqBytes: number, rspBytes: number, start = 0) {
    this.s = new SharedRing(pages, reqBytes, rspBytes);
    const h = this.s.hdr;
    for (let w = 0; w < sring.HEADER_WORDS; w++) Atomics.store(h, w, 0);
    Atomics.store(h, sring.req_prod, start);
    Atomics.store(h, sring.rsp_prod, start);
    Atomics.store(h, sring.req_event, (start + 1) | 0);
    Atomics.store(h, sring.rsp_event, (start + 1) | 0);
    this.req_prod_pvt = start >>> 0;
    this.rsp_cons = start >>> 0;
  }

  get size(): number {
    return this.s.size;
  }

  /** RING_FREE_REQUESTS. */
  freeRequests(): number {
    return this.s.size - ((this.req_prod_pvt - this.rsp_cons) >>> 0);
  }

  /** RING_GET_REQUEST + copy: write a request into the next private slot. The caller checked freeRequests(). */
  putRequest(req: Int32Array): void {
    this.s.copyIn(this.req_prod_pvt, req);
    this.req_prod_pvt = (this.req_prod_pvt + 1) >>> 0;
  }

  /** RING_PUSH_REQUESTS_AND_CHECK_NOTIFY: publish; true if the backend asked to be told. */
  pushRequests(): boolean {
    const h = this.s.hdr;
    const old = Atomics.load(h, sring.req_prod);
    const now = this.req_prod_pvt;
    Atomics.store(h, sring.req_prod, now | 0);
    this.tracer?.xentrace(TRC_GUEST_RING_PUSH, now, old, 0, 0);
    const event = Atomics.load(h, sring.req_event);
    return ((now - event) >>> 0) < ((now - old) >>> 0);
  }

  /** RING_HAS_UNCONSUMED_RESPONSES. */
  unconsumedResponses(): number {
    return (Atomics.load(this.s.hdr, sring.rsp_prod) - this.rsp_cons) >>> 0;
  }

  /** RING_RESPONSE_PROD_OVERFLOW: the backend claims more responses than requests outstanding. */
  responseOverflow(): boolean {
    return this.unconsumedResponses() > this.s.size;
  }

  /** RING_COPY_RESPONSE at rsp_cons, and consume it. */
  takeResponse(rsp: Int32Array): void {
    this.s.copyOut(this.rsp_cons, rsp);
    this.rsp_cons = (this.rsp_cons + 1) >>> 0;
    this.tracer?.xentrace(TRC_GUEST_RING_CONSUME, this.rsp_cons, 0, 0, 0);
  }

  /** RING_FINAL_CHECK_FOR_RESPONSES: arm rsp_event, then look once more. */
  finalCheckForResponses(): boolean {
    if (this.unconsumedResponses() !== 0) return true;
    this.armed++;
    Atomics.store(this.s.hdr, sring.rsp_event, (this.rsp_cons + 1) | 0);
    return this.unconsumedResponses() !== 0;
  }

  /**
   * The final check with the event `ahead` responses on (1: the next one, as above). The Xen tree's
   * netfront (network_tx_buf_gc) asked for its tx event halfway through what was outstanding,
   * rsp_event = rsp_cons + (outstanding >> 1) + 1: one notification per half of the requests in
   * flight instead of one per batch the backend answers.
   */
  finalCheckForResponsesAt(ahead: number): boolean {
    if (this.unconsumedResponses() !== 0) return true;
    this.armed++;
    Atomics.store(this.s.hdr, sring.rsp_event, (this.rsp_cons + Math.max(1, ahead)) | 0);
    return this.unconsumedResponses() !== 0;
  }
}

/**
 * A ring's indices at one moment, for the tools that draw it (`ringvisor top`, the web view):
 * the four shared ones as the frontend published them, and the backend's private two.
 */
export interface RingIndices {
  size: number;
  req_prod: number;
  req_event: number;
  rsp_prod: number;
  rsp_event: number;
  req_cons: number;
  rsp_prod_pvt: number;
}

/** The backend's end: it consumes requests and produces responses. */
export class BackRing {
  private readonly s: SharedRing;
  /** Private: requests consumed. */
  req_cons: number;
  /** Private: responses written but not yet published. */
  rsp_prod_pvt: number;
  /** Times the final check armed req_event (each allows at most one notification from the frontend). */
  armed = 0;
  /** Trace points at push and consume (xentrace); null: none. */
  tracer: RingTracer | null = null;

  /**
   * BACK_RING_ATTACH: pick up a ring the frontend initialised, at whatever index it is
   * (0 for a new ring; a resumed one may be anywhere). Throws if the frontend has already
   * published more than a ring's worth of requests, which no honest frontend can.
   */
  constructor(pages: readonly Int32Array[], reqBytes: number, rspBytes: number) {
    this.s = new SharedRing(pages, reqBytes, rspBytes);
    const rsp_prod = Atomics.load(this.s.hdr, sring.rsp_prod) >>> 0;
    const req_prod = Atomics.load(this.s.hdr, sring.req_prod) >>> 0;
    if (((req_prod - rsp_prod) >>> 0) > this.s.size) {
      throw new RingOverflow(`ring attach: req_prod ${req_prod} is more than ${this.s.size} ahead of rsp_prod ${rsp_prod}`);
    }
    this.req_cons = rsp_prod;
    this.rsp_prod_pvt = rsp_prod;
  }

  get size(): number {
    return this.s.size;
  }

  /** The indices now, for display only (never for decisions: they may move as they are read). */
  indices(): RingIndices {
    const h = this.s.hdr;
    return {
      size: this.s.size,
      req_prod: Atomics.load(h, sring.req_prod) >>> 0,
      req_event: Atomics.load(h, sring.req_event) >>> 0,
      rsp_prod: Atomics.load(h, sring.rsp_prod) >>> 0,
      rsp_event: Atomics.load(h, sring.rsp_event) >>> 0,
      req_cons: this.req_cons,
      rsp_prod_pvt: this.rsp_prod_pvt,
    };
  }

  /** The frontend's published request producer (a hostile value until checked). */
  reqProd(): number {
    return Atomics.load(this.s.hdr, sring.req_prod) >>> 0;
  }

  /**
   * RING_REQUEST_PROD_OVERFLOW: a producer index more than a ring ahead of the responses we
   * have produced means the frontend is corrupt or hostile. The caller stops this ring.
   */
  requestOverflow(req_prod = this.reqProd()): boolean {
    return ((req_prod - this.rsp_prod_pvt) >>> 0) > this.s.size;
  }

  /**
   * RING_HAS_UNCONSUMED_REQUESTS: requests published and not yet taken, but never more than
   * there is room to answer (so a lying req_prod cannot make us overrun responses).
   */
  unconsumedRequests(req_prod = this.reqProd()): number {
    const req = (req_prod - this.req_cons) >>> 0;
    const room = this.s.size - ((this.req_cons - this.rsp_prod_pvt) >>> 0);
    return req < room ? req : room;
  }

  /** RING_COPY_REQUEST at req_cons, and consume it. Validate only the copy. */
  takeRequest(req: Int32Array): void {
    this.s.copyOut(this.req_cons, req);
    this.req_cons = (this.req_cons + 1) >>> 0;
    this.tracer?.xentrace(TRC_GUEST_RING_CONSUME, this.req_cons, 1, 0, 0);
  }

  /** Write a response (built whole in private memory) into the next slot. */
  putResponse(rsp: Int32Array): void {
    this.s.copyIn(this.rsp_prod_pvt, rsp);
    this.rsp_prod_pvt = (this.rsp_prod_pvt + 1) >>> 0;
  }

  /** RING_PUSH_RESPONSES_AND_CHECK_NOTIFY. */
  pushResponses(): boolean {
    const h = this.s.hdr;
    const old = Atomics.load(h, sring.rsp_prod);
    const now = this.rsp_prod_pvt;
    Atomics.store(h, sring.rsp_prod, now | 0);
    this.tracer?.xentrace(TRC_GUEST_RING_PUSH, now, old, 1, 0);
    const event = Atomics.load(h, sring.rsp_event);
    return ((now - event) >>> 0) < ((now - old) >>> 0);
  }

  /**
   * Ask to be notified when req_prod passes `after` (netback's rx side waits for *enough* buffers,
   * not for the next one: xenvif_rx_ring_slots_available sets req_event = req_prod + 1). The caller
   * looks again afterwards, as in the final check.
   */
  armRequestEvent(after: number): void {
    this.armed++;
    Atomics.store(this.s.hdr, sring.req_event, (after + 1) | 0);
  }

  /** RING_FINAL_CHECK_FOR_REQUESTS: arm req_event, then look once more. */
  finalCheckForRequests(): boolean {
    if (this.unconsumedRequests() !== 0) return true;
    this.armed++;
    Atomics.store(this.s.hdr, sring.req_event, (this.req_cons + 1) | 0);
    return this.unconsumedRequests() !== 0;
  }
}

/** A ring whose indices no honest peer could have produced. */
export class RingOverflow extends Error {
  override readonly name = 'RingOverflow';
}
