/*
 * blkif: the paravirtual block device protocol between blkfront and blkback.
 *
 * Xen: xen/include/public/io/blkif.h. Layouts are the 64-bit ABI ("x86_64-abi"); every
 * request slot is 112 bytes, so one ring page holds 32 of them (ring.h rounds the 36 that fit
 * down to a power of two), two pages 64, sixteen 512.
 *
 *   struct blkif_request {                  struct blkif_request_segment {
 *       uint8_t  operation;      // @0          grant_ref_t gref;      // @0
 *       uint8_t  nr_segments;    // @1          uint8_t     first_sect; // @4 (0..7, inclusive)
 *       blkif_vdev_t handle;     // @2          uint8_t     last_sect;  // @5 (0..7, inclusive)
 *       uint32_t _pad;           // @4      };                          // 8 bytes, 2 padding
 *       uint64_t id;             // @8
 *       blkif_sector_t sector_number; // @16 (always 512-byte units, whatever sector-size is)
 *       struct blkif_request_segment seg[11]; // @24
 *   };
 *
 *   struct blkif_request_discard {          struct blkif_request_indirect {
 *       uint8_t  operation;      // @0          uint8_t  operation;      // @0 (BLKIF_OP_INDIRECT)
 *       uint8_t  flag;           // @1          uint8_t  indirect_op;    // @1 (READ or WRITE)
 *       blkif_vdev_t handle;     // @2          uint16_t nr_segments;    // @2 (up to 8 × 512)
 *       uint64_t id;             // @8          uint64_t id;             // @8
 *       blkif_sector_t sector_number; // @16    blkif_sector_t sector_number; // @16
 *       uint64_t nr_sectors;     // @24         blkif_vdev_t handle;     // @24
 *   };                                          grant_ref_t indirect_grefs[8]; // @28
 *                                           };
 *
 *   struct blkif_response { uint64_t id; // @0   uint8_t operation; // @8   int16_t status; // @10 };
 *
 * The 11 segments are what fits: 112 − 24 = 88 bytes = 11 × 8. An indirect request names up to
 * 8 granted pages, each holding 512 more segment entries, for requests larger than 44 KiB.
 */
import { defineStruct, type StructView } from '../struct.ts';

export const BLKIF_OP_READ = 0;
export const BLKIF_OP_WRITE = 1;
export const BLKIF_OP_WRITE_BARRIER = 2;
export const BLKIF_OP_FLUSH_DISKCACHE = 3;
export const BLKIF_OP_RESERVED_1 = 4;
export const BLKIF_OP_DISCARD = 5;
export const BLKIF_OP_INDIRECT = 6;
export const BLKIF_OP_NAMES = ['read', 'write', 'write-barrier', 'flush', 'reserved', 'discard', 'indirect'] as const;

export const BLKIF_RSP_EOPNOTSUPP = -2;
export const BLKIF_RSP_ERROR = -1;
export const BLKIF_RSP_OKAY = 0;

export const BLKIF_MAX_SEGMENTS_PER_REQUEST = 11;
export const BLKIF_MAX_INDIRECT_PAGES_PER_REQUEST = 8;
export const BLKIF_SEGMENTS_PER_INDIRECT_FRAME = 512; // 4096 / 8
export const BLKIF_DISCARD_SECURE = 1 << 0;

/** Sector numbers on the wire are always 512-byte units. */
export const SECTOR_SHIFT = 9;
export const SECTOR_SIZE = 512;
export const SECTORS_PER_PAGE = 8;

export const blkif_request = defineStruct('blkif_request', 112, {
  operation: ['u8', 0],
  nr_segments: ['u8', 1],
  handle: ['u16', 2],
  id: ['u64', 8],
  sector_number: ['u64', 16],
});
export const BLKIF_SEG_OFFSET = 24;
export const BLKIF_SEG_SIZE = 8;

