/*
 * One blkif ring of one virtual block device, as the backend serves it: take requests, check
 * them, do the I/O on the disk image through the granted pages, answer.
 *
 * Xen/Linux: drivers/block/xen-blkback/blkback.c (xen_blkif_schedule's loop, __do_block_io_op,
 * dispatch_rw_block_io, make_response) and xenbus.c's xen_blkif_map for the ring itself. A
 * multi-queue device has one of these per queue, each with its own ring pages and event channel.
 *
 * Order of work for each request: copy it out of the ring (RING_COPY_REQUEST), check the copy
 * (request.ts), map what it names (grants.ts), preadv/pwritev straight between the disk image
 * and the mapped pages (disk.ts), unmap transient mappings, and write a response built whole.
 * A frontend that publishes a producer index more than a ring ahead has corrupted the ring: this
 * ring stops, with a log line naming it, and the rest of Dom0 carries on. A bad request gets an
 * error response and a rate-limited log line naming it; the next good one is served normally.
 *
 * The ring registers with the kernel's idle loop as a poller, and waits for requests under the
 * run's waiting policy (shared/wait.ts): under `irq` Dom0 arms req_event as soon as the ring is
 * drained and sleeps until the frontend's event (blkback's kthread in xen_blkif_schedule); under
 * `poll` it keeps looking at req_prod for the policy's budget first (shared/kernel/events.ts).
 */
import type { Kernel } from '../../../shared/kernel/kernel.ts';
import type { IdlePoller } from '../../../shared/kernel/events.ts';
import {
  BLKIF_OP_DISCARD, BLKIF_OP_FLUSH_DISKCACHE, BLKIF_OP_NAMES, BLKIF_OP_READ, BLKIF_RSP_ERROR, BLKIF_RSP_OKAY,
  BLKIF_SEGMENTS_PER_INDIRECT_FRAME, SECTOR_SIZE, blkif_request, blkif_response,
} from '../../../shared/public/io/blkif.ts';
import { BackRing, type RingIndices } from '../../../shared/public/io/ring.ts';
import { PAGE_SIZE } from '../../../shared/public/xen.ts';
import * as trace from '../../../shared/public/trace.ts';
// Copied once: an imported binding read per request costs some 15 ns under tsx (hypervisor/trace.ts).
const { TRC_BEGIN, TRC_END, TRC_GUEST_BLKBACK_REQUEST, TRC_GUEST_DISK_IO } = trace;
import type { DiskImage } from './disk.ts';
import { GrantMapper } from './grants.ts';
import { RequestPlan, checkRequest, parseSegments, type VbdLimits } from './request.ts';

export interface RingConfig {
  k: Kernel;
  frontend: number;
  devid: number;
  queue: number;
  disk: DiskImage;
  limits: VbdLimits;
  persistent: boolean;
  ringRefs: readonly number[];
  remotePort: number;
  log: (line: string) => void;
}

const MAX_LOGGED_ERRORS = 20;
const PUSH_BATCH = 4;

export class BlkifRing implements IdlePoller {
  /** Counters; rd_req, wr_req, rd_sect and wr_sect are Linux blkback's sysfs statistics. */
  readonly stats = {
    requests: 0, errors: 0, notifications: 0, segments: 0, bytes: 0, interrupts: 0, flushes: 0, discards: 0,
    rd_req: 0, wr_req: 0, rd_sect: 0, wr_sect: 0,
  };
  private ring: BackRing | null;
  private readonly port: number;
  private readonly ringMaps: GrantMapper;
  readonly grants: GrantMapper;
  private readonly req = blkif_request.create();
  private readonly rsp = blkif_response.create();
  private readonly plan: RequestPlan;
  private readonly iov: Uint8Array[] = [];
  private readonly indirect = new DataView(new ArrayBuffer(PAGE_SIZE));
  private readonly indirectBytes = new Uint8Array(this.indirect.buffer);
  private stopped = false;

