/*
 * The core guest ABI: page size, domain ids, errno values, shutdown reasons, and the two
 * pages the domain builder hands every guest: start_info and shared_info.
 *
 * Xen: xen/include/public/xen.h (start_info, shared_info, vcpu_info, DOMID_*, SCHEDOP_*
 * reasons) and xen/include/public/errno.h.
 *
 * ringvisor guests are auto-translated (as PVH and HVM guests are): every "mfn" field a guest
 * sees is really a guest frame number (gfn), and the hypervisor's P2M turns it into a machine
 * frame. Where a layout differs from Xen's it says so next to the offset.
 */

export const PAGE_SHIFT = 12;
export const PAGE_SIZE = 1 << PAGE_SHIFT;
export const PAGE_WORDS = PAGE_SIZE >> 2;

/* Domain ids (xen.h). Real domains are 0 .. DOMID_FIRST_RESERVED-1. */
export const DOMID_FIRST_RESERVED = 0x7ff0;
export const DOMID_SELF = 0x7ff0;
export const DOMID_IO = 0x7ff1;
export const DOMID_XEN = 0x7ff2;
export const DOMID_INVALID = 0x7ff4;

/*
 * Error numbers (public/errno.h). Hypercalls return them negated, as Xen does: a result
 * below zero is -errno, anything else is the call's answer.
 */
export const XEN_EPERM = 1;
export const XEN_ENOENT = 2;
export const XEN_ESRCH = 3;
export const XEN_EINTR = 4;
export const XEN_EIO = 5;
export const XEN_E2BIG = 7;
export const XEN_EAGAIN = 11;
export const XEN_ENOMEM = 12;
export const XEN_EACCES = 13;
export const XEN_EFAULT = 14;
export const XEN_EBUSY = 16;
export const XEN_EEXIST = 17;
export const XEN_EINVAL = 22;
export const XEN_ENOSPC = 28;
export const XEN_EROFS = 30;
export const XEN_ENOSYS = 38;
export const XEN_EOPNOTSUPP = 95;

export const ERRNO_NAMES: Readonly<Record<number, string>> = {
  [XEN_EPERM]: 'EPERM', [XEN_ENOENT]: 'ENOENT', [XEN_ESRCH]: 'ESRCH', [XEN_EINTR]: 'EINTR',
  [XEN_EIO]: 'EIO', [XEN_E2BIG]: 'E2BIG', [XEN_EAGAIN]: 'EAGAIN', [XEN_ENOMEM]: 'ENOMEM',
  [XEN_EACCES]: 'EACCES', [XEN_EFAULT]: 'EFAULT', [XEN_EBUSY]: 'EBUSY', [XEN_EEXIST]: 'EEXIST',
  [XEN_EINVAL]: 'EINVAL', [XEN_ENOSPC]: 'ENOSPC', [XEN_EROFS]: 'EROFS', [XEN_ENOSYS]: 'ENOSYS',
  [XEN_EOPNOTSUPP]: 'EOPNOTSUPP',
};

/** "-22" → "EINVAL", for messages. */
export function errnoName(rc: number): string {
  return ERRNO_NAMES[-rc] ?? `errno ${-rc}`;
}

/* Hypercall numbers (xen.h __HYPERVISOR_*), used to label counters and traces. */
export const __HYPERVISOR_memory_op = 12;
export const __HYPERVISOR_console_io = 18;
export const __HYPERVISOR_grant_table_op = 20;
export const __HYPERVISOR_sched_op = 29;
export const __HYPERVISOR_event_channel_op = 32;
export const __HYPERVISOR_hvm_op = 34;
export const __HYPERVISOR_domctl = 36;

/* SCHEDOP_shutdown reasons (sched.h). */
export const SHUTDOWN_poweroff = 0;
export const SHUTDOWN_reboot = 1;
export const SHUTDOWN_suspend = 2;
export const SHUTDOWN_crash = 3;
export const SHUTDOWN_watchdog = 4;
export type ShutdownReason = 'poweroff' | 'reboot' | 'suspend' | 'crash' | 'watchdog';
export const SHUTDOWN_NAMES: readonly ShutdownReason[] = ['poweroff', 'reboot', 'suspend', 'crash', 'watchdog'];

