/*
 * The XenStore wire protocol: message header, message types, error strings, permission strings,
 * and the ring page every guest shares with xenstored.
 *
 * Xen: xen/include/public/io/xs_wire.h (xsd_sockmsg, xsd_sockmsg_type, xsd_errors,
 * xenstore_domain_interface) and docs/misc/xenstore.txt (payload formats, permissions);
 * tools/libs/store/xs_lib.c for the permission strings ("r0", "b1", ...).
 *
 * One message is a 16-byte header then `len` bytes of payload, the same bytes whether they
 * travel over a guest's ring page or over xenstored's Unix socket (which is why Debian's
 * xenstore-utils can talk to ringvisor's xenstored unmodified):
 *
 *   struct xsd_sockmsg {
 *       uint32_t type;    // @0   XS_*
 *       uint32_t req_id;  // @4   echoed in the reply; 0 in a watch event
 *       uint32_t tx_id;   // @8   transaction, 0 for none
 *       uint32_t len;     // @12  payload bytes that follow, at most XENSTORE_PAYLOAD_MAX
 *   };
 *
 * Payloads are mostly NUL-terminated strings: a request names a path ("a/b\0"), a write follows
 * the path with raw data (no NUL), a reply to a read is the raw data, an error is its name
 * ("ENOENT\0"), an acknowledgement is "OK\0", a watch event is "path\0token\0".
 */
import { defineStruct } from '../struct.ts';
import type { ByteRing } from './byte-ring.ts';

/* enum xsd_sockmsg_type. */
export const XS_CONTROL = 0;
export const XS_DIRECTORY = 1;
export const XS_READ = 2;
export const XS_GET_PERMS = 3;
export const XS_WATCH = 4;
export const XS_UNWATCH = 5;
export const XS_TRANSACTION_START = 6;
export const XS_TRANSACTION_END = 7;
export const XS_INTRODUCE = 8;
export const XS_RELEASE = 9;
export const XS_GET_DOMAIN_PATH = 10;
export const XS_WRITE = 11;
export const XS_MKDIR = 12;
export const XS_RM = 13;
export const XS_SET_PERMS = 14;
export const XS_WATCH_EVENT = 15;
export const XS_ERROR = 16;
export const XS_IS_DOMAIN_INTRODUCED = 17;
export const XS_RESUME = 18;
export const XS_SET_TARGET = 19;
/* 20 was XS_RESTRICT, removed in Xen 4.9. */
export const XS_RESET_WATCHES = 21;
export const XS_DIRECTORY_PART = 22;
export const XS_GET_FEATURE = 23;
export const XS_SET_FEATURE = 24;
export const XS_GET_QUOTA = 25;
export const XS_SET_QUOTA = 26;
export const XS_TYPE_COUNT = 27;
/** Guaranteed never to be a valid type. */
export const XS_INVALID = 0xffff;

export const XS_TYPE_NAMES: readonly string[] = [
  'CONTROL', 'DIRECTORY', 'READ', 'GET_PERMS', 'WATCH', 'UNWATCH', 'TRANSACTION_START',
  'TRANSACTION_END', 'INTRODUCE', 'RELEASE', 'GET_DOMAIN_PATH', 'WRITE', 'MKDIR', 'RM', 'SET_PERMS',
  'WATCH_EVENT', 'ERROR', 'IS_DOMAIN_INTRODUCED', 'RESUME', 'SET_TARGET', '(RESTRICT)',
  'RESET_WATCHES', 'DIRECTORY_PART', 'GET_FEATURE', 'SET_FEATURE', 'GET_QUOTA', 'SET_QUOTA',
];

/** The header, declared once; readers and writers go through these accessors. */
export const xsd_sockmsg = defineStruct('xsd_sockmsg', 16, {
  type: ['u32', 0],
  req_id: ['u32', 4],
  tx_id: ['u32', 8],
  len: ['u32', 12],
});
export const XSD_SOCKMSG_SIZE = xsd_sockmsg.size;

/** A longer payload is a protocol violation: xenstored drops the connection ("very bad"). */
export const XENSTORE_PAYLOAD_MAX = 4096;
/* Longer paths just get an error back. */
export const XENSTORE_ABS_PATH_MAX = 3072;
export const XENSTORE_REL_PATH_MAX = 2048;

/** No transaction (libxenstore's XBT_NULL). */
export const XBT_NULL = 0;

/* The two strings of a watch event, in order (enum xs_watch_type). */
export const XS_WATCH_PATH = 0;
export const XS_WATCH_TOKEN = 1;

