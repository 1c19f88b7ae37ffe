/*
 * The backend's view of the frontend's granted pages: persistent mappings kept across
 * requests, and transient ones made for a single piece of a request.
 *
 * Xen/Linux: drivers/block/xen-blkback/blkback.c (xen_blkbk_map, xen_blkbk_unmap, the
 * persistent_gnts tree per ring, xen_blkif_max_pgrants, purge_persistent_gnt). With
 * feature-persistent negotiated the frontend reuses the same grants, so the backend maps each
 * one the first time it sees it and keeps it, up to a limit per ring (Linux: max_persistent_grants,
 * 1056; here also the ring's share of its frontend's budget, see backends/lib/grant-budget.ts); past
 * the limit, and always without the feature, a grant is mapped for one piece of work and
 * unmapped when its I/O is done. The pages are mapped into holes of Dom0's physmap
 * (GNTMAP_host_map at a free gfn) and reached through page views built once per mapping.
 *
 * The purge (Linux's purge_persistent_gnt, run from xen_blkif_schedule every LRU_INTERVAL). A
 * ring that has reached its limit and wanted more (overflow: Linux's overflow_max_grants) is
 * not stuck with the first grants it met: at most every LRU_INTERVAL_MS it unmaps the mappings
 * beyond the limit plus LRU_PERCENT_CLEAN % of it, first those not used since the last purge
 * (PERSISTENT_GNT_WAS_ACTIVE clear), then, if that is not enough, others, never one in use by the
 * piece being served (PERSISTENT_GNT_ACTIVE, Linux's persistent_gnt_in_use); then it clears every
 * "used" mark. So a frontend whose working set moved (new buffers) gets persistent mappings for
 * the new set within a few intervals, and one whose working set is larger than the limit keeps the
 * limit's worth persistent and maps the rest per request, as Linux does. The purge runs between
 * turns (purgeIfDue, from the ring's serve()), when no piece holds a page.
 *
 * Ownership: a GrantMapper is the one owner of every mapping it made. Its user releases the
 * transient ones in a `finally` after each piece (releaseTransient), and everything, persistent
 * included, when the ring goes (releaseAll), whatever way it goes. Running out (the frontend's
 * budget, Dom0's holes, Dom0's maptrack) is a null from page() with the reason in lastError:
 * the request that wanted the page fails, nothing throws. Only an unmap of our own mapping
 * failing throws: that is a broken host invariant.
 */
import type { Kernel } from '../../shared/kernel/kernel.ts';
import { GNTMAP_host_map, GNTMAP_readonly, GNTST_okay, type GnttabMapGrantRef } from '../../shared/public/grant_table.ts';
import type { GrantBudget } from '../lib/grant-budget.ts';

/** Linux blkback's max_persistent_grants, per ring. */
export const MAX_PERSISTENT_PER_RING = 1056;
/** Linux blkback's LRU_INTERVAL: the shortest time between two purges of one ring, in ms. */
export const LRU_INTERVAL_MS = 100;
/** Linux blkback's LRU_PERCENT_CLEAN: a purge frees this share of the limit beyond the excess. */
export const LRU_PERCENT_CLEAN = 5;

/**
 * How many persistent mappings one of a frontend's `rings` rings keeps: Linux's per-ring
 * max_persistent_grants, but no more than the ring can ever have in flight (its slots times the
 * pages one request names: segments plus indirect pages) and no more than its share of what the
 * frontend may keep in all (GrantBudget's persistentPerFrontend), so every ring of a device gets
 * room and no ring's early requests take the others'.
 */
export function persistentPerRing(perFrontend: number, rings: number, slots: number, pagesPerRequest: number): number {
  return Math.max(1, Math.min(MAX_PERSISTENT_PER_RING, Math.floor(perFrontend / Math.max(1, rings)), slots * pagesPerRequest));
}

interface Mapping {
  gfn: number;
  handle: number;
  view: Uint8Array;
  persistent: boolean;
  /** PERSISTENT_GNT_ACTIVE: the piece being served holds it. */
  active: boolean;
  /** PERSISTENT_GNT_WAS_ACTIVE: used since the last purge. */
  wasActive: boolean;
}

export class GrantMapper {
  private readonly persistent = new Map<number, Mapping>();
  private readonly transient: Mapping[] = [];
  /** Persistent mappings the current piece holds (Linux's persistent_gnt_in_use). */
  private readonly inUse: Mapping[] = [];
  /** A grant was mapped per request because this ring was at its limit (overflow_max_grants). */
  private overflow = false;
  /** performance.now() before which no purge runs (Linux's ring->next_lru). */
  private nextLru = 0;
  private readonly op: GnttabMapGrantRef = { host_addr: 0, flags: 0, ref: 0, dom: 0, status: 0, handle: -1 };
  private readonly unmapOp = { host_addr: 0, handle: 0, status: 0 };
  /** Why the last page() returned null, for the error log. */
  lastError = '';
  /** Where the last page() mapped its grant in our physmap: the bus address a device DMAs to. */
  lastGfn = -1;
  readonly stats = { maps: 0, unmaps: 0, persistentHits: 0, refused: 0, purged: 0, purges: 0 };

