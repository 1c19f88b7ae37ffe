/*
 * Domains in xenstored: introducing a new guest's ring, releasing a dead one's.
 *
 * Xen: tools/xenstored/domain.c (do_introduce / introduce_domain / new_domain, do_release,
 * destroy_domain, domain_tree_remove, the @introduceDomain and @releaseDomain events). The
 * toolstack introduces a domain it has just built, giving its domid, the gfn of its store page
 * and its store event channel; xenstored maps the page through the grant the builder reserved
 * for it (GNTTAB_RESERVED_XENSTORE), binds the port, and from then on serves the ring. When the
 * domain dies the toolstack releases it: xenstored drops the connection (watches, transactions,
 * queued replies), unbinds and unmaps, removes every node the domain owned (C xenstored's
 * default without --keep-orphans), and fires @releaseDomain. The toolstack then removes
 * /local/domain/<id> itself, which it owns.
 *
 * How pages are mapped and ports bound is the platform's business (./server.ts): Dom0's kernel
 * in ringvisor, a fake in single-threaded tests.
 */
import { DOMID_FIRST_RESERVED } from '../../../shared/public/xen.ts';
import type { XsPermission } from '../../../shared/public/io/xs_wire.ts';
import type { Requester } from './node.ts';
import { doRm } from './ops.ts';
import { fail } from './quota.ts';
import { RingConnection } from './ring-connection.ts';
import type { XenstoredCore } from './core.ts';
import { XS_INTRODUCE_DOMAIN, XS_RELEASE_DOMAIN } from './watch.ts';

/** xenstored itself, acting on the store (domain_tree_remove runs with no connection). */
const XENSTORED: Requester = { id: 0, privileged: true };

export function introduceDomain(xs: XenstoredCore, domid: number, gfn: number, port: number): void {
  if (domid <= 0 || domid >= DOMID_FIRST_RESERVED) fail('EINVAL', `domid ${domid}`);
  if (port <= 0) fail('EINVAL', `port ${port}`);
  if (xs.domains.has(domid)) return; // already introduced: nothing to redo (Xen rebinds the port)
  let conn: RingConnection | null = null;
  const link = xs.platform.attach(domid, gfn, port, () => conn?.interrupt());
  if (link === null) fail('EINVAL', `cannot map the store page or bind the port of domain ${domid}`);
  conn = new RingConnection(domid, xs, link.page, link.notify, link.detach);
  xs.domains.set(domid, conn);
  xs.connections.add(conn);
  xs.fire(XS_INTRODUCE_DOMAIN, true, undefined);
  // The guest may have queued requests before it was introduced (see ring-connection.ts).
  xs.schedule(conn);
}

export function releaseDomain(xs: XenstoredCore, domid: number): void {
  if (domid === 0) fail('EINVAL', 'cannot release Dom0');
  const conn = xs.domains.get(domid) ?? fail('ENOENT', `domain ${domid} not introduced`);
  xs.domains.delete(domid);
  conn.drop();
  removeOwnedNodes(xs, domid);
  xs.special.forgetDomain(domid);
  xs.fire(XS_RELEASE_DOMAIN, true, undefined);
}

/** domain_tree_remove: delete every subtree whose top node the domain owns. */
function removeOwnedNodes(xs: XenstoredCore, domid: number): void {
  if (xs.store.owned(domid) === 0) return;
  const tops: string[] = [];
  for (const n of xs.store.walk('/')) {
    if (n.perms[0].id !== domid) continue;
    if (tops.some((t) => n.name.startsWith(`${t}/`))) continue;
    tops.push(n.name);
  }
  const ctx = {
    who: XENSTORED,
    access: xs.store,
    quota: xs.quota,
    changed: (p: string, exact: boolean, perms: readonly XsPermission[] | undefined) => xs.fire(p, exact, perms),
  };
  for (const t of tops) doRm(ctx, t);
}
