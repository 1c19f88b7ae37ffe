/*
 * blkfront's request side: block requests into blkif requests on the rings, and their answers back
 * to the callers. Blkfront (./blkfront.ts) extends this class with the xenbus side (the handshake,
 * a dead backend's recovery, the suspend).
 *
 * Xen/Linux: drivers/block/xen-blkfront.c's blkif_queue_request (a request split into blkif
 * requests of at most the negotiated segments, 11 or the indirect maximum, each page of the
 * caller's buffer one segment), blkif_queue_rq's place in blk-mq (a request goes to a hardware
 * queue, and waits in the software queue when every ring is full, restarted when responses free
 * slots) and blkif_interrupt's completion (blk_mq_end_request with the blkif status).
 *
 * Requests are spread over the queues round-robin, or with persistent grants to the ring whose
 * pool holds the grant of their first page (see enqueue). The common case allocates nothing: one
 * scratch part, copied onto the ring at once. A part is completed only by a response to it, so
 * each request is answered once, including the parts of one split again after a recovery.
 */
import type { Kernel } from '../../shared/kernel/kernel.ts';
import {
  BLKIF_OP_DISCARD, BLKIF_OP_FLUSH_DISKCACHE, BLKIF_OP_READ, BLKIF_OP_WRITE, BLKIF_RSP_EOPNOTSUPP, BLKIF_RSP_ERROR, BLKIF_RSP_OKAY,
  SECTORS_PER_PAGE,
} from '../../shared/public/io/blkif.ts';
import {
  blockPromise, type BlockDevice, type BlockFeatures, type BlockOp, type BlockRequest, type IoBuffer,
} from '../block/blkdev.ts';
import type { BlkfrontQueue } from './queue.ts';
import type { Part } from './shadow.ts';
import type { Group } from './split.ts';

export abstract class BlkfrontIo implements BlockDevice {
  name = '';
  readonly path = 'pv' as const;
  sectors = 0;
  sectorSize = 512;
  readOnly = false;
  features: BlockFeatures = { flush: false, discard: false, maxInFlight: 0, maxRequestBytes: 0 };
  /** What was negotiated, for scenarios and tests to show. */
  readonly negotiated = { ringPageOrder: 0, queues: 1, indirectSegments: 0, persistent: false };
  queues: BlkfrontQueue[] = [];
  protected readonly waiting: Part[] = [];
  private readonly scratch: Part = { op: 0, sector: 0, nrSectors: 0, gfns: [], firstPage: 0, owner: null };
  private next = 0;
  protected brokenWhy: string | null = null;
  /** The owners of re-issued parts, until the first of them is answered. */
  protected reissued: Set<unknown> | null = null;
  /** Set by quiesce(): nothing more goes on a ring (parts wait); resolved once nothing is in flight. */
  protected frozen = false;
  protected quiesced: (() => void) | null = null;

  constructor(protected readonly k: Kernel) {}

  /** The first answer to a part re-issued after a backend's death (./blkfront.ts). */
  protected abstract firstReissuedAnswered(): void;
  /* The rest of BlockDevice, ./blkfront.ts's. */
  abstract stats(): Record<string, number>;
  abstract close(): Promise<void>;

  submit(req: BlockRequest): void {
    const op = BLKIF_OPS[req.op];
    const why = this.refusal(req, op);
    if (why !== null) {
      const status = why === NOTHING_TO_FLUSH ? 0 : why.startsWith('EOPNOTSUPP') ? BLKIF_RSP_EOPNOTSUPP : BLKIF_RSP_ERROR;
      queueMicrotask(() => req.done(status, status === 0 ? undefined : why.replace(/^EOPNOTSUPP: /, '')));
      return;
    }
    const { sector, count, buf } = req;
    const data = op === BLKIF_OP_READ || op === BLKIF_OP_WRITE;
    // From the last connect (not queues[0]: while a dead backend is awaited there are no queues).
    const maxSectors = (this.features.maxRequestBytes >> 12) * SECTORS_PER_PAGE;
    if (!data || count <= maxSectors) {
      // The common case allocates nothing: one scratch part, copied onto the ring at once.
      const p = this.scratch;
      p.op = op;
      p.sector = sector;
      p.nrSectors = data || op === BLKIF_OP_DISCARD ? count : 0;
      p.gfns = buf?.gfns ?? NO_PAGES;
      p.firstPage = 0;
      p.owner = req;
      return this.enqueue(p);
    }
    const nparts = Math.ceil(count / maxSectors);
    const group: Group = { group: true, req, left: nparts, status: 0 };
    for (let i = 0; i < nparts; i++) {
      const s = i * maxSectors;
      this.enqueue({ op, sector: sector + s, nrSectors: Math.min(maxSectors, count - s), gfns: buf!.gfns, firstPage: s / SECTORS_PER_PAGE, owner: group });
    }
  }

  /** Why `req` cannot go to the backend at all, or null. (A separate method: no closure per request.) */
  private refusal(req: BlockRequest, op: number): string | null {
    if (this.brokenWhy !== null) return `${this.name} stopped: ${this.brokenWhy}`;
    const { sector, count, buf } = req;
    if (!Number.isSafeInteger(sector) || !Number.isSafeInteger(count) || sector < 0 || count < 0 || sector + count > this.sectors) {
      return `${req.op} of ${count} sectors at ${sector}: outside the disk's ${this.sectors} sectors`;
    }
    if (op === BLKIF_OP_WRITE && this.readOnly) return `${this.name} is read-only`;
    if (op === BLKIF_OP_FLUSH_DISKCACHE && !this.features.flush) return NOTHING_TO_FLUSH;
    if (op === BLKIF_OP_DISCARD && !this.features.discard) return `EOPNOTSUPP: ${this.name} does not offer discard`;
    if ((op === BLKIF_OP_READ || op === BLKIF_OP_WRITE) && (buf === null || count === 0 || count * 512 > buf.bytes)) {
      return `${req.op} of ${count} sectors into a buffer of ${buf?.bytes ?? 0} bytes`;
    }
    return null;
  }

