/*
 * ioreq: how the hypervisor hands one device-register access of a guest to a device model.
 *
 * Xen: xen/include/public/hvm/ioreq.h (struct ioreq, STATE_*, IOREQ_TYPE_*, the synchronous
 * page `struct shared_iopage { struct ioreq vcpu_ioreq[]; }`). Xen's side is
 * xen/common/ioreq.c (ioreq_send, ioreq_server_select); QEMU's is hw/xen/xen-hvm-common.c
 * (cpu_get_ioreq, handle_ioreq, cpu_handle_ioreq).
 *
 * An ioreq server (a device model in Dom0, see ./dm_op.ts) owns one page of these, one 32-byte
 * slot per vCPU of the guest it serves. The hypervisor allocates the page and the device model
 * maps it (XENMEM_acquire_resource); the guest never sees it, so it cannot forge a request.
 * One access is one round trip:
 *
 *   vCPU (in the hypervisor, trap.ts → ioreq.ts)      device model (Dom0)
 *   fill addr, data, size, dir, type
 *   state = STATE_IOREQ_READY  ───── event on vp_eport ────►  sees READY, copies the slot out,
 *   wait until state = STATE_IORESP_READY                     state = STATE_IOREQ_INPROCESS,
 *                                                             emulates, writes data (a read),
 *   take data, state = STATE_IOREQ_NONE   ◄── notify ────────  state = STATE_IORESP_READY
 *
 * Ordering: every field is written before the state word that publishes it, and read after the
 * state word that announced it; the state word goes through Atomics, whose sequential
 * consistency is the barrier Xen writes as smp_wmb / smp_rmb around `state`.
 *
 * Layout difference: Xen packs `state:4, data_is_ptr:1, dir:1, df:1` into the byte at @30, next
 * to `_pad0` (@28) and `type` (@31). JavaScript's Atomics work on 32-bit words, so ringvisor
 * treats @28..@31 as one word ("ctrl") and always writes it whole: the state nibble and the bits
 * describing the request it publishes change together, and a waiter can Atomics.wait on it.
 * Byte offsets are Xen's. The return path is a futex wake on that word instead of an event
 * back to Xen: ringvisor's event channels have no "Xen-consumer" ports (see hypervisor/ioreq.ts).
 */
import { defineStruct } from '../struct.ts';

export const IOREQ_READ = 1;
export const IOREQ_WRITE = 0;

export const STATE_IOREQ_NONE = 0;
export const STATE_IOREQ_READY = 1;
export const STATE_IOREQ_INPROCESS = 2;
export const STATE_IORESP_READY = 3;

export const IOREQ_TYPE_PIO = 0;   // port I/O: addr is the port
export const IOREQ_TYPE_COPY = 1;  // MMIO: addr is a guest-physical address
export const IOREQ_TYPE_INVALIDATE = 8; // drop the device model's mapcache (not sent yet: no ballooning)

/*
 *   struct ioreq {
 *       uint64_t addr;          // @0  port or guest-physical address
 *       uint64_t data;          // @8  the value (or, data_is_ptr, the gpa of the values)
 *       uint32_t count;         // @16 repetitions (rep ins/outs); ringvisor's Cpu sends 1
 *       uint32_t size;          // @20 bytes per access: 1, 2 or 4
 *       uint32_t vp_eport;      // @24 the vCPU's event channel to the device model
 *       uint16_t _pad0;         // @28 ┐
 *       uint8_t  state:4, data_is_ptr:1, dir:1, df:1, _pad1:1; // @30 ├ "ctrl", one 32-bit word
 *       uint8_t  type;          // @31 ┘
 *   };                          // 32 bytes
 */
export const ioreq = defineStruct('ioreq', 32, {
  addr: ['u64', 0],
  data: ['u64', 8],
  count: ['u32', 16],
  size: ['u32', 20],
  vp_eport: ['u32', 24],
  ctrl: ['u32', 28],
});
export const IOREQ_SIZE = ioreq.size;

/** Word indices inside one slot, derived from the declaration above. */
export const IOREQ_W = {
  addr: ioreq.fields.addr[1] >> 2,        // low word; the high word follows
  data: ioreq.fields.data[1] >> 2,
  count: ioreq.fields.count[1] >> 2,
  size: ioreq.fields.size[1] >> 2,
  vp_eport: ioreq.fields.vp_eport[1] >> 2,
  ctrl: ioreq.fields.ctrl[1] >> 2,
  WORDS: IOREQ_SIZE >> 2,
} as const;

/* Bit positions inside the ctrl word (little-endian: byte @30 is bits 16..23, @31 is 24..31). */
const STATE_SHIFT = 16;
const DATA_IS_PTR = 1 << 20;
const DIR_SHIFT = 21;
const DF = 1 << 22;
const TYPE_SHIFT = 24;

