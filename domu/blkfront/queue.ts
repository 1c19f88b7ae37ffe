/*
 * One blkfront queue: a ring, its event channel, and the requests in flight on it.
 *
 * Xen/Linux: drivers/block/xen-blkfront.c (struct blkfront_ring_info, blkif_queue_rw_req,
 * blkif_queue_discard_req, flush_requests, blkif_interrupt, blkif_completion, the shadow array).
 * A device negotiated with multi-queue has several of these, each with its own ring pages and
 * event channel.
 *
 * Each request in flight has a shadow entry indexed by its id (the ring slot count bounds both;
 * shadow.ts).
 * A response is trusted only as far as it checks out: the response producer may not run ahead of
 * the requests (RING_RESPONSE_PROD_OVERFLOW), the id must be in range and in flight, and the
 * operation must be the one sent. A backend that fails any of these is broken or hostile, and the
 * device is stopped ("illegal number of responses", "incorrect id"), as Linux does.
 *
 * Pages go to the backend by grant: with persistent grants negotiated, from the ring's bounded
 * pool (grant-pool.ts: a page seen before finds its grant, a new one takes a free or reclaimed
 * grant; see blkfront.ts for why ringvisor grants the I/O buffer's own pages where Linux copies
 * into its pool); otherwise each page is granted for one request (read-only when the backend
 * only reads it) and access is ended when the response arrives. A segment that can get no grant
 * (the pool is full of grants the backend still maps, or the grant table is used up) is copied
 * through one of the ring's bounce pages (bounce.ts); a request for which there are not enough
 * of those waits, in the device's queue, for this ring's next response. Running out of grants
 * is never an error.
 */
import type { Kernel } from '../../shared/kernel/kernel.ts';
import type { IdlePoller } from '../../shared/kernel/events.ts';
import {
  BLKIF_MAX_SEGMENTS_PER_REQUEST, BLKIF_OP_DISCARD, BLKIF_OP_INDIRECT, BLKIF_OP_READ, BLKIF_OP_WRITE, BLKIF_RSP_OKAY, BLKIF_SEG_OFFSET,
  BLKIF_SEGMENTS_PER_INDIRECT_FRAME, SECTORS_PER_PAGE, blkif_request, blkif_request_discard, blkif_request_indirect,
  blkif_response, set_indirect_gref, set_seg,
} from '../../shared/public/io/blkif.ts';
import { FrontRing } from '../../shared/public/io/ring.ts';
import { PAGE_SIZE } from '../../shared/public/xen.ts';
import * as trace from '../../shared/public/trace.ts';
import { dataViewOf } from '../../shared/view.ts';
import { BouncePages } from './bounce.ts';
import { GrantPool } from './grant-pool.ts';
import { newShadow, type Part, type Shadow } from './shadow.ts';
// Copied once: an imported binding read per request costs some 15 ns under tsx (hypervisor/trace.ts).
const { TRC_GUEST_BLKFRONT_COMPLETE, TRC_GUEST_BLKFRONT_SUBMIT } = trace;

export class BlkfrontQueue implements IdlePoller {
  readonly ring: FrontRing;
  readonly ringGfns: number[];
  readonly ringRefs: number[];
  readonly port: number;
  readonly stats = { requests: 0, segments: 0, notifications: 0, interrupts: 0, indirect: 0 };
  private readonly shadow: Shadow[] = [];
  private readonly freeIds: number[] = [];
  private readonly req = blkif_request.create();
  private readonly rsp = blkif_response.create();
  /** Per id: its indirect pages (granted read-only, persistently) when indirect is in use. */
  private readonly indirectPages: { gfns: number[]; refs: number[]; views: DataView[] }[] = [];
  private pushScheduled = false;
  private published = 0;
  /** True while reap() runs: completions may issue new requests, published once at its end. */
  reaping = false;
  private maxIndirectSegs = 0;
  private dead: string | null = null;
  /** With persistent grants: the ring's bounded pool (null without them, or before connect). */
  pool: GrantPool | null = null;
  /** Pages to copy through when no grant can be had; null until the device is connected. */
  bounce: BouncePages | null = null;

