/*
 * The backend's view of the frontend's granted pages: persistent mappings kept across
 * requests, and transient ones made for a single request.
 *
 * Xen/Linux: drivers/block/xen-blkback/blkback.c (xen_blkbk_map, xen_blkbk_unmap, the
 * persistent_gnts tree per ring, xen_blkif_max_pgrants). With feature-persistent negotiated the
 * frontend reuses the same grants, so the backend maps each one the first time it sees it and
 * keeps it, up to a limit (Linux: 1056 per ring); past the limit, and always without the
 * feature, a grant is mapped for one request and unmapped when its I/O is done. The pages are
 * mapped into holes of Dom0's physmap (GNTMAP_host_map at a free gfn) and reached through page
 * views built once per mapping.
 */
import type { Kernel } from '../../../shared/kernel/kernel.ts';
import { GNTMAP_host_map, GNTMAP_readonly, GNTST_okay, type GnttabMapGrantRef } from '../../../shared/public/grant_table.ts';

interface Mapping {
  gfn: number;
  handle: number;
  view: Uint8Array;
  writable: boolean;
}

export class GrantMapper {
  private readonly persistent = new Map<number, Mapping>();
  private readonly transient: Mapping[] = [];
  private readonly holes: number[] = [];
  private readonly op: GnttabMapGrantRef = { host_addr: 0, flags: 0, ref: 0, dom: 0, status: 0, handle: -1 };
  private readonly unmapOp = { host_addr: 0, handle: 0, status: 0 };
  /** The status of the last failed map, for the error log. */
  lastStatus = 0;
  readonly stats = { maps: 0, unmaps: 0, persistentHits: 0 };

  constructor(
    private readonly k: Kernel,
    private readonly frontend: number,
    private readonly usePersistent: boolean,
    private readonly maxPersistent = 1056,
  ) {}

  get persistentCount(): number {
    return this.persistent.size;
  }

  /**
   * The page behind `gref`, writable if asked, or null if the hypervisor refused the map
   * (lastStatus says why). Persistent mappings are always writable: a frontend that offers
   * feature-persistent grants its pages read-write.
   */
  page(gref: number, writable: boolean): Uint8Array | null {
    if (this.usePersistent) {
      const m = this.persistent.get(gref);
      if (m !== undefined) {
        this.stats.persistentHits++;
        return m.view;
      }
      if (this.persistent.size < this.maxPersistent) {
        const fresh = this.map(gref, true);
        if (fresh === null) return null;
        this.persistent.set(gref, fresh);
        return fresh.view;
      }
    }
    const t = this.map(gref, writable);
    if (t === null) return null;
    this.transient.push(t);
    return t.view;
  }

  /** Unmap everything mapped for the request just finished. */
  releaseTransient(): void {
    for (const m of this.transient) this.unmap(m);
    this.transient.length = 0;
  }

  /** Unmap everything, persistent mappings included (disconnect). */
  releaseAll(): void {
    this.releaseTransient();
    for (const m of this.persistent.values()) this.unmap(m);
    this.persistent.clear();
    for (const gfn of this.holes) this.k.pages.releaseHole(gfn);
    this.holes.length = 0;
  }

  private map(gref: number, writable: boolean): Mapping | null {
    const gfn = this.holes.pop() ?? this.k.pages.allocHole();
    const op = this.op;
    op.host_addr = gfn;
    op.flags = GNTMAP_host_map | (writable ? 0 : GNTMAP_readonly);
    op.ref = gref;
    op.dom = this.frontend;
    this.k.hypercall.gnttab_map_grant_ref(op);
    this.stats.maps++;
    if (op.status !== GNTST_okay) {
      this.lastStatus = op.status;
      this.holes.push(gfn);
      return null;
    }
    return { gfn, handle: op.handle, view: this.k.memory.page(gfn, writable), writable };
  }

  private unmap(m: Mapping): void {
    const op = this.unmapOp;
    op.host_addr = m.gfn;
    op.handle = m.handle;
    this.k.hypercall.gnttab_unmap_grant_ref(op);
    this.stats.unmaps++;
    if (op.status !== GNTST_okay) throw new Error(`blkback: unmap of our own mapping at gfn ${m.gfn} failed (${op.status})`);
    this.holes.push(m.gfn);
  }
}
