/*
 * A domain's view of memory: guest-physical addresses, translated by the hypervisor's P2M.
 *
 * Xen: the guest physmap of an auto-translated (PVH/HVM) guest, the nested page tables that
 * enforce it, and XENMEM_* (xen/include/public/memory.h). ringvisor has no MMU to program, so
 * every guest access goes through this object, which is the MMU: it refuses, as a page fault,
 * any frame the domain neither owns nor has mapped through a grant.
 *
 * Two kinds of page view serve hot paths. `page()` / `pageWords()` are checked once, when made,
 * and keep working for as long as they are held: right for the domain's own RAM, which nothing
 * takes back today. `map()` is for a page that can be taken away (a grant mapping, a foreign
 * mapping): its `bytes()` / `words()` are checked against the domain's P2M each time they are
 * called, once per request, and fault as an unmapped page does once the mapping has ended.
 */

/** An access to a guest-physical address with no valid translation, or a write to a read-only one. */
export class PageFault extends Error {
  override readonly name = 'PageFault';
  constructor(
    readonly domid: number,
    readonly gpa: number,
    readonly access: 'read' | 'write',
    readonly why: string,
  ) {
    super(`page fault: d${domid} ${access} at gpa 0x${gpa.toString(16)} (gfn 0x${Math.floor(gpa / 4096).toString(16)}): ${why}`);
  }
}

/**
 * A page view the hypervisor can take back (hypervisor/guest-memory.ts, "Taking a frame back").
 * Call `bytes()` or `words()` once per request and drop the array when the request is done: the
 * call is where the mapping is checked, as a TLB refill is where a real MMU checks it.
 */
export interface GuestPage {
  readonly gfn: number;
  readonly writable: boolean;
  /** The page's bytes, or a PageFault if the gfn no longer translates (or no longer for writing). */
  bytes(): Uint8Array;
  /** The same page as 32-bit words, for Atomics on shared indices. */
  words(): Int32Array;
}

export interface GuestMemory {
  /** Copy `dst.length` bytes from guest-physical address `gpa` into private memory. */
  read(gpa: number, dst: Uint8Array): void;
  /** Copy `src` into guest-physical memory at `gpa`. */
  write(gpa: number, src: Uint8Array): void;
  /** Copy within the guest's own physical memory. */
  copy(dstGpa: number, srcGpa: number, len: number): void;
  /** Zero `len` bytes at `gpa`. */
  fill(gpa: number, len: number, value?: number): void;
  readU32(gpa: number): number;
  writeU32(gpa: number, value: number): void;
  /**
   * A view of one whole page for a hot path (a ring, a persistently mapped buffer): checked
   * once here, then used without further translation, as a kernel keeps a mapping in its page
   * tables. Asking for a writable view is a write for log-dirty purposes.
   */
  page(gfn: number, writable: boolean): Uint8Array;
  /** The same page as 32-bit words, for Atomics on shared indices. */
  pageWords(gfn: number, writable: boolean): Int32Array;
  /**
   * A view of `gfn` that follows the P2M: checked now (a PageFault if it does not translate) and
   * again at every `bytes()` / `words()` after the domain's P2M has changed.
   */
  map(gfn: number, writable: boolean): GuestPage;
  /** True if `gfn` currently has a translation (RAM, a special page or a grant mapping). */
  present(gfn: number): boolean;
}

/* XENMEM_* sub-ops of __HYPERVISOR_memory_op (xen/include/public/memory.h), as the balloon uses them. */
export const XENMEM_increase_reservation = 0;
export const XENMEM_decrease_reservation = 1;
export const XENMEM_populate_physmap = 6;
/** xl's slack over a domain's memory target for its max_pages (libxl LIBXL_MAXMEM_CONSTANT, x86). */
export const LIBXL_MAXMEM_CONSTANT_KIB = 1024;
/** XenStore keys under a domain's home (docs/misc/xenstore-paths.pandoc), in KiB. */
export const XS_MEMORY_TARGET = 'memory/target';
export const XS_MEMORY_STATIC_MAX = 'memory/static-max';
