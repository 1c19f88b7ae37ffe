/*
 * Checking one blkif request before anything is done with it.
 *
 * Xen/Linux: the checks of drivers/block/xen-blkback/blkback.c (dispatch_rw_block_io,
 * dispatch_discard_io, xen_blkbk_parse_indirect, and the "bad request" paths): segment count,
 * first/last sector of each segment, the range against the disk's size, writes to a read-only
 * disk, operations the device does not offer. It runs only on the backend's private copy of the
 * request (RING_COPY_REQUEST, no double fetch), and on a private copy of each indirect page's
 * segment entries, taken before they are read.
 *
 * The result is a plan, not an I/O: the segment grants to map, the byte ranges within them, the
 * starting sector and the total. A bad request becomes a status and a reason for the log line;
 * nothing here throws on guest input. Every field is read at the offset shared/public/io/blkif.ts
 * declares. The id is opaque to the backend and is kept as its two 32-bit halves, so that it
 * goes back in the response bit for bit (a double holds only 53 of its 64 bits).
 */
import {
  BLKIF_DISCARD_SECURE, BLKIF_MAX_INDIRECT_PAGES_PER_REQUEST, BLKIF_MAX_SEGMENTS_PER_REQUEST, BLKIF_OP_DISCARD,
  BLKIF_OP_FLUSH_DISKCACHE, BLKIF_OP_INDIRECT, BLKIF_OP_READ, BLKIF_OP_WRITE, BLKIF_RSP_EOPNOTSUPP, BLKIF_RSP_ERROR,
  BLKIF_RSP_OKAY, BLKIF_SEG_OFFSET, BLKIF_SEGMENTS_PER_INDIRECT_FRAME, SECTORS_PER_PAGE, blkif_request,
  blkif_request_discard, blkif_request_indirect, indirect_gref, seg_first_sect, seg_gref, seg_last_sect,
} from '../../shared/public/io/blkif.ts';

const RQ = blkif_request.fields;
const IQ = blkif_request_indirect.fields;
const DQ = blkif_request_discard.fields;

/** A u64 field as a number: exact below 2^53; above, not a safe integer (checkRange refuses it). */
function u64(dv: DataView, off: number): number {
  return dv.getUint32(off, true) + dv.getUint32(off + 4, true) * 2 ** 32;
}

/** What the device offers, as advertised in XenStore. */
export interface VbdLimits {
  sectors: number;
  readOnly: boolean;
  flush: boolean;
  discard: boolean;
  /** feature-max-indirect-segments advertised (0: no indirect requests). */
  maxIndirectSegments: number;
}

/** A checked request, reused from one request to the next (no allocation per request). */
export class RequestPlan {
  op = 0;             // BLKIF_OP_READ / WRITE / FLUSH_DISKCACHE / DISCARD (indirect resolved)
  wireOp = 0;         // the operation field as the frontend wrote it (echoed in the response)
  idLo = 0;           // the id, as the two 32-bit halves it came in (echoed in the response)
  idHi = 0;
  sector = 0;
  nrSectors = 0;
  nrSegs = 0;
  readonly gref: Uint32Array;
  readonly first: Uint8Array;
  readonly last: Uint8Array;
  /** Indirect pages named by the request (their grants), to map before reading entries. */
  nrIndirect = 0;
  readonly indirectGref = new Uint32Array(BLKIF_MAX_INDIRECT_PAGES_PER_REQUEST);
  /** Why the plan was refused, for the log. */
  reason = '';

  constructor(maxSegs: number) {
    const n = Math.max(maxSegs, BLKIF_MAX_SEGMENTS_PER_REQUEST);
    this.gref = new Uint32Array(n);
    this.first = new Uint8Array(n);
    this.last = new Uint8Array(n);
  }

  refuse(status: number, reason: string): number {
    this.reason = reason;
    return status;
  }

  /** The id in decimal, for a log line. */
  idText(): string {
    return ((BigInt(this.idHi) << 32n) | BigInt(this.idLo)).toString();
  }
}

/**
 * Check the request copy in `dv` (112 bytes). Returns BLKIF_RSP_OKAY with `plan` filled in, or an
 * error status with `plan.reason` set. Indirect requests stop after the header: the caller maps
 * the indirect pages and hands each page's entries to parseSegments().
 */