  constructor(private readonly c: RingConfig) {
    const k = c.k;
    this.plan = new RequestPlan(c.limits.maxIndirectSegments);
    this.grants = new GrantMapper(k, c.frontend, c.persistent);
    this.ringMaps = new GrantMapper(k, c.frontend, true, c.ringRefs.length);
    const pages: Int32Array[] = [];
    for (const ref of c.ringRefs) {
      const page = this.ringMaps.page(ref, true);
      if (page === null) {
        this.ringMaps.releaseAll();
        throw new Error(`cannot map ring-ref ${ref} of d${c.frontend} (status ${this.ringMaps.lastStatus})`);
      }
      pages.push(new Int32Array(page.buffer, page.byteOffset, PAGE_SIZE >> 2));
    }
    try {
      this.ring = new BackRing(pages, blkif_request.size, blkif_response.size);
      this.ring.tracer = k.hypercall;
    } catch (e) {
      this.ringMaps.releaseAll();
      throw e;
    }
    this.port = k.events.bindInterdomain(c.frontend, c.remotePort, () => {
      this.stats.interrupts++;
      this.serve();
    });
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
    if (ring === null || ring.unconsumedRequests() === 0) return false;
    this.serve();
    return true;
  }

  prepareToSleep(): boolean {
    const ring = this.ring;
    if (ring === null) return false;
    if (!ring.finalCheckForRequests()) return false;
    this.serve();
    return true;
  }

  /** Take and answer everything published so far. */
  serve(): void {
    const ring = this.ring;
    if (ring === null) return;
    for (;;) {
      const req_prod = ring.reqProd();
      if (ring.requestOverflow(req_prod)) {
        this.fail(`req_prod ${req_prod} is more than ${ring.size} ahead of rsp_prod ${ring.rsp_prod_pvt}`);
        return;
      }
      if (ring.unconsumedRequests(req_prod) === 0) break;
      let unpublished = 0;
      while (ring.unconsumedRequests(req_prod) !== 0) {
        ring.takeRequest(this.req.words);
        this.c.k.hypercall.xentrace(TRC_GUEST_BLKBACK_REQUEST | TRC_BEGIN, this.c.frontend, this.c.ringRefs[0]!, this.req.dv.getUint32(8, true), 0);
        this.respond(this.execute());
        this.c.k.hypercall.xentrace(TRC_GUEST_BLKBACK_REQUEST | TRC_END, this.c.frontend, this.c.ringRefs[0]!, 0, 0);
        // Publish responses in small batches as they are made (Linux's make_response publishes
        // each one): the frontend can reuse slots while we work on the next requests, instead of
        // the two ends taking turns with whole rings; a few at a time keeps the cache line with
        // rsp_prod, which the frontend is polling, from bouncing on every response.
        if (++unpublished === PUSH_BATCH) {
          this.pushResponses();
          unpublished = 0;
        }
      }
      if (unpublished > 0) this.pushResponses();
    }
  }

  private pushResponses(): void {
    if (this.ring!.pushResponses()) {
      this.stats.notifications++;
      this.c.k.events.notify(this.port);
    }
  }

  /** Check and carry out the request in this.req; returns the response status. */
  private execute(): number {
    const plan = this.plan;
    const lim = this.c.limits;
    this.stats.requests++;
    let status = checkRequest(this.req.dv, lim, plan);
    if (status === BLKIF_RSP_OKAY && plan.nrIndirect > 0) status = this.readIndirect();
    if (status !== BLKIF_RSP_OKAY) return this.bad(status);
    try {
      switch (plan.op) {
        case BLKIF_OP_FLUSH_DISKCACHE:
          this.c.disk.flush();
          this.stats.flushes++;
          return BLKIF_RSP_OKAY;
        case BLKIF_OP_DISCARD:
          this.c.disk.discard(plan.sector, plan.nrSectors);
          this.stats.discards++;
          return BLKIF_RSP_OKAY;
        default: {
          const status = this.readWrite();
          return status === BLKIF_RSP_OKAY ? status : this.bad(status);
        }
      }
    } catch (e) {
      plan.reason = `I/O error on ${this.c.disk.path}: ${(e as Error).message}`;
      return this.bad(BLKIF_RSP_ERROR);
    } finally {
      this.grants.releaseTransient();
    }
  }

