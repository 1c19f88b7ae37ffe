/*
 * The log-dirty part of the domctl ABI: XEN_DOMCTL_shadow_op's operations, mode flags and the
 * statistics it returns, as the migration saver uses them.
 *
 * Xen: xen/include/public/domctl.h (struct xen_domctl_shadow_op, XEN_DOMCTL_SHADOW_OP_*,
 * XEN_DOMCTL_SHADOW_LOGDIRTY_FINAL, struct xen_domctl_shadow_op_stats). The dirty bitmap is one
 * bit per guest frame, bit (gfn % 32) of word (gfn / 32), as Xen's unsigned-long bitmap read on a
 * little-endian machine.
 */

export const XEN_DOMCTL_SHADOW_OP_OFF = 0;
/** Turn log-dirty on: every write to a guest frame from now on is recorded in the dirty bitmap. */
export const XEN_DOMCTL_SHADOW_OP_ENABLE_LOGDIRTY = 2;
/** Hand back the dirty bitmap and clear it (the end of one precopy round). */
export const XEN_DOMCTL_SHADOW_OP_CLEAN = 11;
/** Hand back the dirty bitmap and keep it. */
export const XEN_DOMCTL_SHADOW_OP_PEEK = 12;

/**
 * CLEAN / PEEK mode flag: the last round. Also report the pages that are mapped writably where the
 * log cannot see each write (long-lived writable views, pages granted writably to a backend that
 * still holds the mapping), as Xen's LOGDIRTY_FINAL adds the pages it maps writably itself.
 */
export const XEN_DOMCTL_SHADOW_LOGDIRTY_FINAL = 1;

export type ShadowOp =
  | typeof XEN_DOMCTL_SHADOW_OP_OFF | typeof XEN_DOMCTL_SHADOW_OP_ENABLE_LOGDIRTY
  | typeof XEN_DOMCTL_SHADOW_OP_CLEAN | typeof XEN_DOMCTL_SHADOW_OP_PEEK;

/** struct xen_domctl_shadow_op_stats: what happened since the last CLEAN. */
export interface ShadowOpStats {
  /** Writes the write gate found to a page not yet dirty this round (Xen: log-dirty faults taken). */
  fault_count: number;
  /** Pages in the bitmap handed back. */
  dirty_count: number;
}

/** struct xen_domctl_shadow_op's out half. */
export interface ShadowOpResult {
  /** Bits written to the caller's bitmap (its size in pages, capped at the domain's window). */
  pages: number;
  stats: ShadowOpStats;
}
