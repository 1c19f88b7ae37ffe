/*
 * Splitting a block request into blkif requests: a request bigger than one blkif request can
 * carry (11 segments, or the negotiated indirect maximum) becomes a group of parts, completed as
 * one when the last part is answered. Done at submit for new requests (blkfront.ts), and again
 * when a dead backend's unanswered parts are re-issued to a new one that may take fewer segments.
 *
 * Linux: xen-blkfront.c, blkif_queue_request's splitting of a request over several ring slots
 * (blkif_setup_extra_req) and blkif_recover, which re-splits what was in flight to the new
 * backend's limits.
 */
import { BLKIF_OP_READ, BLKIF_OP_WRITE, SECTORS_PER_PAGE } from '../../shared/public/io/blkif.ts';
import type { Part } from './shadow.ts';

/** Parts no bigger than `maxSectors`: a bigger data part becomes a group of parts, completed as one. */
export function splitParts(parts: Part[], maxSectors: number): Part[] {
  const out: Part[] = [];
  for (const p of parts) {
    const data = p.op === BLKIF_OP_READ || p.op === BLKIF_OP_WRITE;
    if (!data || p.nrSectors <= maxSectors) {
      out.push(p);
      continue;
    }
    const n = Math.ceil(p.nrSectors / maxSectors);
    const group: Group = { group: true, req: p.owner, left: n, status: 0 };
    for (let i = 0; i < n; i++) {
      const s = i * maxSectors;
      out.push({ op: p.op, sector: p.sector + s, nrSectors: Math.min(maxSectors, p.nrSectors - s), gfns: p.gfns, firstPage: p.firstPage + s / SECTORS_PER_PAGE, owner: group });
    }
  }
  return out;
}

/** The parts of a block request bigger than one blkif request. */
export interface Group { group: true; req: unknown; left: number; status: number }