  constructor(
    private readonly k: Kernel,
    private readonly frontend: number,
    private readonly budget: GrantBudget,
    private readonly usePersistent: boolean,
    /** The most persistent mappings this owner keeps (its ring may lower it once it knows its geometry). */
    public maxPersistent = MAX_PERSISTENT_PER_RING,
  ) {}

  get persistentCount(): number {
    return this.persistent.size;
  }

  /** Mappings held now, of both kinds. */
  get held(): number {
    return this.persistent.size + this.transient.length;
  }

  /**
   * The page behind `gref`, writable if asked, or null if it cannot be mapped (lastError says
   * why). Persistent mappings are always writable: a frontend that offers feature-persistent
   * grants its pages read-write.
   */
  page(gref: number, writable: boolean): Uint8Array | null {
    if (this.usePersistent) {
      const m = this.persistent.get(gref);
      if (m !== undefined) {
        this.stats.persistentHits++;
        this.lastGfn = m.gfn;
        this.hold(m);
        return m.view;
      }
      if (this.persistent.size < this.maxPersistent && this.budget.takePersistent(this.frontend)) {
        const fresh = this.map(gref, true, true);
        if (fresh === null) return null;
        this.persistent.set(gref, fresh);
        this.lastGfn = fresh.gfn;
        this.hold(fresh);
        return fresh.view;
      }
      if (this.persistent.size >= this.maxPersistent) this.overflow = true;
    }
    if (!this.budget.take(this.frontend)) {
      this.stats.refused++;
      this.lastError = `d${this.frontend} holds its limit of ${this.budget.limits.perFrontend} mappings in Dom0`;
      return null;
    }
    const t = this.map(gref, writable, false);
    if (t === null) return null;
    this.transient.push(t);
    this.lastGfn = t.gfn;
    return t.view;
  }

  private hold(m: Mapping): void {
    m.wasActive = true;
    if (m.active) return;
    m.active = true;
    this.inUse.push(m);
  }

  /** The piece just finished: unmap its transient mappings; its persistent ones are no longer in use. */
  releaseTransient(): void {
    const tr = this.transient;
    while (tr.length > 0) this.unmap(tr.pop()!);
    const held = this.inUse;
    while (held.length > 0) held.pop()!.active = false;
  }

  /**
   * purge_persistent_gnt, if this ring overflowed and the last purge is LRU_INTERVAL_MS ago (see
   * the header). One boolean test when nothing overflowed. `now` is performance.now() (a test may
   * pass its own).
   */
  purgeIfDue(now = performance.now()): void {
    if (!this.overflow) return;
    if (now < this.nextLru) return;
    this.nextLru = now + LRU_INTERVAL_MS;
    this.overflow = false;
    const count = this.persistent.size;
    if (count < this.maxPersistent) return;
    let clean = Math.min(count, count - this.maxPersistent + Math.floor((this.maxPersistent * LRU_PERCENT_CLEAN) / 100));
    if (clean === 0) return;
    this.stats.purges++;
    // First pass: not used since the last purge; second: any not in use now.
    for (const scanUsed of [false, true]) {
      for (const [gref, m] of this.persistent) {
        if (clean === 0) break;
        if (m.active || (!scanUsed && m.wasActive)) continue;
        this.persistent.delete(gref);
        this.unmap(m);
        this.stats.purged++;
        clean--;
      }
    }
    for (const m of this.persistent.values()) m.wasActive = false;
  }

  /** Unmap everything, persistent mappings included (disconnect, or a failed set-up). */
  releaseAll(): void {
    this.releaseTransient();
    for (const m of this.persistent.values()) this.unmap(m);
    this.persistent.clear();
  }

  /** Map `gref`; the budget was taken by the caller and is given back here if the map fails. */
  private map(gref: number, writable: boolean, persistent: boolean): Mapping | null {
    const gfn = this.k.pages.tryAllocHole();
    if (gfn < 0) {
      this.budget.give(this.frontend, persistent);
      this.stats.refused++;
      this.lastError = 'Dom0 is out of physmap holes';
      return null;
    }
    const op = this.op;
    op.host_addr = gfn;
    op.flags = GNTMAP_host_map | (writable ? 0 : GNTMAP_readonly);
    op.ref = gref;
    op.dom = this.frontend;
    this.k.hypercall.gnttab_map_grant_ref(op);
    this.stats.maps++;
    if (op.status !== GNTST_okay) {
      this.budget.give(this.frontend, persistent);
      this.lastError = `grant ref ${gref} cannot be mapped (status ${op.status})`;
      this.k.pages.releaseHole(gfn);
      return null;
    }
    return { gfn, handle: op.handle, view: this.k.memory.page(gfn, writable), persistent, active: false, wasActive: false };
  }

  private unmap(m: Mapping): void {
    const op = this.unmapOp;
    op.host_addr = m.gfn;
    op.handle = m.handle;
    this.k.hypercall.gnttab_unmap_grant_ref(op);
    this.stats.unmaps++;
    if (op.status !== GNTST_okay) throw new Error(`blkback: unmap of our own mapping at gfn ${m.gfn} failed (${op.status})`);
    this.budget.give(this.frontend, m.persistent);
    this.k.pages.releaseHole(m.gfn);
  }
}