  /** Map the request's pages and move the data with one preadv/pwritev. */
  private readWrite(): number {
    const plan = this.plan;
    const write = plan.op !== BLKIF_OP_READ;
    const iov = this.iov;
    iov.length = 0;
    for (let i = 0; i < plan.nrSegs; i++) {
      const page = this.grants.page(plan.gref[i], !write);
      if (page === null) {
        plan.reason = `segment ${i}: grant ref ${plan.gref[i]} cannot be mapped (status ${this.grants.lastStatus})`;
        return BLKIF_RSP_ERROR;
      }
      const first = plan.first[i];
      const last = plan.last[i];
      iov.push(first === 0 && last === 7 ? page : page.subarray(first * SECTOR_SIZE, (last + 1) * SECTOR_SIZE));
    }
    const want = plan.nrSectors * SECTOR_SIZE;
    this.c.k.hypercall.xentrace(TRC_GUEST_DISK_IO | TRC_BEGIN, this.c.frontend, plan.sector, plan.nrSectors, write ? 1 : 0);
    const done = write ? this.c.disk.writev(plan.sector, iov) : this.c.disk.readv(plan.sector, iov);
    this.c.k.hypercall.xentrace(TRC_GUEST_DISK_IO | TRC_END, this.c.frontend, done, 0, 0);
    if (done !== want) {
      plan.reason = `short ${write ? 'write' : 'read'}: ${done} of ${want} bytes`;
      return BLKIF_RSP_ERROR;
    }
    this.stats.segments += plan.nrSegs;
    this.stats.bytes += want;
    if (write) { this.stats.wr_req++; this.stats.wr_sect += plan.nrSectors; } else { this.stats.rd_req++; this.stats.rd_sect += plan.nrSectors; }
    return BLKIF_RSP_OKAY;
  }

  /** Map each indirect page, copy its entries out, and check them (xen_blkbk_parse_indirect). */
  private readIndirect(): number {
    const plan = this.plan;
    const total = plan.nrSegs;
    for (let p = 0; p < plan.nrIndirect; p++) {
      const page = this.grants.page(plan.indirectGref[p], false);
      if (page === null) {
        return plan.refuse(BLKIF_RSP_ERROR, `indirect page ${p}: grant ref ${plan.indirectGref[p]} cannot be mapped (status ${this.grants.lastStatus})`);
      }
      const start = p * BLKIF_SEGMENTS_PER_INDIRECT_FRAME;
      const n = Math.min(BLKIF_SEGMENTS_PER_INDIRECT_FRAME, total - start);
      this.indirectBytes.set(n === BLKIF_SEGMENTS_PER_INDIRECT_FRAME ? page : page.subarray(0, n * 8));
      const rc = parseSegments(this.indirect, 0, n, this.c.limits, plan, start);
      if (rc !== BLKIF_RSP_OKAY) return rc;
    }
    return BLKIF_RSP_OKAY;
  }

  private bad(status: number): number {
    this.stats.errors++;
    if (this.stats.errors <= MAX_LOGGED_ERRORS) {
      const p = this.plan;
      const opName = BLKIF_OP_NAMES[p.wireOp] ?? `op ${p.wireOp}`;
      this.c.log(`blkback d${this.c.frontend}/${this.c.devid} queue ${this.c.queue}: bad ${opName} request id ${p.id}: ${p.reason}`
        + (this.stats.errors === MAX_LOGGED_ERRORS ? ' (further errors on this ring are counted, not logged)' : ''));
    }
    return status;
  }

  /** make_response: every byte of the slot is written (XSA-216). */
  private respond(status: number): void {
    const r = this.rsp;
    r.clear();
    r.id = this.plan.id;
    r.operation = this.plan.wireOp;
    r.status = status;
    this.ring!.putResponse(r.words);
  }

  /** The frontend corrupted the ring: stop this ring only. */
  private fail(why: string): void {
    this.stopped = true;
    this.stats.errors++;
    this.c.log(`blkback d${this.c.frontend}/${this.c.devid} queue ${this.c.queue}: ring stopped: ${why}`);
    this.c.k.events.unbind(this.port);
    this.c.k.events.removePoller(this);
    this.ring = null;
  }

  get isStopped(): boolean {
    return this.stopped;
  }

  /** xen_blkif_disconnect: stop taking requests, unmap everything, close the port. */
  disconnect(): void {
    this.c.k.events.removePoller(this);
    this.c.k.events.close(this.port);
    this.ring = null;
    this.grants.releaseAll();
    this.ringMaps.releaseAll();
  }
}
