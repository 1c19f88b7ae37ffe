/*
 * The backend's view of the frontend's granted pages: persistent mappings kept across
 * requests, and transient ones made for a single piece of a request.
 *
 * Xen/Linux: drivers/block/xen-blkback/blkback.c (xen_blkbk_map, xen_blkbk_unmap, the
 * persistent_gnts tree per ring, xen_blkif_max_pgrants). With feature-persistent negotiated the
 * frontend reuses the same grants, so the backend maps each one the first time it sees it and
 * keeps it, up to a limit (Linux: 1056 per ring; here also the frontend's share of Dom0, see
 * dom0/lib/grant-budget.ts); past the limit, and always without the feature, a grant is mapped
 * for one piece of work and unmapped when its I/O is done. The pages are mapped into holes of
 * Dom0's physmap (GNTMAP_host_map at a free gfn) and reached through page views built once per
 * mapping.
 *
 * Ownership: a GrantMapper is the one owner of every mapping it made. Its user releases the
 * transient ones in a `finally` after each piece (releaseTransient), and everything, persistent
 * included, when the ring goes (releaseAll), whatever way it goes. Running out (the frontend's
 * budget, Dom0's holes, Dom0's maptrack) is a null from page() with the reason in lastError:
 * the request that wanted the page fails, nothing throws. Only an unmap of our own mapping
 * failing throws: that is a broken host invariant.
 */
import type { Kernel } from '../../../shared/kernel/kernel.ts';
import { GNTMAP_host_map, GNTMAP_readonly, GNTST_okay, type GnttabMapGrantRef } from '../../../shared/public/grant_table.ts';
import type { GrantBudget } from '../../lib/grant-budget.ts';

/** Linux blkback's max_persistent_grants, per ring. */
export const MAX_PERSISTENT_PER_RING = 1056;

interface Mapping {
  gfn: number;
  handle: number;
  view: Uint8Array;
  persistent: boolean;
}

export class GrantMapper {
  private readonly persistent = new Map<number, Mapping>();
  private readonly transient: Mapping[] = [];
  private readonly op: GnttabMapGrantRef = { host_addr: 0, flags: 0, ref: 0, dom: 0, status: 0, handle: -1 };
  private readonly unmapOp = { host_addr: 0, handle: 0, status: 0 };
  /** Why the last page() returned null, for the error log. */
  lastError = '';
  /** Where the last page() mapped its grant in our physmap: the bus address a device DMAs to. */
  lastGfn = -1;
  readonly stats = { maps: 0, unmaps: 0, persistentHits: 0, refused: 0 };

  constructor(
    private readonly k: Kernel,
    private readonly frontend: number,
    private readonly budget: GrantBudget,
    private readonly usePersistent: boolean,
    private readonly maxPersistent = MAX_PERSISTENT_PER_RING,
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
        return m.view;
      }
      if (this.persistent.size < this.maxPersistent && this.budget.takePersistent(this.frontend)) {
        const fresh = this.map(gref, true, true);
        if (fresh === null) return null;
        this.persistent.set(gref, fresh);
        this.lastGfn = fresh.gfn;
        return fresh.view;
      }
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

  /** Unmap everything mapped for the piece just finished. */
  releaseTransient(): void {
    const tr = this.transient;
    while (tr.length > 0) this.unmap(tr.pop()!);
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
    return { gfn, handle: op.handle, view: this.k.memory.page(gfn, writable), persistent };
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
