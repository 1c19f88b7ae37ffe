/*
 * Per-domain quotas, and the refusal every xenstored operation raises.
 *
 * Xen: the quota_* variables of tools/xenstored/core.c with their defaults, enforced in core.c,
 * domain.c, watch.c and transaction.c, and the XSA-326 hardening that made them bind a guest's
 * memory use. Quotas apply to unprivileged domains only: Dom0 and the tools on the Unix socket
 * are trusted, as in C xenstored.
 *
 *   quota             default  exceeded →
 *   nodes             1000     ENOSPC   nodes a domain owns (creating one more)
 *   watches            128     E2BIG    watches on one connection
 *   outstanding         20     —        replies queued and not yet taken off the ring: xenstored
 *                                       stops reading that ring until the guest takes some
 *   transactions        10     ENOSPC   open transactions on one connection
 *   nodeSize          2048     ENOSPC   bytes of one node's record (data, children's names,
 *                                       permissions, header; see nodeSize in ./node.ts)
 *   pathMax           2048     EINVAL   path bytes after /local/domain/<id>/ (3072 in all)
 *   permsPerNode         5     ENOSPC   entries in one SET_PERMS
 *   transactionNodes  1024     ENOSPC   distinct nodes one transaction touches
 *   memory       2.5 MiB      dropped   (C: all memory a domain costs xenstored.) ringvisor
 *                                       applies it to what a connection has queued for the
 *                                       guest: past it, watch events are dropped, as C drops
 *                                       them for a domain over its memory quota. Node memory is
 *                                       already bounded by nodes × nodeSize.
 *   memorySoft   2 MiB       logged    the same measure; crossing it (either way) is logged
 *                                       once, as C warns of a domain over its soft quota.
 *
 * XS_CONTROL "quota set" changes these at run time (./control.ts).
 *
 * Off-by-one notes: C refuses a watch only when a domain already has more than 128 and a
 * transaction only when it has more than 10 open; ringvisor refuses the 129th watch and the 11th
 * transaction, so each quota is exactly the number it names.
 */
import type { XsErrno } from '../../../shared/public/io/xs_wire.ts';
import { XENSTORE_REL_PATH_MAX } from '../../../shared/public/io/xs_wire.ts';

export interface Quotas {
  nodes: number;
  watches: number;
  outstanding: number;
  transactions: number;
  nodeSize: number;
  pathMax: number;
  permsPerNode: number;
  transactionNodes: number;
  memory: number;
  /** The soft memory quota: past it, a warning in the log (quota_memory_per_domain_soft). */
  memorySoft: number;
}

export const DEFAULT_QUOTAS: Readonly<Quotas> = {
  nodes: 1000,
  watches: 128,
  outstanding: 20,
  transactions: 10,
  nodeSize: 2048,
  pathMax: XENSTORE_REL_PATH_MAX,
  permsPerNode: 5,
  transactionNodes: 1024,
  memory: 2 * 1024 * 1024 + 512 * 1024,
  memorySoft: 2 * 1024 * 1024,
};

/** A request refused: its errno name is what the client receives in an XS_ERROR reply. */
export class XsdError extends Error {
  override readonly name = 'XsdError';
  constructor(readonly errno: XsErrno, detail = '') {
    super(detail ? `${errno}: ${detail}` : errno);
  }
}

export function fail(errno: XsErrno, detail = ''): never {
  throw new XsdError(errno, detail);
}
