/*
 * One blkif ring of one virtual block device, as the backend serves it: take requests, check
 * them, do the I/O on the disk image through the granted pages, answer.
 *
 * Xen/Linux: drivers/block/xen-blkback/blkback.c (xen_blkif_schedule's loop, __do_block_io_op,
 * make_response) and xenbus.c's xen_blkif_map for the ring itself. A multi-queue device has one
 * of these per queue, each with its own ring pages and event channel. The work of each request
 * (checks, mappings, the I/O, piece by piece) is ./blkif-io.ts.
 *
 * Order of work for each request: copy it out of the ring (RING_COPY_REQUEST), check the copy
 * (request.ts), map what it names (grants.ts), have the storage controller DMA straight between
 * the disk and the mapped pages (shared/kernel/drivers/sc-disk.ts: the bus addresses are where the
 * grants are mapped in our physmap, which the IOMMU lets the controller reach), unmap transient
 * mappings, and write a response built whole. A frontend that publishes a producer index more than a ring ahead has corrupted
 * the ring: this ring stops, with a log line naming it, and the rest of Dom0 carries on. A bad
 * request gets an error response and a log line naming it (rate-limited per guest,
 * backends/lib/guest-log.ts); the next good one is served normally.
 *
 * Fair service. Dom0 has one thread for every ring, xenstored, the toolstack and destroy, so a
 * ring is served a bounded batch per turn, as netback's NAPI poll has its weight (64 packets)
 * and blkback's kthread yields between batches: at most BATCH_PIECES pieces of work, where a
 * piece is one request, or one bounded part of a large one (PIECE_SEGMENTS pages of a read or
 * write, one deallocate command of a discard (bounded by the controller)). A request bigger than what is left of the
 * batch stays half done and goes on at the ring's next turn; the ring keeps polling while it has
 * work, and the kernel's idle loop takes its pollers in turn and gives the event loop (sockets,
 * control messages) a turn between batches.
 *
 * Mappings. One owner per kind: `grants` (a GrantMapper) owns every mapping of the frontend's
 * data and indirect pages, `ringMaps` the ring's own pages. Each piece's transient mappings go
 * in a `finally` as soon as the piece is done (and an indirect page's as soon as its entries are
 * copied); everything the owners hold goes when the ring goes: disconnect, a failed
 * construction, or a ring stopped for misbehaving. Running out of mappings fails the request
 * that wanted one. No exception thrown while serving a request leaves serve(): it stops this ring
 * with one log line, and other rings and Dom0's main loop never see it.
 *
 * The ring registers with the kernel's idle loop as a poller, and waits for requests under the
 * run's waiting policy (shared/wait.ts): under `irq` Dom0 arms req_event as soon as the ring is
 * drained and sleeps until the frontend's event (blkback's kthread in xen_blkif_schedule); under
 * `poll` it keeps looking at req_prod for the policy's budget first (shared/kernel/events.ts).
 */
import type { Kernel } from '../../shared/kernel/kernel.ts';
import type { IdlePoller } from '../../shared/kernel/events.ts';
import {
  BLKIF_MAX_SEGMENTS_PER_REQUEST, BLKIF_SEGMENTS_PER_INDIRECT_FRAME, blkif_request, blkif_response,
} from '../../shared/public/io/blkif.ts';
import { BackRing, type RingIndices } from '../../shared/public/io/ring.ts';
import type { GrantBudget } from '../lib/grant-budget.ts';
import type { ScDisk } from '../../shared/kernel/drivers/sc-disk.ts';
import { wordsOf } from '../../shared/view.ts';
import * as trace from '../../shared/public/trace.ts';
// Copied once: an imported binding read per request costs some 15 ns under tsx (hypervisor/trace.ts).
const { TRC_END, TRC_GUEST_BLKBACK_REQUEST } = trace;
import { GrantMapper, persistentPerRing } from './grants.ts';
import type { VbdLimits } from './request.ts';
import { RequestIo, blkifStats } from './blkif-io.ts';

