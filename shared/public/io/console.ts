/*
 * The PV console ring page: a guest's serial line to Dom0.
 *
 * Xen: xen/include/public/io/console.h (struct xencons_interface, MASK_XENCONS_IDX), served by
 * tools/console/daemon/io.c (xenconsoled) and driven in Linux by drivers/tty/hvc/hvc_xen.c.
 *
 *   struct xencons_interface {
 *       char in[1024];       // @0     Dom0 → guest (keyboard)
 *       char out[2048];      // @1024  guest → Dom0 (screen)
 *       XENCONS_RING_IDX in_cons, in_prod;    // @3072, @3076
 *       XENCONS_RING_IDX out_cons, out_prod;  // @3080, @3084
 *       uint8_t connection;  // @3088  XENCONSOLE_CONNECTED once xenconsoled serves it
 *   };
 *
 * Indices are free-running u32 byte counts masked by each ring's size, as the xenstore ring's
 * are (see ./byte-ring.ts). The guest produces `out` and consumes `in`; xenconsoled the reverse.
 * The page is the guest's own, handed to Dom0 through the reserved grant GNTTAB_RESERVED_CONSOLE.
 */
import type { ByteRing } from './byte-ring.ts';

export const xencons_interface = {
  in: 0,
  IN_SIZE: 1024,
  out: 1024,
  OUT_SIZE: 2048,
  in_cons: 3072,
  in_prod: 3076,
  out_cons: 3080,
  out_prod: 3084,
  connection: 3088,
} as const;

export const XENCONSOLE_CONNECTED = 0;
export const XENCONSOLE_DISCONNECTED = 1;

const xci = xencons_interface;
export const XENCONS_IN_RING: ByteRing = { data: xci.in, size: xci.IN_SIZE, cons: xci.in_cons, prod: xci.in_prod };
export const XENCONS_OUT_RING: ByteRing = { data: xci.out, size: xci.OUT_SIZE, cons: xci.out_cons, prod: xci.out_prod };