  constructor(
    private readonly k: Kernel,
    private readonly backend: number,
    private readonly handle: number,
    ringOrder: number,
    /** The device stops when a response does not check out. */
    private readonly onBroken: (why: string) => void,
    /** A part completed with a blkif status. */
    private readonly onComplete: (owner: unknown, status: number) => void,
    /** Called after responses were taken: the device issues what was waiting for a slot. */
    private readonly onSlotsFree: () => void,
  ) {
    this.ringGfns = k.pages.allocMany(1 << ringOrder);
    this.ring = new FrontRing(this.ringGfns.map((g) => k.memory.pageWords(g, true)), blkif_request.size, blkif_response.size);
    this.ring.tracer = k.hypercall;
    this.ringRefs = this.ringGfns.map((g) => k.gnttab.grant(backend, g, false));
    for (let id = this.ring.size - 1; id >= 0; id--) this.freeIds.push(id);
    for (let id = 0; id < this.ring.size; id++) {
      this.shadow.push(newShadow());
    }
    this.port = k.events.allocUnbound(backend, () => {
      this.stats.interrupts++;
      this.reap();
    });
    k.events.addPoller(this);
  }

  /**
   * Once the backend's limits are known (blkfront_setup_indirect, fill_grant_buffer): indirect
   * pages, the grant pool of at most `poolCap` grants when persistent grants were negotiated, and
   * one request's worth of bounce pages.
   */
  setupGrants(maxSegs: number, persistent: boolean, poolCap: number): void {
    this.maxIndirectSegs = maxSegs;
    if (this.bounce !== null) return;
    this.bounce = new BouncePages(this.k, this.backend, this.maxSegments);
    if (persistent) this.pool = new GrantPool(this.k.gnttab, this.backend, poolCap);
    if (maxSegs === 0) return;
    // The backend only reads indirect pages; with persistent grants every grant is read-write,
    // because the backend keeps each mapping for any later use (as Linux's frontend does).
    const readonly = !persistent;
    const pagesPerReq = Math.ceil(this.maxIndirectSegs / BLKIF_SEGMENTS_PER_INDIRECT_FRAME);
    for (let id = 0; id < this.ring.size; id++) {
      const gfns = this.k.pages.allocMany(pagesPerReq);
      this.indirectPages.push({
        gfns,
        refs: gfns.map((g) => this.k.gnttab.grant(this.backend, g, readonly)),
        views: gfns.map((g) => { const p = this.k.memory.page(g, true); return dataViewOf(p); }),
      });
    }
  }

  /** Segments one request may carry. */
  get maxSegments(): number {
    return this.maxIndirectSegs > 0 ? this.maxIndirectSegs : BLKIF_MAX_SEGMENTS_PER_REQUEST;
  }

  get hasRoom(): boolean {
    return this.dead === null && this.bounce !== null && this.freeIds.length > 0 && this.ring.freeRequests() > 0;
  }

  get inFlight(): number {
    return this.ring.size - this.freeIds.length;
  }

  /**
   * Put one part on the ring (the caller checked hasRoom). It is published by the next push():
   * at the end of the reap that made room for it, or in a microtask, so a burst of submissions
   * costs one index update and at most one notification (Linux's flush_requests after a plug).
   * False, with nothing changed, when its pages can get neither grants nor bounce pages now: the
   * caller keeps it waiting until this ring answers something.
   */
  issue(p: Part): boolean {
    const id = this.freeIds.pop()!;
    const sh = this.shadow[id];
    const data = p.nrSectors > 0 && p.op !== BLKIF_OP_DISCARD;
    if (data && !this.acquire(p, sh)) {
      this.freeIds.push(id);
      return false;
    }
    this.k.hypercall.xentrace(TRC_GUEST_BLKFRONT_SUBMIT, this.ringRefs[0]!, id, p.op, p.sector);
    const r = this.req;
    r.clear();
    r.handle = this.handle;
    r.id = id;
    r.sector_number = p.sector;
    if (p.op === BLKIF_OP_DISCARD) {
      r.operation = BLKIF_OP_DISCARD;
      r.dv.setBigUint64(blkif_request_discard.fields.nr_sectors[1], BigInt(p.nrSectors), true);
    } else if (p.nrSectors === 0) {
      r.operation = p.op; // flush: no segments
    } else {
      const nsegs = Math.ceil(p.nrSectors / SECTORS_PER_PAGE);
      if (nsegs <= BLKIF_MAX_SEGMENTS_PER_REQUEST) {
        r.operation = p.op;
        r.nr_segments = nsegs;
        this.fillSegments(r.dv, BLKIF_SEG_OFFSET, p, nsegs, sh);
      } else {
        const ind = this.indirectPages[id];
        r.operation = BLKIF_OP_INDIRECT;
        r.dv.setUint8(blkif_request_indirect.fields.indirect_op[1], p.op);
        r.dv.setUint16(blkif_request_indirect.fields.nr_segments[1], nsegs, true);
        r.dv.setUint16(blkif_request_indirect.fields.handle[1], this.handle, true);
        for (let pg = 0; pg * BLKIF_SEGMENTS_PER_INDIRECT_FRAME < nsegs; pg++) {
          const n = Math.min(BLKIF_SEGMENTS_PER_INDIRECT_FRAME, nsegs - pg * BLKIF_SEGMENTS_PER_INDIRECT_FRAME);
          this.fillSegments(ind.views[pg], 0, p, n, sh, pg * BLKIF_SEGMENTS_PER_INDIRECT_FRAME);
          set_indirect_gref(r.dv, pg, ind.refs[pg]);
        }
        this.stats.indirect++;
      }
      this.stats.segments += nsegs;
    }
    sh.busy = true;
    sh.wireOp = r.operation;
    sh.owner = p.owner;
    sh.op = p.op;
    sh.sector = p.sector;
    sh.nrSectors = p.nrSectors;
    sh.gfns = p.gfns;
    sh.firstPage = p.firstPage;
    this.ring.putRequest(r.words);
    this.stats.requests++;
    if (!this.pushScheduled && !this.reaping) {
      this.pushScheduled = true;
      queueMicrotask(this.push);
    }
    return true;
  }