export interface RingConfig {
  k: Kernel;
  frontend: number;
  devid: number;
  queue: number;
  disk: ScDisk;
  limits: VbdLimits;
  persistent: boolean;
  ringRefs: readonly number[];
  remotePort: number;
  budget: GrantBudget;
  /** How many rings the device has (the persistent-grant limit is shared out between them). */
  rings?: number;
  /** A line the frontend caused (rate-limited per guest by the caller). */
  log: (line: string) => void;
}

/** Pieces of work per ring per turn. */
export const BATCH_PIECES = 16;
const PUSH_BATCH = 4;
const RSP_ID = blkif_response.fields.id[1];

export class BlkifRing implements IdlePoller {
  /** Counters (./blkif-io.ts blkifStats says what each is). */
  readonly stats = blkifStats();
  private ring: BackRing | null = null;
  private port = -1;
  private readonly ringMaps: GrantMapper;
  readonly grants: GrantMapper;
  private readonly req = blkif_request.create();
  private readonly rsp = blkif_response.create();
  /** The request being worked on: checked, mapped, done piece by piece (./blkif-io.ts). */
  private readonly io: RequestIo;
  private stopped = false;
  private unpublished = 0;
  /**
   * Fault injection for the recovery tests (backends/blkback/restart.ts): when stats.requests
   * reaches crashAt, the ring stops dead before taking the next request, as a crashed backend
   * would: responses made but not yet published are lost, requests still on the ring stay there.
   * -1: never.
   */
  crashAt = -1;
  onCrash: (() => void) | null = null;

  constructor(private readonly c: RingConfig) {
    const k = c.k;
    this.grants = new GrantMapper(k, c.frontend, c.budget, c.persistent);
    this.io = new RequestIo(c, this.grants, this.stats, (status) => this.finish(status));
    // The ring's own pages: held for the ring's life, but not persistent grants of data.
    this.ringMaps = new GrantMapper(k, c.frontend, c.budget, false);
    // Everything acquired below is released if anything after it throws.
    try {
      const pages: Int32Array[] = [];
      for (const ref of c.ringRefs) {
        const page = this.ringMaps.page(ref, true);
        if (page === null) throw new Error(`cannot map ring-ref ${ref}: ${this.ringMaps.lastError}`);
        pages.push(wordsOf(page));
      }
      this.ring = new BackRing(pages, blkif_request.size, blkif_response.size);
      this.ring.tracer = k.hypercall;
      const segs = Math.max(BLKIF_MAX_SEGMENTS_PER_REQUEST, c.limits.maxIndirectSegments);
      this.grants.maxPersistent = persistentPerRing(c.budget.limits.persistentPerFrontend, c.rings ?? 1, this.ring.size,
        segs + Math.ceil(c.limits.maxIndirectSegments / BLKIF_SEGMENTS_PER_INDIRECT_FRAME));
      this.port = k.events.bindInterdomain(c.frontend, c.remotePort, () => {
        this.stats.interrupts++;
        this.serve();
      });
    } catch (e) {
      this.ring = null;
      this.ringMaps.releaseAll();
      throw e;
    }
    k.events.addPoller(this);
  }

  get ringSize(): number {
    return this.ring?.size ?? 0;
  }

  /** The ring's indices now, for the tools (null once the ring stopped). */
  indices(): RingIndices | null {
    return this.ring?.indices() ?? null;
  }

  poll(): boolean {
    const ring = this.ring;
    if (ring === null || (!this.io.active && ring.unconsumedRequests() === 0)) return false;
    this.serve();
    return true;
  }

  /** More requests come from the frontend's vCPU at the remote end of our event channel. */
  peerPort(): number {
    return this.ring === null ? -1 : this.port;
  }