  read(sector: number, count: number, buf: IoBuffer): Promise<void> {
    return blockPromise(this, 'read', sector, count, buf, this.settle);
  }

  write(sector: number, count: number, buf: IoBuffer): Promise<void> {
    return blockPromise(this, 'write', sector, count, buf, this.settle);
  }

  flush(): Promise<void> {
    return blockPromise(this, 'flush', 0, 0, null, this.settle);
  }

  discard(sector: number, count: number): Promise<void> {
    return blockPromise(this, 'discard', sector, count, null, this.settle);
  }

  private readonly settle = (): void => this.k.events.wakeAsync();

  /** A part finished with a blkif status: finish its block request when all its parts have. */
  protected readonly complete = (owner: unknown, status: number): void => {
    if (this.reissued !== null && this.reissued.has(owner)) this.firstReissuedAnswered();
    const g = owner as Group;
    if (g.group !== true) return this.finish(owner as BlockRequest, status);
    if (status !== BLKIF_RSP_OKAY && g.status === BLKIF_RSP_OKAY) g.status = status;
    // A group's owner is a block request, or (a part split again after a recovery) another group.
    if (--g.left === 0) this.complete(g.req, g.status);
  };

  private finish(req: BlockRequest, status: number): void {
    if (status === BLKIF_RSP_OKAY) return req.done(0);
    if (status === BLKIF_RSP_EOPNOTSUPP && req.op === 'flush') this.features.flush = false;
    if (status === BLKIF_RSP_EOPNOTSUPP && req.op === 'discard') this.features.discard = false;
    req.done(status, this.brokenWhy !== null ? `${this.name} stopped: ${this.brokenWhy}`
      : status === BLKIF_RSP_EOPNOTSUPP ? `${req.op} is not supported by the backend` : `${req.op}: I/O error from the backend`);
  }

  /**
   * Which queue a part goes to. With persistent grants, a page's grant belongs to one ring, as
   * each of Linux's rings has its own pool of granted pages (blkfront_ring_info.grants): a part
   * goes to the queue whose pool holds its first page's grant, and a page no pool holds goes to
   * the next queue round robin. Otherwise the backend would keep one mapping of the page per ring it arrived on, four
   * times the mappings for four queues, and a frontend's I/O buffers would outgrow its share of
   * Dom0's persistent mappings (backends/lib/grant-budget.ts): every request would pay grant maps and
   * unmaps again. A part whose queue is full goes to another, as before; parts without pages
   * (flush, discard) and devices without persistent grants are dealt round robin.
   */
  private enqueue(p: Part): void {
    // No queues while the backend is gone (blkif_recover waits for the next one), and none once
    // the guest is suspending (quiesce): the part waits.
    if (!this.frozen && this.waiting.length === 0 && this.queues.length > 0 && this.negotiated.persistent && p.nrSectors > 0 && p.op !== BLKIF_OP_DISCARD) {
      if (this.next >= this.queues.length) this.next = 0; // a new backend may offer fewer queues
      const gfn = p.gfns[p.firstPage];
      let home = -1;
      for (let i = 0; i < this.queues.length && home < 0; i++) if (this.queues[i].pool?.holds(gfn)) home = i;
      const q = home >= 0 ? this.queues[home] : null;
      if (q !== null && q.hasRoom && q.issue(p)) return;
    }
    if (!this.frozen && this.waiting.length === 0) {
      for (let tries = 0; tries < this.queues.length; tries++) {
        const q = this.queues[this.next];
        this.next = this.next + 1 === this.queues.length ? 0 : this.next + 1;
        if (q.hasRoom && q.issue(p)) return;
      }
    }
    this.waiting.push(p === this.scratch ? { ...p } : p);
  }

  /**
   * Responses freed ring slots (or grants, or bounce pages): issue what was waiting, in order
   * (blk-mq's restart of a stopped queue). The first part no queue can take now stops the round.
   */
  protected drain(): void {
    if (this.frozen) {
      if (this.quiesced !== null && this.settled()) { this.quiesced(); this.quiesced = null; }
      return;
    }
    while (this.waiting.length > 0) {
      const p = this.waiting[0];
      let issued = false;
      for (let i = 0; i < this.queues.length && !issued; i++) {
        const q = this.queues[i];
        issued = q.hasRoom && q.issue(p);
      }
      if (!issued) return;
      this.waiting.shift();
    }
  }

  protected broken(why: string): void {
    if (this.brokenWhy !== null) return;
    this.brokenWhy = why;
    this.k.log(`blkfront ${this.name}: ${why}; device stopped`);
    for (const p of this.waiting.splice(0)) this.complete(p.owner, BLKIF_RSP_ERROR);
    if (this.frozen) this.drain(); // a suspend waiting for this ring waits no more
  }

  /** Requests still on a ring that can answer them. */
  protected settled(): boolean {
    for (const q of this.queues) if (q.brokenReason === null && q.inFlight > 0) return false;
    return true;
  }
}

const NO_PAGES: readonly number[] = [];
/** A flush on a device with no write cache: done at once, successfully. */
const NOTHING_TO_FLUSH = 'nothing to flush';
const BLKIF_OPS: Record<BlockOp, number> = { read: BLKIF_OP_READ, write: BLKIF_OP_WRITE, flush: BLKIF_OP_FLUSH_DISKCACHE, discard: BLKIF_OP_DISCARD };