/** The ctrl word for a request in `state`. */
export function ioreq_ctrl(state: number, dir: number, type: number): number {
  return (state << STATE_SHIFT) | (dir << DIR_SHIFT) | (type << TYPE_SHIFT);
}
export function ioreq_state(ctrl: number): number {
  return (ctrl >>> STATE_SHIFT) & 0xf;
}
export function ioreq_dir(ctrl: number): number {
  return (ctrl >>> DIR_SHIFT) & 1;
}
export function ioreq_type(ctrl: number): number {
  return ctrl >>> TYPE_SHIFT;
}
/** True for request forms ringvisor's device models do not take (string ops, reversed direction). */
export function ioreq_is_string(ctrl: number): boolean {
  return (ctrl & (DATA_IS_PTR | DF)) !== 0;
}
/** The same ctrl word with only the state changed (what the device model writes back). */
export function ioreq_with_state(ctrl: number, state: number): number {
  return (ctrl & ~(0xf << STATE_SHIFT)) | (state << STATE_SHIFT);
}

/** Word index of vCPU `v`'s slot field `w` in the page (as Int32 words). */
export function ioreq_slot_word(v: number, w: number): number {
  return v * IOREQ_W.WORDS + w;
}

/*
 * The buffered ioreq page: writes the vCPU does not wait for.
 *
 * Xen: `struct buf_ioreq` and `struct buffered_iopage` in hvm/ioreq.h; the producer is
 * ioreq_send_buffered (xen/common/ioreq.c), the consumer QEMU's handle_buffered_iopage
 * (hw/xen/xen-hvm-common.c). A server created with handle_bufioreq ≠ OFF has this second page
 * (acquire_resource frame XENMEM_resource_ioreq_server_frame_bufioreq) and a second event
 * channel (bufioreq_port). The hypervisor appends a write here, notifies that port, and lets the
 * vCPU go on; the device model takes entries in order, and always before it answers a
 * synchronous request, so a guest's buffered writes are seen before its next read.
 *
 *   struct buf_ioreq {            // 8 bytes
 *       uint8_t  type;            // word 0 bits 0-7
 *       uint8_t  pad:1, dir:1,    // bit 8, bit 9 (always IOREQ_WRITE)
 *                size:2;          // bits 10-11: 0 => 1 byte, 1 => 2, 2 => 4 (3 => 8, two slots)
 *       uint32_t addr:20;         // bits 12-31: the address's low 20 bits
 *       uint32_t data;            // word 1
 *   };
 *   struct buffered_iopage {
 *       uint32_t read_pointer;    // @0  advanced by the device model only
 *       uint32_t write_pointer;   // @4  advanced by the hypervisor only
 *       struct buf_ioreq buf_ioreq[IOREQ_BUFFER_SLOT_NUM];   // @8, slot = pointer % 511
 *   };
 *
 * The 20-bit address is Xen's: it buffers only accesses below 1 MiB (stdvga's). ringvisor's
 * buffered zones sit in a device's BAR above that, so the hypervisor requires all of one server's
 * zones to lie in one 1 MiB-aligned window, stores the low 20 bits as Xen does, and the device
 * model, which named the zones, puts the window back (BUF_WINDOW_MASK).
 *
 * Pointers are free-running 32-bit counters, the slot is pointer % 511 (511 does not divide 2^32).
 * Xen's ATOMIC mode rewinds both pointers by a multiple of 511 with one 64-bit compare-and-swap
 * once the reader has moved on; ringvisor does the same, only when read_pointer has passed
 * BUF_REWIND_AT, which keeps them far from 2^32 with a CAS every few hundred million writes.
 */
export const IOREQ_BUFFER_SLOT_NUM = 511;
export const BUF_IOREQ_SIZE = 8;
export const buffered_iopage = { read_pointer: 0, write_pointer: 4, buf_ioreq: 8 } as const;
/** Word indices in the page. */
export const BUFIOREQ_W = {
  read_pointer: buffered_iopage.read_pointer >> 2,
  write_pointer: buffered_iopage.write_pointer >> 2,
  slots: buffered_iopage.buf_ioreq >> 2,
} as const;
export const BUF_ADDR_SHIFT = 12;
export const BUF_WINDOW_MASK = ~0xfffff >>> 0;
export const BUF_REWIND_AT = IOREQ_BUFFER_SLOT_NUM * (1 << 20);

/** Word 0 of a buf_ioreq. */
export function buf_ioreq_word0(type: number, size: 1 | 2 | 4, addr: number): number {
  const sz = size === 1 ? 0 : size === 2 ? 1 : 2;
  return (type & 0xff) | (IOREQ_WRITE << 9) | (sz << 10) | ((addr & 0xfffff) << BUF_ADDR_SHIFT);
}
export function buf_ioreq_size(word0: number): number {
  return 1 << ((word0 >>> 10) & 3);
}
export function buf_ioreq_addr(word0: number): number {
  return word0 >>> BUF_ADDR_SHIFT;
}
export function buf_ioreq_type(word0: number): number {
  return word0 & 0xff;
}
