/*
 * Watches: a connection's standing request to hear about changes at or below a path.
 *
 * Xen: tools/xenstored/watch.c (do_watch, do_unwatch, fire_watches, watch_permitted,
 * get_watch_path, conn_delete_all_watches) and the special watch paths of domain.c
 * (@introduceDomain, @releaseDomain, with their own permissions set by SET_PERMS on the name).
 *
 * The rules, as Xen has them:
 *  - a new watch fires once at once, carrying its own path and token (so a client need not read
 *    first and watch after: whatever it reads in the callback is current);
 *  - a change to a node fires every watch on that node or on any ancestor;
 *  - removing a subtree fires, for each removed descendant, the watches on exactly that node, and
 *    for the removed node itself the watches on it and its ancestors;
 *  - a connection hears of a change only if it may read the node, or its parent (or, for a
 *    change of permissions, could read it before);
 *  - a watch set with a relative path reports relative paths;
 *  - an identical event already queued for a connection is not queued twice (special events
 *    excepted), and a connection over its memory quota loses events rather than growing.
 */
import { XENSTORE_REL_PATH_MAX, XS_PERM_NONE, XS_PERM_OWNER, XS_PERM_READ, XS_PERM_WRITE, type XsPermission } from '../../../shared/public/io/xs_wire.ts';
import { domainPath } from '../../../shared/public/io/xenbus.ts';
import {
  canonicalize, isChild, isSpecialPath, isValidNodename, parentOf, permForConn, type Requester,
} from './node.ts';
import { fail } from './quota.ts';
import type { Store } from './store.ts';

export const XS_INTRODUCE_DOMAIN = '@introduceDomain';
export const XS_RELEASE_DOMAIN = '@releaseDomain';

export interface Watch {
  /** The canonical path (or special name). */
  readonly node: string;
  readonly token: string;
  /** Set when the client gave a relative path: this prefix is cut from the paths it is sent. */
  readonly relativeTo: string | null;
}

/** What a connection offers the watch machinery. */
export interface Watcher extends Requester {
  readonly watches: Watch[];
  /** Queue a WATCH_EVENT (may drop it: see the header). */
  sendEvent(path: string, token: string, special: boolean): void;
}

/** get_watch_path: what a watcher is told, relative if it asked relatively. */
export function watchEventPath(w: Watch, name: string): string {
  if (w.relativeTo === null || !name.startsWith(w.relativeTo)) return name;
  const rest = name.slice(w.relativeTo.length);
  return rest.startsWith('/') ? rest.slice(1) : rest;
}

/** do_watch's checks and bookkeeping; the caller acknowledges, then fires the first event. */
export function addWatch(conn: Watcher, rawPath: string, token: string, pathMax: number, maxWatches: number): Watch {
  let node = rawPath;
  let relativeTo: string | null = null;
  if (isSpecialPath(rawPath)) {
    if (rawPath.length > XENSTORE_REL_PATH_MAX) fail('EINVAL', 'special watch name too long');
  } else {
    if (!rawPath.startsWith('/')) relativeTo = domainPath(conn.id);
    node = canonicalize(conn, rawPath);
    if (!isValidNodename(node, pathMax)) fail('EINVAL', `bad watch path ${rawPath}`);
  }
  if (conn.watches.some((w) => w.node === node && w.token === token)) fail('EEXIST');
  if (!conn.privileged && conn.watches.length >= maxWatches) fail('E2BIG', `more than ${maxWatches} watches`);
  const w: Watch = { node, token, relativeTo };
  conn.watches.push(w);
  return w;
}

export function removeWatch(conn: Watcher, rawPath: string, token: string): void {
  const node = canonicalize(conn, rawPath);
  const i = conn.watches.findIndex((w) => w.node === node && w.token === token);
  if (i < 0) fail('ENOENT');
  conn.watches.splice(i, 1);
}

/** The permissions of @introduceDomain and @releaseDomain: by default only Dom0 may watch them. */
export class SpecialNodes {
  private readonly perms = new Map<string, XsPermission[]>([
    [XS_INTRODUCE_DOMAIN, [{ id: 0, perms: XS_PERM_NONE }]],
    [XS_RELEASE_DOMAIN, [{ id: 0, perms: XS_PERM_NONE }]],
  ]);

  /** set_perms_special. */
  setPerms(who: Requester, name: string, perms: XsPermission[]): void {
    const p = this.perms.get(name);
    if (p === undefined) fail('EINVAL', `no special node ${name}`);
    const need = XS_PERM_WRITE | XS_PERM_OWNER;
    if ((permForConn(who, p) & need) !== need) fail('EACCES');
    this.perms.set(name, perms);
  }

  canRead(who: Requester, name: string): boolean {
    const p = this.perms.get(name);
    return p !== undefined && (permForConn(who, p) & XS_PERM_READ) !== 0;
  }

  /** A released domain disappears from the special nodes' lists (remove_domid_from_perm). */
  forgetDomain(domid: number): void {
    for (const [name, p] of this.perms) {
      const kept = p.filter((e, i) => i === 0 || e.id !== domid);
      if (kept[0].id === domid) kept[0] = { id: 0, perms: kept[0].perms };
      this.perms.set(name, kept);
    }
  }
}

/** watch_permitted. */
function permitted(who: Requester, store: Store, name: string, perms: readonly XsPermission[] | undefined): boolean {
  if (perms !== undefined && (permForConn(who, perms) & XS_PERM_READ) !== 0) return true;
  const node = store.read(name);
  if (node === undefined) return false;
  if ((permForConn(who, node.perms) & XS_PERM_READ) !== 0) return true;
  const parent = store.read(parentOf(name));
  return parent !== undefined && (permForConn(who, parent.perms) & XS_PERM_READ) !== 0;
}

/**
 * fire_watches: tell every connection with a matching watch that `name` changed. `perms` are the
 * node's permissions before the change, when it had any.
 */
export function fireWatches(
  conns: Iterable<Watcher>, store: Store, special: SpecialNodes,
  name: string, exact: boolean, perms: readonly XsPermission[] | undefined,
): void {
  const isSpecial = isSpecialPath(name);
  for (const c of conns) {
    if (c.watches.length === 0) continue;
    if (isSpecial ? !special.canRead(c, name) : !permitted(c, store, name, perms)) continue;
    for (const w of c.watches) {
      if (exact ? w.node === name : isChild(name, w.node)) c.sendEvent(watchEventPath(w, name), w.token, isSpecial);
    }
  }
}
