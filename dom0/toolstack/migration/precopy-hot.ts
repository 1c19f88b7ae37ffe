/*
 * The writable working set during a precopy: pages dirtied in two rounds running are not sent in
 * the next one, but carried until they cool (a round in which they were not written) or to the
 * stop-and-copy, which sends them once, in their last state.
 *
 * Xen: Clark et al. (NSDI 2005, section 4, "the writable working set"): pages a guest rewrites
 * faster than a round can copy them are poor candidates for precopy and are best left to the
 * stop-and-copy. libxc's own saver (xg_sr_save.c) sends every page the log returns; legacy
 * xc_domain_save.c skipped, within a round, the pages already dirty again (to_skip: SkipDirty in
 * ./save-restore.ts, also done here). This adds the other half of that idea across rounds: the log
 * returns L(k) after round k; round k+1 sends L(k) except those pages in both L(k) and L(k-1),
 * which it carries instead, and the carried pages that have cooled (gone unwritten for as long as
 * the round they were last written in). A carried page is therefore never lost: it is sent by a
 * later round or by the stop-and-copy (to which the carried pages are added whatever the log
 * says). The precopy policy (libxc's: fewer than 50 dirty, or 5 rounds) still counts the log's
 * dirty pages, as xenguest.h's precopy_stats.dirty_count does; only what a round sends changes.
 *
 * Why: a guest rewriting 16 MiB faster than a round goes (mem-touch) made rounds 2-5 resend 2,000-
 * 3,800 pages each, every one of them written again before the stop-and-copy, which sent them all
 * anyway: a third of the live move's total, spent for nothing.
 */
export class HotPages {
  /* Per gfn: LAST (in the log's list before this one), NOW (in this one). */
  private readonly flags: Uint8Array;
  /* Per carried gfn: how long the round it was last dirtied in took, and how long it has been unwritten since. */
  private readonly hotMs: Float64Array;
  private readonly quietMs: Float64Array;
  private last: readonly number[] | null = null;
  private carried: number[] = [];

  constructor(nr: number) {
    this.flags = new Uint8Array(nr);
    this.hotMs = new Float64Array(nr);
    this.quietMs = new Float64Array(nr);
  }

  /** Pages held back now, to be sent by a later round or the stop-and-copy. */
  get carriedCount(): number {
    return this.carried.length;
  }

  /**
   * The log's list after a round that took `ms` (gfns below `nr`): what the next round sends,
   * ascending. The pages of this list that were in the list before too are carried instead. A
   * carried page cools, and is sent, once it has gone unwritten for as long as the round it was
   * last written in took: a short round (one that had little to send) says little about a page,
   * and would otherwise let the whole working set go again in the round after it.
   */
  next(dirty: readonly number[], ms: number): number[] {
    const f = this.flags;
    for (const g of dirty) f[g] |= NOW;
    const send: number[] = [];
    const hot: number[] = [];
    for (const g of dirty) {
      if ((f[g] & LAST) === 0) { send.push(g); continue; }
      hot.push(g);
      this.hotMs[g] = ms;
      this.quietMs[g] = 0;
    }
    // Carried pages are in the list before (hot again if in this one, above); the others wait until they have cooled.
    for (const g of this.carried) {
      if ((f[g] & NOW) !== 0) continue;
      this.quietMs[g] += ms;
      if (this.quietMs[g] >= this.hotMs[g]) send.push(g);
      else hot.push(g);
    }
    for (const g of this.last ?? []) f[g] = 0;
    for (const g of dirty) f[g] = LAST;
    this.last = dirty;
    this.carried = hot;
    return send.sort((a, b) => a - b);
  }

  /** The stop-and-copy's list: the log's list after the last round, and every page still carried. */
  final(dirty: readonly number[]): number[] {
    const all = new Set(dirty);
    for (const g of this.carried) all.add(g);
    this.carried = [];
    return [...all].sort((a, b) => a - b);
  }
}

const LAST = 1;
const NOW = 2;
