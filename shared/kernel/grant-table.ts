/*
 * The guest kernel's grant table: handing out access to its own pages.
 *
 * Xen/Linux: drivers/xen/grant-table.c (gnttab_grant_foreign_access,
 * gnttab_end_foreign_access_ref, the free-reference list, deferred ending of a grant that is
 * still in use); the entry layout is xen/include/public/grant_table.h.
 *
 * The table's frames belong to the hypervisor, mapped into the guest's physmap just above
 * shared_info (by the builder here; an HVM guest asks with XENMAPSPACE_grant_table), and the
 * kernel writes entries directly. Publishing order matters: the frame
 * and domid first, then the flags word that makes the entry valid, so the hypervisor never
 * sees a valid entry with a stale frame. Ending access is a compare-and-swap that fails if the
 * hypervisor has marked the entry reading or writing, i.e. while the grantee still maps it.
 *
 * vCPUs do not share a heap, so each vCPU's kernel owns a disjoint slice of references.
 */
import {
  GNTTAB_NR_RESERVED_ENTRIES, GRANT_ENTRIES_PER_PAGE, GTF_permit_access, GTF_readonly, GTF_reading, GTF_writing,
  gntent_flags_word, gntent_frame_word,
} from '../public/grant_table.ts';
import type { Hypercalls } from '../public/hypercall.ts';
import type { GuestMemory } from '../public/memory.ts';

export class GrantTable {
  /** Each grant frame as 32-bit words: entry r is words 2r (flags | domid << 16) and 2r+1 (frame). */
  private readonly frames: Int32Array[] = [];
  private readonly next: Int32Array;
  private head = -1;
  private freeCount = 0;
  private readonly deferred: number[] = [];
  readonly nr_entries: number;

  /** The table is mapped at `firstGfn`...; references [first, first + count) are this vCPU's. */
  constructor(hypercall: Hypercalls, memory: GuestMemory, firstGfn: number, slice: { first: number; count: number }) {
    const { nr_frames } = hypercall.gnttab_query_size();
    for (let i = 0; i < nr_frames; i++) this.frames.push(memory.pageWords(firstGfn + i, true));
    this.nr_entries = nr_frames * GRANT_ENTRIES_PER_PAGE;
    this.next = new Int32Array(this.nr_entries);
    const first = Math.max(slice.first, GNTTAB_NR_RESERVED_ENTRIES);
    const end = Math.min(first + slice.count, this.nr_entries);
    for (let ref = end - 1; ref >= first; ref--) this.put(ref);
  }

  get available(): number {
    return this.freeCount;
  }

  private put(ref: number): void {
    this.next[ref] = this.head;
    this.head = ref;
    this.freeCount++;
  }

  /** gnttab_claim_grant_reference: a free ref, or -1. */
  claim(): number {
    if (this.head < 0) this.retryDeferred();
    const ref = this.head;
    if (ref < 0) return -1;
    this.head = this.next[ref];
    this.freeCount--;
    return ref;
  }

  /** gnttab_grant_foreign_access_ref: let `domid` map (or read only) our page `gfn` via `ref`. */
  grantRef(ref: number, domid: number, gfn: number, readonly: boolean): void {
    const page = this.frames[Math.floor(ref / GRANT_ENTRIES_PER_PAGE)];
    const r = ref % GRANT_ENTRIES_PER_PAGE;
    page[gntent_frame_word(r)] = gfn;
    Atomics.store(page, gntent_flags_word(r), (domid << 16) | GTF_permit_access | (readonly ? GTF_readonly : 0));
  }

  /** gnttab_grant_foreign_access: claim a ref and grant it. Throws when none are left. */
  grant(domid: number, gfn: number, readonly: boolean): number {
    const ref = this.claim();
    if (ref < 0) throw new Error('out of grant references');
    this.grantRef(ref, domid, gfn, readonly);
    return ref;
  }

  /** gnttab_end_foreign_access_ref: revoke, unless the grantee still has it mapped (false then). */
  endAccessRef(ref: number): boolean {
    const page = this.frames[Math.floor(ref / GRANT_ENTRIES_PER_PAGE)];
    const w = gntent_flags_word(ref % GRANT_ENTRIES_PER_PAGE);
    for (;;) {
      const flags = Atomics.load(page, w);
      if ((flags & (GTF_reading | GTF_writing)) !== 0) return false;
      if (Atomics.compareExchange(page, w, flags, 0) === flags) return true;
    }
  }

  /** gnttab_free_grant_reference. */
  release(ref: number): void {
    this.put(ref);
  }

  /**
   * gnttab_end_foreign_access: revoke and free; if the grantee still maps it, keep it on a
   * deferred list and try again later (Linux's gnttab_add_deferred), never reusing it early.
   */
  endAccess(ref: number): boolean {
    if (this.endAccessRef(ref)) {
      this.put(ref);
      return true;
    }
    this.deferred.push(ref);
    return false;
  }

  /** Grants whose end was deferred because the grantee still had them mapped. */
  get deferredCount(): number {
    return this.deferred.length;
  }

  retryDeferred(): void {
    for (let i = this.deferred.length - 1; i >= 0; i--) {
      const ref = this.deferred[i];
      if (this.endAccessRef(ref)) {
        this.deferred.splice(i, 1);
        this.put(ref);
      }
    }
  }

  /** The raw flags of an entry (for tests and diagnostics). */
  flags(ref: number): number {
    return Atomics.load(this.frames[Math.floor(ref / GRANT_ENTRIES_PER_PAGE)], gntent_flags_word(ref % GRANT_ENTRIES_PER_PAGE)) & 0xffff;
  }
}
