/*
 * What blkfront keeps of each request it sends: the part of a block request it carries, and,
 * per ring slot id, the shadow entry recording what went on the wire (the grants to end or give
 * back, the bounce pages to copy back from) and the part itself, to issue again if the backend
 * dies before answering.
 *
 * Linux: xen-blkfront.c's struct blk_shadow (the shadow array of blkfront_ring_info, indexed by
 * the request id), which blkif_completion reads and blkif_recover re-issues from.
 */

/** One blkif request's worth of a block request (a request bigger than one blkif request has several). */
export interface Part {
  op: number;             // READ, WRITE, FLUSH_DISKCACHE or DISCARD
  sector: number;
  nrSectors: number;
  gfns: readonly number[];
  firstPage: number;      // index into gfns of the part's first page
  /** The block request it belongs to, handed back at completion. */
  owner: unknown;
}

export interface Shadow {
  busy: boolean;
  wireOp: number;
  owner: unknown;
  refs: number[];   // the grant of each segment, in order
  grefs: number[];  // transient grants to end when the response arrives
  pooled: number[]; // pool entries to give back when the response arrives
  // Bounce pages in use, and for each the caller's page and the bytes to copy back on a read.
  bounce: number[];
  bounceGfn: number[];
  bounceBytes: number[];
  // The part itself, kept so that it can be issued again if the backend dies before answering
  // (Linux keeps the request in the shadow for blkif_recover). Plain fields: nothing allocated.
  op: number;
  sector: number;
  nrSectors: number;
  gfns: readonly number[];
  firstPage: number;
}

/** A free shadow entry (one per ring slot, made once: nothing is allocated per request). */
export function newShadow(): Shadow {
  return {
    busy: false, wireOp: 0, owner: null, refs: [], grefs: [], pooled: [], bounce: [], bounceGfn: [], bounceBytes: [],
    op: 0, sector: 0, nrSectors: 0, gfns: [], firstPage: 0,
  };
}
