/*
 * The work of one blkif request, as the backend does it: check the copy taken off the ring, read
 * its indirect pages, map what it names, and move the data piece by piece.
 *
 * Xen/Linux: drivers/block/xen-blkback/blkback.c (dispatch_rw_block_io, xen_blkbk_parse_indirect,
 * xen_blkbk_map, dispatch_discard_io, the flush in dispatch_other_io) and the sysfs statistics of
 * xen-blkback/xenbus.c. The ring it came from, the turn's batch and the response are
 * ./blkif-ring.ts; the checks are ./request.ts; the mappings ./grants.ts.
 */
import {
  BLKIF_OP_DISCARD, BLKIF_OP_FLUSH_DISKCACHE, BLKIF_OP_NAMES, BLKIF_OP_READ, BLKIF_RSP_ERROR, BLKIF_RSP_OKAY,
  BLKIF_SEGMENTS_PER_INDIRECT_FRAME, SECTOR_SIZE,
} from '../../shared/public/io/blkif.ts';
import { PAGE_SIZE } from '../../shared/public/xen.ts';
import * as trace from '../../shared/public/trace.ts';
// Copied once: an imported binding read per request costs some 15 ns under tsx (hypervisor/trace.ts).
const { TRC_BEGIN, TRC_END, TRC_GUEST_BLKBACK_REQUEST, TRC_GUEST_DISK_IO } = trace;
import type { GrantMapper } from './grants.ts';
import { RequestPlan, checkRequest, parseSegments } from './request.ts';
import type { RingConfig } from './blkif-ring.ts';

/** Pages of a read or write done as one piece (128 KiB). */
export const PIECE_SEGMENTS = 32;

/**
 * A ring's counters. rd_req, wr_req, rd_sect and wr_sect are Linux blkback's sysfs statistics; yields
 * (turns that ended with the budget spent) is what devstats reports as oo_req, blkback's
 * "out of requests": the backend, not the ring, was the bottleneck. turns: turns that found work.
 */
export function blkifStats() {
  return {
    requests: 0, errors: 0, notifications: 0, segments: 0, bytes: 0, interrupts: 0, flushes: 0, discards: 0, pieces: 0, yields: 0, turns: 0,
    rd_req: 0, wr_req: 0, rd_sect: 0, wr_sect: 0,
  };
}
export type BlkifStats = ReturnType<typeof blkifStats>;

export class RequestIo {
  readonly plan: RequestPlan;
  private readonly indirect = new DataView(new ArrayBuffer(PAGE_SIZE));
  private readonly indirectBytes = new Uint8Array(this.indirect.buffer);
  /** A request taken but not yet answered (this.plan holds it), and how far it has got. */
  active = false;
  private segDone = 0;
  private sectorDone = 0;

  /** `finish`: answer the request in this.plan with a status (the ring's make_response). */
  constructor(private readonly c: RingConfig, private readonly grants: GrantMapper, private readonly stats: BlkifStats,
    private readonly finish: (status: number) => void) {
    this.plan = new RequestPlan(c.limits.maxIndirectSegments);
  }

  /** The request just copied off the ring into `req`: check it, and finish it or leave it active. */
  begin(req: DataView): void {
    const plan = this.plan;
    this.stats.requests++;
    // The trace's flow key: (frontend, first ring-ref, the low word of the request id).
    this.c.k.hypercall.xentrace(TRC_GUEST_BLKBACK_REQUEST | TRC_BEGIN, this.c.frontend, this.c.ringRefs[0]!, req.getUint32(8, true), 0);
    let status = checkRequest(req, this.c.limits, plan);
    if (status === BLKIF_RSP_OKAY && plan.nrIndirect > 0) status = this.readIndirect();
    if (status !== BLKIF_RSP_OKAY) return this.finish(this.bad(status));
    switch (plan.op) {
      case BLKIF_OP_FLUSH_DISKCACHE:
        try {
          this.c.disk.flush();
        } catch (e) {
          return this.finish(this.ioError(e));
        }
        this.stats.flushes++;
        return this.finish(BLKIF_RSP_OKAY);
      case BLKIF_OP_DISCARD:
        this.active = true;
        this.sectorDone = 0;
        if (plan.nrSectors === 0) return this.finish(BLKIF_RSP_OKAY);
        return this.step();
      default:
        this.active = true;
        this.segDone = 0;
        this.sectorDone = 0;
        return this.step();
    }
  }