  prepareToSleep(): boolean {
    const ring = this.ring;
    if (ring === null) return false;
    if (!this.io.active && !ring.finalCheckForRequests()) return false;
    this.serve();
    return true;
  }

  /** One turn: up to BATCH_PIECES pieces of work, then answer what is done. */
  serve(): void {
    const ring = this.ring;
    if (ring === null) return;
    try {
      this.grants.purgeIfDue();
      let budget = BATCH_PIECES;
      while (budget > 0) {
        if (!this.io.active) {
          const req_prod = ring.reqProd();
          if (ring.requestOverflow(req_prod)) {
            if (this.unpublished > 0) this.pushResponses();
            this.fail(`req_prod ${req_prod} is more than ${ring.size} ahead of rsp_prod ${ring.rsp_prod_pvt}`);
            return;
          }
          if (ring.unconsumedRequests(req_prod) === 0) break;
          if (this.stats.requests === this.crashAt) return this.crash();
          ring.takeRequest(this.req.words);
          budget--;
          this.io.begin(this.req.dv);
        } else {
          budget--;
          this.io.step();
        }
      }
      if (budget < BATCH_PIECES) this.stats.turns++;
      if (budget === 0) this.stats.yields++;
      if (this.unpublished > 0) this.pushResponses();
    } catch (e) {
      // Not a frontend's mistake (those are statuses): a bug or a host failure while serving
      // this ring. It stops here, with this ring.
      this.fail(`internal error: ${(e as Error).message}`);
    }
  }

  private pushResponses(): void {
    this.unpublished = 0;
    if (this.ring!.pushResponses()) {
      this.stats.notifications++;
      this.c.k.events.notify(this.port);
    }
  }

  /** make_response: every byte of the slot is written (XSA-216); the id goes back as it came. */
  private finish(status: number): void {
    this.c.k.hypercall.xentrace(TRC_GUEST_BLKBACK_REQUEST | TRC_END, this.c.frontend, this.c.ringRefs[0]!, 0, 0);
    this.io.active = false;
    const r = this.rsp;
    const plan = this.io.plan;
    r.clear();
    r.dv.setUint32(RSP_ID, plan.idLo, true);
    r.dv.setUint32(RSP_ID + 4, plan.idHi, true);
    r.operation = plan.wireOp;
    r.status = status;
    this.ring!.putResponse(r.words);
    // Publish responses in small batches as they are made (Linux's make_response publishes
    // each one): the frontend can reuse slots while we work on the next requests, instead of
    // the two ends taking turns with whole rings; a few at a time keeps the cache line with
    // rsp_prod, which the frontend is polling, from bouncing on every response.
    if (++this.unpublished === PUSH_BATCH) this.pushResponses();
  }

  /** The frontend corrupted the ring (or serving it failed): stop this ring only. */
  private fail(why: string): void {
    this.stopped = true;
    this.stats.errors++;
    this.io.active = false;
    this.c.log(`blkback d${this.c.frontend}/${this.c.devid} queue ${this.c.queue}: ring stopped: ${why}`);
    this.c.k.events.unbind(this.port);
    this.c.k.events.removePoller(this);
    this.ring = null;
    this.grants.releaseTransient();
  }

  /** The injected crash: stop where we are; disconnect() (the unbind that follows) cleans up. */
  private crash(): void {
    this.ring = null;
    this.io.active = false;
    this.crashAt = -1;
    this.c.k.events.removePoller(this);
    const f = this.onCrash;
    this.onCrash = null;
    f?.();
  }

  get isStopped(): boolean {
    return this.stopped;
  }

  /** xen_blkif_disconnect: stop taking requests, unmap everything, close the port. */
  disconnect(): void {
    this.c.k.events.removePoller(this);
    if (this.port >= 0) this.c.k.events.close(this.port);
    this.port = -1;
    this.ring = null;
    this.io.active = false;
    this.grants.releaseAll();
    this.ringMaps.releaseAll();
  }
}