  /**
   * A grant for each page of `p` into sh.refs: from the pool (persistent) or fresh for this
   * request (transient), else a bounce page (a write's data copied in now). All or nothing: when
   * a page can get none of them, what was taken is given back and the answer is false.
   */
  private acquire(p: Part, sh: Shadow): boolean {
    const nsegs = Math.ceil(p.nrSectors / SECTORS_PER_PAGE);
    const backendWrites = p.op !== BLKIF_OP_WRITE;
    const pool = this.pool;
    const bounce = this.bounce!;
    for (let seg = 0; seg < nsegs; seg++) {
      const gfn = p.gfns[p.firstPage + seg];
      if (pool !== null) {
        const e = pool.get(gfn);
        if (e >= 0) {
          sh.pooled.push(e);
          sh.refs.push(pool.refOf(e));
          continue;
        }
      } else {
        const ref = this.k.gnttab.claim();
        if (ref >= 0) {
          this.k.gnttab.grantRef(ref, this.backend, gfn, !backendWrites);
          sh.grefs.push(ref);
          sh.refs.push(ref);
          continue;
        }
      }
      if (bounce.available === 0) {
        this.release(sh, false);
        return false;
      }
      const i = bounce.take();
      const bytes = Math.min(SECTORS_PER_PAGE, p.nrSectors - seg * SECTORS_PER_PAGE) * 512;
      if (!backendWrites) bounce.copyIn(i, gfn, bytes);
      sh.bounce.push(i);
      sh.bounceGfn.push(gfn);
      sh.bounceBytes.push(bytes);
      sh.refs.push(bounce.refs[i]);
    }
    return true;
  }

  /**
   * blkif_completion: give back what a request held (ending its transient grants, returning pool
   * entries and bounce pages), first copying a successful read's bounce pages to the caller's.
   */
  private release(sh: Shadow, copyOut: boolean): void {
    for (const g of sh.grefs) this.k.gnttab.endAccess(g);
    if (this.pool !== null) for (const e of sh.pooled) this.pool.put(e);
    const bounce = this.bounce;
    if (bounce !== null) {
      for (let j = 0; j < sh.bounce.length; j++) {
        if (copyOut) bounce.copyOut(sh.bounce[j], sh.bounceGfn[j], sh.bounceBytes[j]);
        bounce.give(sh.bounce[j]);
      }
    }
    sh.refs.length = 0;
    sh.grefs.length = 0;
    sh.pooled.length = 0;
    sh.bounce.length = 0;
    sh.bounceGfn.length = 0;
    sh.bounceBytes.length = 0;
  }

  private fillSegments(dv: DataView, base: number, p: Part, n: number, sh: Shadow, from = 0): void {
    for (let i = 0; i < n; i++) {
      const seg = from + i;
      const left = p.nrSectors - seg * SECTORS_PER_PAGE;
      set_seg(dv, base, i, sh.refs[seg], 0, Math.min(SECTORS_PER_PAGE, left) - 1);
    }
  }

  /** flush_requests: publish everything queued so far, one notification at most. */
  readonly push = (): void => {
    this.pushScheduled = false;
    if (this.ring.req_prod_pvt === this.published) return;
    this.published = this.ring.req_prod_pvt;
    if (this.ring.pushRequests()) {
      this.stats.notifications++;
      this.k.events.notify(this.port);
    }
  };

