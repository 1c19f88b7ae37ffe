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
  canonicalize, isSpecialPath, isValidNodename, parentOf, permForConn, type Requester,
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
  readonly owner: Watcher;
  /** Registration order across all connections: events go out in it, as C's lists do. */
  readonly seq: number;
}

/** What a connection offers the watch machinery. */
export interface Watcher extends Requester {
  /** Its watches, by watchKey (C's conn->watches). */
  readonly watches: Map<string, Watch>;
  /** Queue a WATCH_EVENT (may drop it: see the header). */
  sendEvent(path: string, token: string, special: boolean): void;
}

const watchKey = (node: string, token: string) => `${node}\0${token}`;

/** get_watch_path: what a watcher is told, relative if it asked relatively. */
export function watchEventPath(w: Watch, name: string): string {
  if (w.relativeTo === null || !name.startsWith(w.relativeTo)) return name;
  const rest = name.slice(w.relativeTo.length);
  return rest.startsWith('/') ? rest.slice(1) : rest;
}

/**
 * Every watch of every connection, by the path it watches.
 *
 * C xenstored's fire_watches walks every connection and every watch of each for every change,
 * so one connection with many watches slows every write in the system. Here a change to
 * /a/b/c looks up the watches on /a/b/c, /a/b, /a and / (or only /a/b/c for an exact event):
 * a write costs what its own watchers cost, however many watches exist elsewhere. Which watches
 * fire, in which order per connection, and who may see them is unchanged.
 */
export class WatchIndex {
  private readonly byNode = new Map<string, Set<Watch>>();
  private nextSeq = 0;
  /** Reused by fire(): no allocation per change. */
  private readonly hits: Watch[] = [];
  private readonly allowed = new Map<Watcher, boolean>();

  /** do_watch's checks and bookkeeping; the caller acknowledges, then fires the first event. */
  add(conn: Watcher, rawPath: string, token: string, pathMax: number, maxWatches: number): Watch {
    let node = rawPath;
    let relativeTo: string | null = null;
    if (isSpecialPath(rawPath)) {
      if (rawPath.length > XENSTORE_REL_PATH_MAX) fail('EINVAL', 'special watch name too long');
    } else {
      if (!rawPath.startsWith('/')) relativeTo = domainPath(conn.id);
      node = canonicalize(conn, rawPath);
      if (!isValidNodename(node, pathMax)) fail('EINVAL', `bad watch path ${rawPath}`);
    }
    const key = watchKey(node, token);
    if (conn.watches.has(key)) fail('EEXIST');
    // Dom0 (domain_watch() is 0 for a privileged connection) has no watch quota, as in C.
    if (!conn.privileged && conn.watches.size >= maxWatches) fail('E2BIG', `more than ${maxWatches} watches`);
    const w: Watch = { node, token, relativeTo, owner: conn, seq: this.nextSeq++ };
    conn.watches.set(key, w);
    const set = this.byNode.get(node);
    if (set === undefined) this.byNode.set(node, new Set([w]));
    else set.add(w);
    return w;
  }

  /** do_unwatch. */
  remove(conn: Watcher, rawPath: string, token: string): void {
    const w = conn.watches.get(watchKey(canonicalize(conn, rawPath), token));
    if (w === undefined) fail('ENOENT');
    this.unlink(w);
  }

  /** conn_delete_all_watches. */
  removeAll(conn: Watcher): void {
    for (const w of conn.watches.values()) this.unlink(w);
  }

  private unlink(w: Watch): void {
    w.owner.watches.delete(watchKey(w.node, w.token));
    const set = this.byNode.get(w.node)!;
    set.delete(w);
    if (set.size === 0) this.byNode.delete(w.node);
  }

  /** How many watches exist in all (for diagnostics and tests). */
  get size(): number {
    let n = 0;
    for (const set of this.byNode.values()) n += set.size;
    return n;
  }

  /**
   * fire_watches: tell every connection with a matching watch that `name` changed: watches on
   * `name` itself and, unless `exact`, on each ancestor (is_child: "/" is everyone's ancestor).
   * `perms` are the node's permissions before the change, when it had any.
   */
  fire(store: Store, special: SpecialNodes, name: string, exact: boolean, perms: readonly XsPermission[] | undefined): void {
    if (this.byNode.size === 0) return;
    const hits = this.hits;
    this.collect(name);
    if (!exact) {
      for (let p = name; p !== '/';) {
        p = parentOf(p);
        this.collect(p);
      }
    }
    if (hits.length === 0) return;
    if (hits.length > 1) hits.sort((a, b) => a.seq - b.seq);
    const isSpecial = isSpecialPath(name);
    try {
      for (const w of hits) {
        const c = w.owner;
        let ok = this.allowed.get(c);
        if (ok === undefined) {
          ok = isSpecial ? special.canRead(c, name) : permitted(c, store, name, perms);
          this.allowed.set(c, ok);
        }
        if (ok) c.sendEvent(watchEventPath(w, name), w.token, isSpecial);
      }
    } finally {
      hits.length = 0;
      this.allowed.clear();
    }
  }

  private collect(node: string): void {
    const set = this.byNode.get(node);
    if (set !== undefined) for (const w of set) this.hits.push(w);
  }
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
