/*
 * XenStore nodes: what one is, whose it is, and which paths name one.
 *
 * Xen: tools/xenstored/core.c (struct node, perm_for_conn, is_valid_nodename, canonicalize,
 * get_parent) and docs/misc/xenstore.txt ("Permissions", "Paths"). C xenstored keeps nodes in a
 * TDB keyed by path, each record holding generation, permissions, data and the children's names;
 * ringvisor keeps the same record in a Map keyed by path (see ./store.ts).
 *
 * Permissions, as Xen has them: the first entry is the owner, who may do anything, and its
 * letter is what every domain not listed later gets; each later entry gives one domain its
 * letter. The control domain (Dom0, and every tool on the Unix socket) may do anything
 * anywhere. Only the owner or Dom0 may change permissions, and only Dom0 may change the owner.
 */
import {
  XENSTORE_ABS_PATH_MAX, XS_PERM_BOTH, XS_PERM_OWNER, type XsPermission,
} from '../../../shared/public/io/xs_wire.ts';
import { domainPath } from '../../../shared/public/io/xenbus.ts';

export interface XsNode {
  /** The full path: the key in the store. */
  readonly name: string;
  readonly data: Uint8Array;
  /** Children's base names, in the order they were created (as C xenstored lists them). */
  readonly children: readonly string[];
  /** [0] is the owner and the default for unlisted domains. */
  readonly perms: readonly XsPermission[];
  /** Set from the store's global counter on every change (see ./transaction.ts). */
  readonly generation: number;
}

/** The generation recorded for a node a transaction found absent. */
export const NO_GENERATION = -1;

/** Who is asking: a connection's domain and whether it is the control domain. */
export interface Requester {
  readonly id: number;
  readonly privileged: boolean;
}

/** perm_for_conn: the access `who` has to a node with `perms` (XS_PERM_* bits, OWNER included). */
export function permForConn(who: Requester, perms: readonly XsPermission[]): number {
  if (who.privileged || perms[0].id === who.id) return XS_PERM_BOTH | XS_PERM_OWNER;
  for (let i = 1; i < perms.length; i++) {
    if (perms[i].id === who.id) return perms[i].perms & XS_PERM_BOTH;
  }
  return perms[0].perms & XS_PERM_BOTH;
}

const VALID_CHARS = /^[A-Za-z0-9\-/_@]*$/;
const LOCAL_DOMAIN = /^\/local\/domain\/(\d{1,5})\//;

/**
 * is_valid_nodename: absolute, no "//", no trailing "/" (but "/" itself), only
 * [A-Za-z0-9-/_@], and not longer than `maxRel` beyond a /local/domain/<id>/ prefix (the path
 * length quota, XENSTORE_REL_PATH_MAX by default) nor than XENSTORE_ABS_PATH_MAX in all.
 */
export function isValidNodename(path: string, maxRel: number): boolean {
  if (!path.startsWith('/')) return false;
  if (path.endsWith('/') && path !== '/') return false;
  if (path.includes('//')) return false;
  const local = LOCAL_DOMAIN.exec(path);
  const localOff = local ? local[0].length : 0;
  if (path.length > localOff + maxRel || path.length > XENSTORE_ABS_PATH_MAX) return false;
  return VALID_CHARS.test(path);
}

/** A special watch path such as @introduceDomain. */
export function isSpecialPath(path: string): boolean {
  return path.startsWith('@');
}

/** canonicalize: a relative path is relative to the connection's home, /local/domain/<id>. */
export function canonicalize(who: Requester, path: string): string {
  if (path.startsWith('/') || path.startsWith('@')) return path;
  return `${domainPath(who.id)}/${path}`;
}

/** get_parent: "/a/b" → "/a", "/a" → "/". */
export function parentOf(path: string): string {
  const slash = path.lastIndexOf('/');
  return slash <= 0 ? '/' : path.slice(0, slash);
}

export function basename(path: string): string {
  return path.slice(path.lastIndexOf('/') + 1);
}

/** "/" + "a" → "/a"; "/x" + "a" → "/x/a". */
export function childPath(parent: string, child: string): string {
  return parent === '/' ? `/${child}` : `${parent}/${child}`;
}

/** is_child: `child` is `parent` or below it (everything is below "/"). */
export function isChild(child: string, parent: string): boolean {
  if (parent === '/') return true;
  if (!child.startsWith(parent)) return false;
  return child.length === parent.length || child[parent.length] === '/';
}

/*
 * The size C xenstored stores for a node and checks against the node-size quota: its record
 * header (u64 generation, u32 num_perms, u32 datalen, u32 childlen, padded: 24 bytes), 8 bytes
 * per permission, the data, and the children's names with their NULs.
 */
const RECORD_HEADER_BYTES = 24;
const PERM_BYTES = 8;

export function childrenBytes(children: readonly string[]): number {
  let n = 0;
  for (const c of children) n += c.length + 1;
  return n;
}

export function nodeSize(node: Pick<XsNode, 'data' | 'children' | 'perms'>): number {
  return RECORD_HEADER_BYTES + PERM_BYTES * node.perms.length + node.data.length + childrenBytes(node.children);
}