  /*
   * Waiting for responses (IdlePoller), under the run's waiting policy (shared/wait.ts): under
   * `irq` the idle loop only makes the final check (prepareToSleep) and the backend's event does
   * the rest, as blkif_interrupt does in Linux; under `poll` it also spins on poll() while this
   * queue has requests in flight (busy), as blk-mq's polled I/O does.
   */
  poll(): boolean {
    if (this.dead !== null || this.ring.unconsumedResponses() === 0) return false;
    this.reap();
    return true;
  }

  busy(): boolean {
    return this.inFlight > 0;
  }

  /** Our answers come from whoever blkback runs on: the remote end of our event channel. */
  peerPort(): number {
    return this.dead === null ? this.port : -1;
  }

  prepareToSleep(): boolean {
    // Arm even with nothing in flight: another queue's completion, handled later in this same
    // round, may issue a request here before the vCPU sleeps.
    if (this.dead !== null) return false;
    if (!this.ring.finalCheckForResponses()) return false;
    this.reap();
    return true;
  }

  /** blkif_interrupt: take every response, checking each. */
  reap(): void {
    if (this.dead !== null) return;
    if (this.ring.responseOverflow()) return this.broken(`illegal number of responses (${this.ring.unconsumedResponses()})`);
    let n = 0;
    this.reaping = true;
    try {
      while (this.ring.unconsumedResponses() !== 0) {
        this.ring.takeResponse(this.rsp.words);
        const id = this.rsp.id;
        const sh = id < this.shadow.length ? this.shadow[id] : undefined;
        if (sh === undefined || !sh.busy) return this.broken(`response has incorrect id (${id})`);
        if (this.rsp.operation !== sh.wireOp) return this.broken(`response has incorrect operation (${this.rsp.operation} instead of ${sh.wireOp})`);
        this.release(sh, this.rsp.status === BLKIF_RSP_OKAY && sh.op === BLKIF_OP_READ);
        const owner = sh.owner;
        sh.busy = false;
        sh.owner = null;
        this.freeIds.push(id);
        n++;
        this.k.hypercall.xentrace(TRC_GUEST_BLKFRONT_COMPLETE, this.ringRefs[0]!, id, this.rsp.status, 0);
        this.onComplete(owner, this.rsp.status);
      }
      if (n > 0) this.onSlotsFree();
    } finally {
      this.reaping = false;
    }
    this.push();
  }

  private broken(why: string): void {
    this.dead = why;
    this.k.events.unbind(this.port);
    this.onBroken(why);
    this.abandon();
  }

  get brokenReason(): string | null {
    return this.dead;
  }

  /**
   * blkif_recover's first half, after the backend died (it has unmapped everything): every part
   * still in flight, in the order it was issued, goes into `into` to be issued again on the next
   * backend, and its transient grants are ended. The caller has reaped what was answered first.
   */
  takeUnanswered(into: Part[]): void {
    const ids = [];
    for (let id = 0; id < this.shadow.length; id++) if (this.shadow[id].busy) ids.push(id);
    // Ids come from a stack, so the issue order is lost; the sector order is as good for a disk.
    ids.sort((a, b) => this.shadow[a].sector - this.shadow[b].sector);
    for (const id of ids) {
      const sh = this.shadow[id];
      this.release(sh, false);
      into.push({ op: sh.op, sector: sh.sector, nrSectors: sh.nrSectors, gfns: sh.gfns, firstPage: sh.firstPage, owner: sh.owner });
      sh.busy = false;
      sh.owner = null;
      this.freeIds.push(id);
    }
  }

  /** The parts still in flight (to fail them on teardown). */
  abandon(): void {
    for (const sh of this.shadow) {
      if (!sh.busy) continue;
      this.release(sh, false);
      sh.busy = false;
      const owner = sh.owner;
      sh.owner = null;
      this.onComplete(owner, -1);
    }
  }

  /** Give back the ring, indirect pages, pool, bounce pages and port (after the backend has unmapped them). */
  free(): void {
    this.k.events.close(this.port);
    this.pool?.endAll();
    this.bounce?.free();
    for (const ref of this.ringRefs) this.k.gnttab.endAccess(ref);
    for (const ind of this.indirectPages) for (const ref of ind.refs) this.k.gnttab.endAccess(ref);
    for (const g of this.ringGfns) this.k.pages.release(g);
    for (const ind of this.indirectPages) for (const g of ind.gfns) this.k.pages.release(g);
  }
}