export function checkRequest(dv: DataView, lim: VbdLimits, plan: RequestPlan): number {
  const op = dv.getUint8(RQ.operation[1]);
  plan.wireOp = op;
  plan.idLo = dv.getUint32(RQ.id[1], true);
  plan.idHi = dv.getUint32(RQ.id[1] + 4, true);
  plan.nrSegs = 0;
  plan.nrIndirect = 0;
  plan.nrSectors = 0;
  plan.sector = u64(dv, RQ.sector_number[1]);
  switch (op) {
    case BLKIF_OP_READ:
    case BLKIF_OP_WRITE: {
      plan.op = op;
      const n = dv.getUint8(RQ.nr_segments[1]);
      if (n === 0 || n > BLKIF_MAX_SEGMENTS_PER_REQUEST) return plan.refuse(BLKIF_RSP_ERROR, `nr_segments ${n} not in 1..${BLKIF_MAX_SEGMENTS_PER_REQUEST}`);
      return parseSegments(dv, BLKIF_SEG_OFFSET, n, lim, plan);
    }
    case BLKIF_OP_INDIRECT: {
      if (lim.maxIndirectSegments === 0) return plan.refuse(BLKIF_RSP_EOPNOTSUPP, 'indirect requests are not offered');
      const inner = dv.getUint8(IQ.indirect_op[1]);
      if (inner !== BLKIF_OP_READ && inner !== BLKIF_OP_WRITE) return plan.refuse(BLKIF_RSP_ERROR, `indirect_op ${inner} is not read or write`);
      plan.op = inner;
      const n = dv.getUint16(IQ.nr_segments[1], true);
      if (n === 0 || n > lim.maxIndirectSegments) return plan.refuse(BLKIF_RSP_ERROR, `indirect nr_segments ${n} not in 1..${lim.maxIndirectSegments}`);
      plan.sector = u64(dv, IQ.sector_number[1]);
      plan.nrIndirect = Math.ceil(n / BLKIF_SEGMENTS_PER_INDIRECT_FRAME);
      for (let i = 0; i < plan.nrIndirect; i++) plan.indirectGref[i] = indirect_gref(dv, i);
      plan.nrSegs = n; // entries still to be read from the indirect pages
      return BLKIF_RSP_OKAY;
    }
    case BLKIF_OP_FLUSH_DISKCACHE:
      plan.op = op;
      return lim.flush ? BLKIF_RSP_OKAY : plan.refuse(BLKIF_RSP_EOPNOTSUPP, 'flush is not offered');
    case BLKIF_OP_DISCARD: {
      plan.op = op;
      if (!lim.discard) return plan.refuse(BLKIF_RSP_EOPNOTSUPP, 'discard is not offered');
      if ((dv.getUint8(DQ.flag[1]) & BLKIF_DISCARD_SECURE) !== 0) return plan.refuse(BLKIF_RSP_EOPNOTSUPP, 'secure discard is not offered');
      if (lim.readOnly) return plan.refuse(BLKIF_RSP_ERROR, 'discard on a read-only disk');
      plan.sector = u64(dv, DQ.sector_number[1]);
      plan.nrSectors = u64(dv, DQ.nr_sectors[1]);
      return checkRange(lim, plan);
    }
    default:
      return plan.refuse(BLKIF_RSP_EOPNOTSUPP, `operation ${op} is not supported`);
  }
}

/**
 * Read `n` segment entries starting at byte `base` of `dv` (a request copy, or a private copy of
 * an indirect page) into the plan, appending, and check each. When the plan is complete, checks
 * the whole range.
 */
export function parseSegments(dv: DataView, base: number, n: number, lim: VbdLimits, plan: RequestPlan, start = 0): number {
  for (let i = 0; i < n; i++) {
    const first = seg_first_sect(dv, base, i);
    const last = seg_last_sect(dv, base, i);
    if (last >= SECTORS_PER_PAGE || last < first) {
      return plan.refuse(BLKIF_RSP_ERROR, `segment ${start + i}: first_sect ${first}, last_sect ${last}`);
    }
    plan.gref[start + i] = seg_gref(dv, base, i);
    plan.first[start + i] = first;
    plan.last[start + i] = last;
    plan.nrSectors += last - first + 1;
  }
  if (start + n < plan.nrSegs) return BLKIF_RSP_OKAY; // more indirect entries to come
  plan.nrSegs = start + n;
  if (plan.op === BLKIF_OP_WRITE && lim.readOnly) return plan.refuse(BLKIF_RSP_ERROR, 'write to a read-only disk');
  return checkRange(lim, plan);
}

function checkRange(lim: VbdLimits, plan: RequestPlan): number {
  if (!Number.isSafeInteger(plan.sector) || !Number.isSafeInteger(plan.nrSectors) || plan.sector + plan.nrSectors > lim.sectors) {
    return plan.refuse(BLKIF_RSP_ERROR, `sectors ${plan.sector}+${plan.nrSectors} beyond the disk's ${lim.sectors}`);
  }
  return BLKIF_RSP_OKAY;
}
