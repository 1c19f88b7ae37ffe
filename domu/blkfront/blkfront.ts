/*
 * blkfront: the paravirtual disk as a DomU sees it, behind the guest's one BlockDevice
 * interface.
 *
 * Xen/Linux: drivers/block/xen-blkfront.c (blkfront_probe, talk_to_blkback, setup_blkring,
 * blkfront_connect, blkfront_setup_indirect, blkif_queue_request's splitting, blkif_release);
 * the wire is shared/public/io/blkif.ts, the handshake shared/kernel/xenbus/frontend.ts.
 *
 * Handshake: when the backend reaches InitWait, read what it offers (max-ring-page-order,
 * multi-queue-max-queues), make the rings and event channels, write ring-ref / ring-page-order /
 * ring-refN, event-channel (per queue-N/ with several queues), protocol and feature-persistent in
 * one transaction, go Initialised. When the backend is Connected, read sectors, info,
 * sector-size and the feature keys (a missing key counts as "0"), set up indirect pages, go
 * Connected. Each feature is used only where both sides offer it, and each can be switched off
 * here (BlkfrontOptions) or in the backend's disk config.
 *
 * Data: a block request is split into blkif requests of at most the negotiated segments
 * (11, or the indirect maximum), each page of the caller's buffer one segment. Requests are
 * spread over the queues round-robin and wait in a software queue when every ring is full:
 * ./io.ts, the class this one extends, with the BlockDevice calls and the completions.
 *
 * Persistent grants, and where ringvisor differs from Linux: Linux keeps a pool of persistently
 * granted pages and copies each bio's data through them, because a bio's pages are arbitrary
 * page-cache pages it must not leave granted. ringvisor's callers do I/O on dedicated buffers
 * (allocIoBuffer), so blkfront grants a buffer's own pages and keeps the grant for the next
 * request on that page, and the data is not copied in the guest. The grants are bounded as
 * Linux's are: each ring has a pool of at most as many as it can have segments in flight (and
 * no more than its share of this vCPU's grant table), ends at completion each grant the backend
 * did not keep mapped, reuses the ones it kept, and reclaims the least recently used one the
 * backend has let go since when a new page needs one; when none can be had, the segment is
 * copied through a bounce page, and when those are busy the request waits (queue.ts,
 * grant-pool.ts, bounce.ts). Pages the caller frees stay granted until their grant is reclaimed
 * (at most the pool's bound), as the buffers' owner gives blkfront no word of it. The protocol is the same: the frontend reuses
 * grants, the backend keeps them mapped (up to its own limit, past which it maps per request
 * and purges the least recently used).
 *
 * A backend that dies (xen-blkfront.c blkfront_resume, blkif_recover). When the backend goes to
 * Closed without passing through Closing (shared/kernel/xenbus/frontend.ts says why that means it
 * died), suspend() takes every response already on the rings (those requests were answered),
 * keeps every part still in flight, and gives back the rings, grants and ports; the device stays,
 * its callers keep waiting, and new requests queue. When a backend reaches InitWait again, the
 * handshake runs as the first time (new rings sized to what the new backend offers), and connect()
 * issues the kept parts again before anything that queued meanwhile, each split again to the new
 * backend's segment limit. A part is completed only by a response to it, so each request is
 * answered once: one answered before the death was reaped then, one that was not is answered by
 * the new backend. Re-issuing a write the old backend had half done writes the same data again.
 * The time from the new backend's InitWait to the first re-issued part answered is kept
 * (`recoveryMs`) with the counts of recoveries and re-issued parts.
 *
 * A guest that suspends (save, migration) does not disconnect: quiesce() stops issuing and resolves
 * once what is on the rings has been answered, the backend staying Connected (see quiesce for why
 * the requests finish rather than wait in the shadow for a re-issue, as Linux's do).
 */
import type { Kernel } from '../../shared/kernel/kernel.ts';
import type { XenbusDevice } from '../../shared/kernel/xenbus/device.ts';
import type { FrontendDriver } from '../../shared/kernel/xenbus/frontend.ts';
import { BLKIF_MAX_SEGMENTS_PER_REQUEST, BLKIF_RSP_ERROR, SECTORS_PER_PAGE, XS_BLK } from '../../shared/public/io/blkif.ts';
import type { BlockDevice } from '../block/blkdev.ts';
import { BlkfrontIo } from './io.ts';
import { BlkfrontQueue } from './queue.ts';
import type { Part } from './shadow.ts';
import { splitParts } from './split.ts';
import { blkfrontStats } from './stats.ts';
import { vbdName } from './vbd-name.ts';
import { readBackendKeys, writeFrontendKeys } from './xenbus-keys.ts';

