/*
 * Grant tables, version 1: how a domain lets another domain map or copy one of its pages.
 *
 * Xen: xen/include/public/grant_table.h (grant_entry_v1, GTF_*, GNTMAP_*, GNTST_*,
 * gnttab_map_grant_ref, gnttab_unmap_grant_ref, gnttab_copy).
 *
 * The granting domain writes entries into its own table (pages it shares with the
 * hypervisor); the hypervisor reads them when another domain asks to map or copy, and
 * marks an entry in use (GTF_reading / GTF_writing) while it is.
 */

/*
 * One entry, 8 bytes, 512 to a page:
 *
 *   struct grant_entry_v1 {
 *       uint16_t flags;   // @0  GTF_* (type and permission bits, in-use bits)
 *       domid_t  domid;   // @2  the one domain allowed to use this grant
 *       uint32_t frame;   // @4  the granted frame (a gfn: ringvisor guests are auto-translated)
 *   };
 *
 * flags and domid share one 32-bit word, so the hypervisor can check "permitted for this
 * domid" and set an in-use bit in a single compare-and-swap, as Xen's `_set_status` does.
 */
export const grant_entry_v1 = {
  SIZE: 8,
  flags: 0,
  domid: 2,
  frame: 4,
  /* word indices, for the Uint32Array views the hypervisor uses */
  WORD_FLAGS_DOMID: 0,
  WORD_FRAME: 1,
} as const;
export const GRANT_ENTRIES_PER_PAGE = 4096 / grant_entry_v1.SIZE;

/** Index, in a table viewed as 32-bit words, of entry `ref`'s {flags, domid} word. */
export function gntent_flags_word(ref: number): number {
  return ref * (grant_entry_v1.SIZE >> 2) + grant_entry_v1.WORD_FLAGS_DOMID;
}
/** Index of entry `ref`'s frame word. */
export function gntent_frame_word(ref: number): number {
  return ref * (grant_entry_v1.SIZE >> 2) + grant_entry_v1.WORD_FRAME;
}

/* Type (bits 0-1) and flags (GTF_*). */
export const GTF_invalid = 0;
export const GTF_permit_access = 1;
export const GTF_type_mask = 3;
export const GTF_readonly = 1 << 2; // set by the granter: the grantee may only read
export const GTF_reading = 1 << 3;  // set by Xen while the frame is mapped or copied from
export const GTF_writing = 1 << 4;  // set by Xen while the frame is mapped writable or copied to

/* Reserved references: the domain builder fills 0 and 1 for Dom0's console and xenstore. */
export const GNTTAB_RESERVED_CONSOLE = 0;
export const GNTTAB_RESERVED_XENSTORE = 1;
export const GNTTAB_NR_RESERVED_ENTRIES = 8;

/* GNTTABOP_* numbers, for counters and traces. */
export const GNTTABOP_map_grant_ref = 0;
export const GNTTABOP_unmap_grant_ref = 1;
export const GNTTABOP_setup_table = 2;
export const GNTTABOP_copy = 5;
export const GNTTABOP_query_size = 6;

/* Map flags. ringvisor maps into the caller's physmap (GNTMAP_host_map at a gfn). */
export const GNTMAP_host_map = 1 << 1;
export const GNTMAP_readonly = 1 << 2;

/* Copy flags: which side of a gnttab_copy names a grant reference instead of a local gfn. */
export const GNTCOPY_source_gref = 1 << 0;
export const GNTCOPY_dest_gref = 1 << 1;

/* Status codes (GNTST_*), written into each op, never thrown. */
export const GNTST_okay = 0;
export const GNTST_general_error = -1;
export const GNTST_bad_domain = -2;
export const GNTST_bad_gntref = -3;
export const GNTST_bad_handle = -4;
export const GNTST_bad_virt_addr = -5;
export const GNTST_permission_denied = -8;
export const GNTST_bad_page = -9;
export const GNTST_bad_copy_arg = -10;
export const GNTST_eagain = -12;
export const GNTST_NAMES: Readonly<Record<number, string>> = {
  0: 'okay', [-1]: 'general_error', [-2]: 'bad_domain', [-3]: 'bad_gntref', [-4]: 'bad_handle',
  [-5]: 'bad_virt_addr', [-8]: 'permission_denied', [-9]: 'bad_page', [-10]: 'bad_copy_arg',
  [-12]: 'eagain',
};

/** gnttab_map_grant_ref: map `dom`'s grant `ref` at the caller's gfn `host_addr`. */
export interface GnttabMapGrantRef {
  /* IN */
  host_addr: number; // the caller's gfn to map at (a hole in its physmap)
  flags: number;     // GNTMAP_host_map | GNTMAP_readonly?
  ref: number;
  dom: number;
  /* OUT */
  status: number;
  handle: number;    // names this mapping for unmap
}

/** gnttab_unmap_grant_ref. */
export interface GnttabUnmapGrantRef {
  host_addr: number;
  handle: number;
  status: number;
}

/** One side of a gnttab_copy: a grant ref of `domid`, or (flag clear) one of the caller's own gfns. */
export interface GnttabCopyPtr {
  ref: number;   // grant ref when the GNTCOPY_*_gref flag is set
  gfn: number;   // otherwise the caller's own gfn
  domid: number;
  offset: number;
}

/** gnttab_copy: copy `len` bytes, neither side crossing its page. */
export interface GnttabCopy {
  source: GnttabCopyPtr;
  dest: GnttabCopyPtr;
  len: number;
  flags: number;
  status: number;
}

export function newGnttabCopy(): GnttabCopy {
  return {
    source: { ref: 0, gfn: 0, domid: 0, offset: 0 },
    dest: { ref: 0, gfn: 0, domid: 0, offset: 0 },
    len: 0, flags: 0, status: 0,
  };
}