/*
 * Errors travel as their names. The order is xs_wire.h's xsd_errors table, which libxenstore
 * searches to turn a name back into an errno; a name it does not know becomes EINVAL.
 */
export const XSD_ERRORS = [
  'EINVAL', 'EACCES', 'EEXIST', 'EISDIR', 'ENOENT', 'ENOMEM', 'ENOSPC', 'EIO', 'ENOTEMPTY',
  'ENOSYS', 'EROFS', 'EBUSY', 'EAGAIN', 'EISCONN', 'E2BIG', 'EPERM',
] as const;
export type XsErrno = (typeof XSD_ERRORS)[number];

export function isXsErrno(s: string): s is XsErrno {
  return (XSD_ERRORS as readonly string[]).includes(s);
}

/*
 * The ring page (struct xenstore_domain_interface): two byte rings, requests from the guest and
 * replies plus watch events from xenstored, then their indices. Indices are free-running u32
 * counts of bytes; a byte's place is MASK_XENSTORE_IDX(idx) = idx & (XENSTORE_RING_SIZE - 1).
 * The guest produces req and consumes rsp; xenstored the reverse. Messages are a byte stream
 * here: one may straddle the wrap, and one longer than the ring is written in pieces.
 */
export const XENSTORE_RING_SIZE = 1024;
export const xenstore_domain_interface = {
  req: 0,                // char[1024]
  rsp: 1024,             // char[1024]
  req_cons: 2048,        // u32, written by xenstored
  req_prod: 2052,        // u32, written by the guest
  rsp_cons: 2056,        // u32, written by the guest
  rsp_prod: 2060,        // u32, written by xenstored
  server_features: 2064, // u32 XENSTORE_SERVER_FEATURE_*
  connection: 2068,      // u32 XENSTORE_CONNECTED / XENSTORE_RECONNECT
  error: 2072,           // u32 XENSTORE_ERROR_*: why xenstored stopped serving this ring
  evtchn_port: 2076,     // u32 (newer Xen: the port for dom0less guests; 0 = use XS_INTRODUCE's)
} as const;

/* The two rings of the page, for ByteRingView (./byte-ring.ts). */
const xdi = xenstore_domain_interface;
export const XENSTORE_REQ_RING: ByteRing = { data: xdi.req, size: XENSTORE_RING_SIZE, cons: xdi.req_cons, prod: xdi.req_prod };
export const XENSTORE_RSP_RING: ByteRing = { data: xdi.rsp, size: XENSTORE_RING_SIZE, cons: xdi.rsp_cons, prod: xdi.rsp_prod };

export const XENSTORE_SERVER_FEATURE_RECONNECTION = 1;
export const XENSTORE_SERVER_FEATURE_ERROR = 2;

export const XENSTORE_CONNECTED = 0;
export const XENSTORE_RECONNECT = 1;

export const XENSTORE_ERROR_NONE = 0;
export const XENSTORE_ERROR_COMM = 1;    // communication problem
export const XENSTORE_ERROR_RINGIDX = 2; // invalid ring index
export const XENSTORE_ERROR_PROTO = 3;   // protocol violation (payload too long)

/*
 * Permissions (docs/misc/xenstore.txt, "permissions"): a list whose first entry names the owner
 * (who always has full access) and also gives the access of every domain not listed; later
 * entries give one domain each its access. Each travels as one letter then a domid: "n0" none,
 * "r5" read, "w5" write, "b5" both.
 */
export const XS_PERM_NONE = 0;
export const XS_PERM_READ = 1;
export const XS_PERM_WRITE = 2;
export const XS_PERM_BOTH = XS_PERM_READ | XS_PERM_WRITE;
/** xenstored-internal: the caller owns the node (never on the wire). */
export const XS_PERM_OWNER = 8;

export interface XsPermission {
  id: number;
  perms: number; // XS_PERM_NONE / READ / WRITE / BOTH
}

const PERM_LETTERS = ['n', 'r', 'w', 'b'];

/** xs_perm_to_string. */
export function permToString(p: XsPermission): string {
  return `${PERM_LETTERS[p.perms & XS_PERM_BOTH]}${p.id}`;
}

/** xs_strings_to_perms for one entry: null if it is not a letter and a decimal domid. */
export function permFromString(s: string): XsPermission | null {
  const letter = PERM_LETTERS.indexOf(s[0]);
  const rest = s.slice(1);
  if (letter < 0 || !/^[0-9]{1,5}$/.test(rest)) return null;
  const id = Number(rest);
  return id <= 0xffff ? { id, perms: letter } : null;
}