export interface BlkfrontOptions {
  /** Largest ring this frontend will use, as log2 pages (Linux's max_ring_page_order). */
  maxRingPageOrder?: number;
  /** Most queues (Linux: one per vCPU, at most max_queues). */
  maxQueues?: number;
  /** Most segments per indirect request (Linux's max_indirect_segments, default 32); 0 = off. */
  maxIndirectSegments?: number;
  /** Offer persistent grants (feature-persistent). */
  persistent?: boolean;
  /**
   * Most persistent grants per ring (default, as Linux: what the ring can have in flight, its
   * slots times a request's segments; here also within a share of the grant table). Fewer make
   * segments beyond them go through bounce pages.
   */
  maxPersistentGrants?: number;
}

/**
 * The share of this vCPU's free grant references one device's pools may take in all (a
 * quarter): the rest stays for its rings' transient grants, other disks and the network.
 */
const POOL_SHARE_OF_GRANT_TABLE = 4;

export class Blkfront extends BlkfrontIo implements BlockDevice, FrontendDriver {
  /** Most persistent grants each ring keeps (grant-pool.ts), chosen at connect. */
  poolGrants = 0;
  private readonly opts: Required<BlkfrontOptions>;
  /** Parts in flight when the backend died, to issue again on the next one (blkif_recover). */
  private recovered: Part[] | null = null;
  private recoveryT0 = 0;
  private suspendT0 = 0;
  /** recoveryMs: the new backend's InitWait → first re-issued answer; stallMs: the old one's death → the same. */
  readonly recovery = { recoveries: 0, reissued: 0, recoveryMs: 0, stallMs: 0 };
  private devid = 0;
  private backendId = 0;
  private ready!: () => void;
  private gone!: () => void;
  /** Resolves when the device is Connected. */
  readonly connected = new Promise<void>((r) => { this.ready = r; });
  /** Resolves when the device is closed and everything given back. */
  readonly closed = new Promise<void>((r) => { this.gone = r; });
  shutdownHook: (() => Promise<void>) | null = null;

  constructor(k: Kernel, opts: BlkfrontOptions = {}) {
    super(k);
    this.opts = {
      maxRingPageOrder: opts.maxRingPageOrder ?? 2,
      maxQueues: opts.maxQueues ?? 4,
      maxIndirectSegments: opts.maxIndirectSegments ?? 32,
      persistent: opts.persistent ?? true,
      maxPersistentGrants: opts.maxPersistentGrants ?? Infinity,
    };
  }

  /* ---- xenbus: FrontendDriver ---- */

  async publish(dev: XenbusDevice, t: number): Promise<void> {
    const xs = dev.xs;
    if (this.recovered !== null && this.recoveryT0 === 0) this.recoveryT0 = performance.now();
    if (this.queues.length === 0) {
      this.devid = Number(dev.nodename.split('/').pop());
      this.name = vbdName(this.devid);
      this.backendId = dev.otherendId;
      const maxOrder = await xs.readUnsigned(`${dev.otherend}/${XS_BLK.max_ring_page_order}`, 0);
      const maxQueues = await xs.readUnsigned(`${dev.otherend}/${XS_BLK.multi_queue_max_queues}`, 1);
      this.negotiated.ringPageOrder = Math.min(this.opts.maxRingPageOrder, maxOrder);
      this.negotiated.queues = Math.max(1, Math.min(this.opts.maxQueues, maxQueues));
      for (let q = 0; q < this.negotiated.queues; q++) {
        this.queues.push(new BlkfrontQueue(this.k, this.backendId, this.devid, this.negotiated.ringPageOrder,
          (why) => this.broken(why), this.complete, () => this.drain()));
      }
    }
    await writeFrontendKeys(xs, dev.nodename, this.queues, this.negotiated.ringPageOrder, this.opts.persistent, t);
  }

  async connect(dev: XenbusDevice): Promise<void> {
    const be = await readBackendKeys(dev.xs, dev.otherend);
    this.sectors = be.sectors;
    this.sectorSize = be.sectorSize;
    this.readOnly = be.readOnly;
    const { flush, discard } = be;
    this.negotiated.persistent = this.opts.persistent && be.persistent;
    this.negotiated.indirectSegments = Math.min(this.opts.maxIndirectSegments, be.maxIndirectSegments);
    // Linux sizes each ring's grant list to what the ring can have in flight: slots times the
    // segments of one request. Here no more than the device's share of the table, either.
    const segs = this.negotiated.indirectSegments > 0 ? this.negotiated.indirectSegments : BLKIF_MAX_SEGMENTS_PER_REQUEST;
    const share = Math.floor(this.k.gnttab.available / (POOL_SHARE_OF_GRANT_TABLE * this.queues.length));
    this.poolGrants = Math.max(1, Math.min(this.opts.maxPersistentGrants, Math.max(segs, Math.min(this.queues[0].ring.size * segs, share))));
    for (const q of this.queues) q.setupGrants(this.negotiated.indirectSegments, this.negotiated.persistent, this.poolGrants);
    this.features = {
      flush, discard,
      maxInFlight: this.queues.reduce((n, q) => n + q.ring.size, 0),
      maxRequestBytes: segs * 4096,
    };
    if (this.recovered !== null) this.reissue(this.recovered);
    this.ready();
  }