  /** One piece of the active request. */
  step(): void {
    const plan = this.plan;
    this.stats.pieces++;
    if (plan.op === BLKIF_OP_DISCARD) {
      try {
        this.sectorDone += this.c.disk.discard(plan.sector + this.sectorDone, plan.nrSectors - this.sectorDone);
      } catch (e) {
        return this.finish(this.ioError(e));
      }
      if (this.sectorDone >= plan.nrSectors) {
        this.stats.discards++;
        this.finish(BLKIF_RSP_OKAY);
      }
      return;
    }
    let status: number;
    try {
      status = this.readWritePiece();
    } catch (e) {
      status = this.ioError(e);
    } finally {
      this.grants.releaseTransient();
    }
    if (status !== BLKIF_RSP_OKAY) return this.finish(this.bad(status));
    if (this.segDone === plan.nrSegs) {
      if (plan.op === BLKIF_OP_READ) this.stats.rd_req++; else this.stats.wr_req++;
      this.finish(BLKIF_RSP_OKAY);
    }
  }

  /** Map the next PIECE_SEGMENTS pages of the request and move their data with one controller command. */
  private readWritePiece(): number {
    const plan = this.plan;
    const write = plan.op !== BLKIF_OP_READ;
    const disk = this.c.disk;
    const from = this.segDone;
    const to = Math.min(plan.nrSegs, from + PIECE_SEGMENTS);
    const at = plan.sector + this.sectorDone;
    disk.begin(write, at);
    let sectors = 0;
    for (let i = from; i < to; i++) {
      const page = this.grants.page(plan.gref[i], !write);
      if (page === null) return plan.refuse(BLKIF_RSP_ERROR, `segment ${i}: ${this.grants.lastError}`);
      const first = plan.first[i];
      const last = plan.last[i];
      disk.region(this.grants.lastGfn, first * SECTOR_SIZE, (last - first + 1) * SECTOR_SIZE);
      sectors += last - first + 1;
    }
    const want = sectors * SECTOR_SIZE;
    this.c.k.hypercall.xentrace(TRC_GUEST_DISK_IO | TRC_BEGIN, this.c.frontend, at, sectors, write ? 1 : 0);
    const done = disk.run();
    this.c.k.hypercall.xentrace(TRC_GUEST_DISK_IO | TRC_END, this.c.frontend, done, 0, 0);
    if (done !== want) return plan.refuse(BLKIF_RSP_ERROR, `short ${write ? 'write' : 'read'}: ${done} of ${want} bytes at sector ${at}`);
    this.segDone = to;
    this.sectorDone += sectors;
    this.stats.segments += to - from;
    this.stats.bytes += want;
    if (write) this.stats.wr_sect += sectors; else this.stats.rd_sect += sectors;
    return BLKIF_RSP_OKAY;
  }

  /**
   * Map each indirect page, copy its entries out, unmap it, and check the copy
   * (xen_blkbk_parse_indirect). The mapping is released on every way out.
   */
  private readIndirect(): number {
    const plan = this.plan;
    const total = plan.nrSegs;
    for (let p = 0; p < plan.nrIndirect; p++) {
      const start = p * BLKIF_SEGMENTS_PER_INDIRECT_FRAME;
      const n = Math.min(BLKIF_SEGMENTS_PER_INDIRECT_FRAME, total - start);
      try {
        const page = this.grants.page(plan.indirectGref[p], false);
        if (page === null) return plan.refuse(BLKIF_RSP_ERROR, `indirect page ${p}: ${this.grants.lastError}`);
        this.indirectBytes.set(n === BLKIF_SEGMENTS_PER_INDIRECT_FRAME ? page : page.subarray(0, n * 8));
      } finally {
        this.grants.releaseTransient();
      }
      const rc = parseSegments(this.indirect, 0, n, this.c.limits, plan, start);
      if (rc !== BLKIF_RSP_OKAY) return rc;
    }
    return BLKIF_RSP_OKAY;
  }

  private ioError(e: unknown): number {
    this.plan.reason = `I/O error on ${this.c.disk.path}: ${(e as Error).message}`;
    return this.bad(BLKIF_RSP_ERROR);
  }

  private bad(status: number): number {
    this.stats.errors++;
    const p = this.plan;
    const opName = BLKIF_OP_NAMES[p.wireOp] ?? `op ${p.wireOp}`;
    this.c.log(`blkback d${this.c.frontend}/${this.c.devid} queue ${this.c.queue}: bad ${opName} request id ${p.idText()}: ${p.reason}`);
    return status;
  }
}