/*
 * start_info: the page a PV guest finds at boot (xen.h `struct start_info`, x86_64 offsets).
 * ringvisor fills the fields an auto-translated guest uses; the page-table fields of a classic
 * PV guest (pt_base, nr_pt_frames, mfn_list) stay zero because the P2M belongs to Xen here.
 */
export const START_INFO_MAGIC = 'xen-3.0-x86_64';
export const start_info = {
  magic: 0,            // char[32]
  nr_pages: 32,        // u64: pages of RAM the guest was built with
  shared_info: 40,     // u64: gfn where shared_info is mapped (Xen: its machine address)
  flags: 48,           // u32: SIF_*
  store_mfn: 56,       // u64: gfn of the xenstore ring page
  store_evtchn: 64,    // u32: its event channel
  console_mfn: 72,     // u64: console.domU.mfn, gfn of the console ring page
  console_evtchn: 80,  // u32: console.domU.evtchn
  cmd_line: 128,       // char[1024]
  MAX_GUEST_CMDLINE: 1024,
} as const;
export const SIF_PRIVILEGED = 1 << 0; // the domain may use privileged hypercalls
export const SIF_INITDOMAIN = 1 << 1; // the domain is Dom0

/*
 * shared_info: one page per domain that the hypervisor and the guest both write
 * (xen.h `struct shared_info`). It carries the 2-level event-channel bitmaps and one
 * vcpu_info per vCPU.
 *
 * Difference from Xen: Xen's vcpu_info starts with `u8 evtchn_upcall_pending, u8
 * evtchn_upcall_mask` and a 64-bit `evtchn_pending_sel`. JavaScript can only Atomics.wait on
 * a 32-bit word, and a vCPU blocks on its upcall-pending flag, so ringvisor widens each flag to
 * a 32-bit word and keeps the bitmaps in 32-bit words: the selector then needs 128 bits (four
 * words) to cover the 128 words of the pending bitmap. Offsets of the bitmaps are Xen's.
 */
export const XEN_LEGACY_MAX_VCPUS = 32;
export const vcpu_info = {
  SIZE: 64,
  evtchn_upcall_pending: 0, // i32: 1 when an unmasked port became pending (the vCPU waits on it)
  evtchn_upcall_mask: 4,    // i32: 1 while the guest has event delivery disabled
  evtchn_pending_sel: 8,    // u32[4]: which words of evtchn_pending to scan
  PENDING_SEL_WORDS: 4,
  time: 32,                 // struct vcpu_time_info (below), at Xen's x86_64 offset
} as const;
/*
 * vcpu_time_info (xen.h): the guest's clock. System time is nanoseconds since the host booted;
 * a guest computes it as system_time + scale(tsc_now - tsc_timestamp), where scale(x) =
 * ((x << tsc_shift) * tsc_to_system_mul) >> 32, reading the fields between two reads of an even,
 * unchanged `version` (odd while the hypervisor rewrites them). ringvisor's "TSC" is the host's
 * clock in nanoseconds (Cpu.rdtsc), so mul = 2^31 and shift = 1 make scale the identity.
 * Difference from Xen: the two u64 fields hold IEEE doubles (exact to 2^53 ns, 104 days), as
 * JavaScript has no atomic 64-bit integer loads on a plain view.
 */
export const vcpu_time_info = {
  version: 0,            // u32
  tsc_timestamp: 8,      // f64 (Xen: u64): the TSC when system_time was taken
  system_time: 16,       // f64 (Xen: u64): ns since boot at tsc_timestamp
  tsc_to_system_mul: 24, // u32
  tsc_shift: 28,         // i8 (ringvisor: an i32 word)
  SIZE: 32,
} as const;
export const shared_info = {
  vcpu_info: 0,          // vcpu_info[XEN_LEGACY_MAX_VCPUS]
  evtchn_pending: 2048,  // 4096 bits: port p pending
  evtchn_mask: 2560,     // 4096 bits: port p masked
  wc_version: 3072,      // u32: odd while the wall clock below is rewritten
  wc_sec: 3076,          // u32: wall-clock seconds (Unix time) at system time 0
  wc_nsec: 3080,         // u32
  BITMAP_WORDS: 128,
} as const;