  /**
   * blkif_recover's first half: the backend died. Take what it answered, keep what it did not,
   * give back rings, grants and ports (it unmapped them as it went, or the hypervisor did when
   * its domain died). Requests submitted from now on wait for the next backend.
   */
  async suspend(): Promise<void> {
    const old = this.queues;
    this.queues = []; // completions below may submit more: they must queue, not reach a dead ring
    const kept: Part[] = this.recovered ?? [];
    for (const q of old) {
      q.reap();
      q.takeUnanswered(kept);
      this.k.events.removePoller(q);
      q.free();
    }
    this.recovered = kept;
    this.recoveryT0 = 0;
    this.suspendT0 = performance.now();
    this.recovery.recoveries++;
    this.k.log(`blkfront ${this.name}: backend d${this.backendId} went away with ${kept.length} request(s) unanswered; waiting for it to come back`);
    if (this.frozen) this.drain(); // nothing on a ring any more: a suspend waiting for them goes on
  }

  /**
   * blkif_recover's second half: the kept parts ahead of what queued meanwhile, each split again
   * to the new backend's limit (it may offer fewer indirect segments than the old one did).
   */
  private reissue(kept: Part[]): void {
    this.recovered = null;
    const maxSectors = this.queues[0].maxSegments * SECTORS_PER_PAGE;
    const parts = splitParts(kept, maxSectors);
    this.recovery.reissued += parts.length;
    this.reissued = parts.length > 0 ? new Set(parts.map((p) => p.owner)) : null;
    if (this.reissued === null) this.recoveryT0 = 0;
    const queued = splitParts(this.waiting.splice(0), maxSectors);
    this.waiting.push(...parts, ...queued);
    this.drain();
  }

  /**
   * The guest is suspending (domu/kernel.ts suspend(), dpm_suspend_start's place in do_suspend):
   * stop putting requests on the rings and resolve once every request on them is answered. The
   * rings, grants and port stay as they are, and the backend stays Connected: no xenstore request.
   * What is submitted from now on waits in the software queue, on this thread's heap, and goes
   * with it (a caller whose state is on the heap does not survive the suspend either).
   *
   * Linux's blkfront does not wait here: its in-flight requests stay in the shadow, in kernel
   * memory that crosses with the guest, and blkif_recover issues them again on the new host. This
   * kernel lets them finish instead: the callers waiting for them are on the old thread's heap, and
   * a request still in flight at the source while the target (sharing the image) starts writing
   * could land after a newer write there. Waiting costs the suspend one request's service time when
   * the disk is busy, nothing when it is not. A broken ring (its answers no longer checked) is not
   * waited for. Resolves with how many requests were in flight when it began.
   */
  quiesce(): Promise<number> {
    this.frozen = true;
    let n = 0;
    for (const q of this.queues) if (q.brokenReason === null) n += q.inFlight;
    if (n === 0) return Promise.resolve(0);
    return new Promise<number>((resolve) => { this.quiesced = () => resolve(n); });
  }


  async close(): Promise<void> {
    for (const p of this.recovered?.splice(0) ?? []) this.complete(p.owner, BLKIF_RSP_ERROR);
    this.recovered = null;
    for (const q of this.queues) q.abandon();
    for (const p of this.waiting.splice(0)) this.complete(p.owner, BLKIF_RSP_ERROR);
    // The backend has unmapped everything by now (it goes Closing only after disconnecting).
    for (const q of this.queues) {
      this.k.events.removePoller(q);
      q.free();
    }
    this.queues = [];
    this.gone();
  }

  /* ---- BlockDevice ---- */


  stats(): Record<string, number> {
    return blkfrontStats(this.queues, this.poolGrants, this.recovery, this.k.events.idle);
  }

  /** Ask the backend to let go (Closing); resolves once Closed and everything is given back. */
  async closeDevice(): Promise<void> {
    await this.shutdownHook?.();
    await this.closed;
  }

  protected firstReissuedAnswered(): void {
    this.reissued = null;
    if (this.recoveryT0 === 0) return;
    const now = performance.now();
    this.recovery.recoveryMs = now - this.recoveryT0;
    this.recovery.stallMs = now - this.suspendT0;
    this.recoveryT0 = 0;
    this.k.log(`blkfront ${this.name}: reconnected; first re-issued request answered ${this.recovery.recoveryMs.toFixed(1)} ms after the new backend's InitWait`);
  }
}