export const blkif_request_discard = defineStruct('blkif_request_discard', 112, {
  operation: ['u8', 0],
  flag: ['u8', 1],
  handle: ['u16', 2],
  id: ['u64', 8],
  sector_number: ['u64', 16],
  nr_sectors: ['u64', 24],
});

export const blkif_request_indirect = defineStruct('blkif_request_indirect', 112, {
  operation: ['u8', 0],
  indirect_op: ['u8', 1],
  nr_segments: ['u16', 2],
  id: ['u64', 8],
  sector_number: ['u64', 16],
  handle: ['u16', 24],
});
export const BLKIF_INDIRECT_GREFS_OFFSET = 28;

export const blkif_response = defineStruct('blkif_response', 16, {
  id: ['u64', 0],
  operation: ['u8', 8],
  status: ['i16', 10],
});

export type BlkifRequest = StructView<typeof blkif_request.fields>;
export type BlkifResponse = StructView<typeof blkif_response.fields>;

/* Segment accessors: seg[i] of a direct request, or entry i of an indirect page. */
export function seg_gref(dv: DataView, base: number, i: number): number {
  return dv.getUint32(base + i * BLKIF_SEG_SIZE, true);
}
export function seg_first_sect(dv: DataView, base: number, i: number): number {
  return dv.getUint8(base + i * BLKIF_SEG_SIZE + 4);
}
export function seg_last_sect(dv: DataView, base: number, i: number): number {
  return dv.getUint8(base + i * BLKIF_SEG_SIZE + 5);
}
export function set_seg(dv: DataView, base: number, i: number, gref: number, first: number, last: number): void {
  const o = base + i * BLKIF_SEG_SIZE;
  dv.setUint32(o, gref, true);
  dv.setUint8(o + 4, first);
  dv.setUint8(o + 5, last);
  dv.setUint16(o + 6, 0, true);
}
export function indirect_gref(dv: DataView, i: number): number {
  return dv.getUint32(BLKIF_INDIRECT_GREFS_OFFSET + i * 4, true);
}
export function set_indirect_gref(dv: DataView, i: number, gref: number): void {
  dv.setUint32(BLKIF_INDIRECT_GREFS_OFFSET + i * 4, gref, true);
}

/* `info` bits (VDISK_*). */
export const VDISK_CDROM = 1;
export const VDISK_REMOVABLE = 2;
export const VDISK_READONLY = 4;

/*
 * XenStore keys (blkif.h's catalogue). Backend-written, read by the frontend:
 */
export const XS_BLK = {
  /* backend → frontend */
  feature_flush_cache: 'feature-flush-cache',
  feature_barrier: 'feature-barrier',
  feature_discard: 'feature-discard',
  discard_granularity: 'discard-granularity',
  discard_alignment: 'discard-alignment',
  discard_secure: 'discard-secure',
  feature_persistent: 'feature-persistent',
  feature_max_indirect_segments: 'feature-max-indirect-segments',
  max_ring_page_order: 'max-ring-page-order',
  multi_queue_max_queues: 'multi-queue-max-queues',
  sectors: 'sectors',
  info: 'info',
  sector_size: 'sector-size',
  physical_sector_size: 'physical-sector-size',
  /* frontend → backend */
  ring_ref: 'ring-ref',                 // or ring-ref0..N with ring-page-order
  ring_page_order: 'ring-page-order',
  event_channel: 'event-channel',
  protocol: 'protocol',
  multi_queue_num_queues: 'multi-queue-num-queues',
  /* toolstack → backend (libxl's names) */
  params: 'params',
  mode: 'mode',
  type: 'type',
  device_type: 'device-type',
  discard_enable: 'discard-enable',
  virtual_device: 'virtual-device',
  /* hotplug step → backend: the device blkback drives (Linux: "major:minor" of the loop device) */
  physical_device: 'physical-device',
} as const;

export const XEN_IO_PROTO_ABI_X86_64 = 'x86_64-abi';
