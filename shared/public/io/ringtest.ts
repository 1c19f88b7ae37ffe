/*
 * ringtest: the smallest split device, for proving and measuring the generic ring alone.
 *
 * Not a Xen device. It is shaped like blkif with one segment (a request names a granted page
 * of the frontend's and how many bytes of it to take; the response carries a status), so
 * that what it measures is what every ringvisor device pays before its own work: a request
 * slot, a grant, an event channel and a response slot. The backend reads the payload (by
 * grant copy, or through a grant mapped once and kept, as persistent grants do) and, when
 * asked, checksums it; the frontend checks the checksum that comes back.
 *
 *   struct ringtest_request {          struct ringtest_response {
 *       uint32_t id;        // @0          uint32_t id;      // @0
 *       uint16_t op;        // @4          int32_t  status;  // @4
 *       uint16_t len;       // @6          uint32_t csum;    // @8
 *       grant_ref_t gref;   // @8          uint32_t _pad;    // @12
 *       uint32_t csum;      // @12     };
 *   };
 */
import { defineStruct } from '../struct.ts';

export const ringtest_request = defineStruct('ringtest_request', 16, {
  id: ['u32', 0],
  op: ['u16', 4],
  len: ['u16', 6],
  gref: ['u32', 8],
  csum: ['u32', 12],
});

export const ringtest_response = defineStruct('ringtest_response', 16, {
  id: ['u32', 0],
  status: ['i32', 4],
  csum: ['u32', 8],
});

/** Take the payload. */
export const RINGTEST_OP_MOVE = 0;
/** Take the payload and checksum it; status is an error if it differs from the request's csum. */
export const RINGTEST_OP_CHECK = 1;

export const RINGTEST_RSP_OKAY = 0;
export const RINGTEST_RSP_ERROR = -1;   // bad request (id, length, grant)
export const RINGTEST_RSP_BADSUM = -2;  // the payload's checksum differs

/** What the frontend tells the backend when connecting (XenStore keys, once there is a store). */
export interface RingtestConnect {
  frontend: number;
  ringRefs: number[];
  port: number;
  dataRefs: number[];
}
