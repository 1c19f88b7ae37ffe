/*
 * The node operations: read, write, mkdir, rm, directory, get and set permissions, with Xen's
 * permission checks and quotas.
 *
 * Xen: tools/xenstored/core.c (get_node, errno_from_parents, construct_node, create_node,
 * do_read, do_write, do_mkdir, do_rm / rm_node, send_directory, send_directory_part,
 * do_get_perms, do_set_perms). Each operation works on a NodeAccess, so the same code runs
 * against the store or inside a transaction, and reports what changed through `changed`, which
 * fires watches now or queues them for the commit.
 *
 * Errors, as C xenstored chooses them: a node you may not read (or write) is EACCES; a missing
 * node is ENOENT, unless you could not have learnt that it is missing (the nearest existing
 * ancestor does not grant you the access either), in which case it is EACCES too. Creating a
 * node needs write access to its nearest existing ancestor; missing parents are created on the
 * way, inheriting that ancestor's permissions, and a guest owns what it creates.
 */
import {
  XENSTORE_PAYLOAD_MAX, XS_PERM_OWNER, XS_PERM_READ, XS_PERM_WRITE, type XsPermission,
} from '../../../shared/public/io/xs_wire.ts';
import {
  basename, childPath, isValidNodename, nodeSize, parentOf, permForConn, type Requester, type XsNode,
} from './node.ts';
import { fail, type Quotas } from './quota.ts';
import type { NodeAccess, NodeContent } from './store.ts';

const EMPTY = new Uint8Array(0);
const encoder = new TextEncoder();

export interface OpContext {
  readonly who: Requester;
  readonly access: NodeAccess;
  readonly quota: Quotas;
  /** A node changed: fire (or queue) watches. `perms`: its permissions before the change. */
  changed(path: string, exact: boolean, perms: readonly XsPermission[] | undefined): void;
}

/** Quotas bind unprivileged domains only. */
const limited = (ctx: OpContext) => !ctx.who.privileged;

/**
 * get_node: the node at `path` if `who` has `perm` on it; null if it does not exist and the
 * nearest ancestor grants `perm` (so the caller may create it); otherwise the refusal is thrown.
 */
function lookup(ctx: OpContext, path: string, perm: number): XsNode | null {
  if (!isValidNodename(path, ctx.quota.pathMax)) fail('EINVAL', `bad path ${path.slice(0, 64)}`);
  const node = ctx.access.read(path);
  if (node !== undefined && (permForConn(ctx.who, node.perms) & perm) === perm) return node;
  const errno = node === undefined ? 'ENOENT' : 'EACCES';
  // errno_from_parents: say ENOENT only to someone the nearest existing ancestor would let see it.
  let p = path;
  let ancestor: XsNode | undefined;
  do {
    p = parentOf(p);
    ancestor = ctx.access.read(p);
  } while (ancestor === undefined && p !== '/');
  if (ancestor === undefined || (permForConn(ctx.who, ancestor.perms) & perm) === 0) fail('EACCES');
  if (errno === 'ENOENT') return null;
  fail(errno);
}

function getNode(ctx: OpContext, path: string, perm: number): XsNode {
  return lookup(ctx, path, perm) ?? fail('ENOENT');
}

/** write_node's size check, for every record a guest causes to be written. */
function checkSize(ctx: OpContext, node: NodeContent): void {
  if (limited(ctx) && nodeSize(node) >= ctx.quota.nodeSize) fail('ENOSPC', `node ${node.name} would be ${nodeSize(node)} bytes`);
}

/**
 * construct_node + create_node: create `path` with `data`, and any missing parents. Everything
 * is checked before anything is written, so a refusal leaves the store as it was.
 */
function createNode(ctx: OpContext, path: string, data: Uint8Array): XsNode {
  const missing: string[] = [];
  let parent: XsNode | undefined;
  for (let p = path; parent === undefined; ) {
    missing.push(p);
    p = parentOf(p);
    parent = ctx.access.read(p);
    if (parent === undefined && p === '/') fail('EIO', 'no root node');
  }
  missing.reverse(); // top-down
  if (limited(ctx) && ctx.access.owned(ctx.who.id) + missing.length > ctx.quota.nodes) {
    fail('ENOSPC', `more than ${ctx.quota.nodes} nodes`);
  }
  const writes: NodeContent[] = [{ ...parent!, children: [...parent!.children, basename(missing[0])] }];
  for (let i = 0; i < missing.length; i++) {
    const perms = parent!.perms.map((e) => ({ ...e }));
    if (limited(ctx)) perms[0].id = ctx.who.id; // a guest owns what it creates
    const last = i === missing.length - 1;
    writes.push({ name: missing[i], data: last ? data : EMPTY, children: last ? [] : [basename(missing[i + 1])], perms });
  }
  for (const w of writes) checkSize(ctx, w);
  for (const w of writes) ctx.access.write(w);
  return ctx.access.read(path)!;
}

/** XS_READ: the value. */
export function doRead(ctx: OpContext, path: string): Uint8Array {
  return getNode(ctx, path, XS_PERM_READ).data;
}

/** XS_WRITE: set the value, creating the node if need be. */
export function doWrite(ctx: OpContext, path: string, data: Uint8Array): void {
  const node = lookup(ctx, path, XS_PERM_WRITE);
  let perms: readonly XsPermission[];
  if (node === null) {
    perms = createNode(ctx, path, data).perms;
  } else {
    const next = { ...node, data };
    checkSize(ctx, next);
    ctx.access.write(next);
    perms = node.perms;
  }
  ctx.changed(path, false, perms);
}

/** XS_MKDIR: create an empty node; an existing one is left alone (and fires nothing). */
export function doMkdir(ctx: OpContext, path: string): void {
  if (lookup(ctx, path, XS_PERM_WRITE) !== null) return;
  const node = createNode(ctx, path, EMPTY);
  ctx.changed(path, false, node.perms);
}

/** XS_RM: remove a node and all below it. A missing node whose parent exists is not an error. */
export function doRm(ctx: OpContext, path: string): void {
  const node = lookup(ctx, path, XS_PERM_WRITE);
  if (node === null) {
    if (ctx.access.read(parentOf(path)) !== undefined) return;
    fail('ENOENT');
  }
  if (path === '/') fail('EINVAL', 'cannot remove /');
  removeTree(ctx, node);
  const parent = ctx.access.read(parentOf(path));
  if (parent !== undefined) {
    const name = basename(path);
    ctx.access.write({ ...parent, children: parent.children.filter((c) => c !== name) });
  }
}

/**
 * rm_node's walk: children before parents, firing each node's watches while its permissions
 * still exist. Every node is read first and removed after, so a refusal while reading (the
 * transaction-nodes quota) leaves nothing half-removed.
 */
function removeTree(ctx: OpContext, root: XsNode): void {
  const order: XsNode[] = [];
  const visit = (node: XsNode) => {
    for (const c of node.children) {
      const child = ctx.access.read(childPath(node.name, c));
      if (child !== undefined) visit(child);
    }
    order.push(node);
  };
  visit(root);
  for (const node of order) {
    ctx.changed(node.name, node !== root, node.perms);
    ctx.access.remove(node.name);
  }
}

/** XS_DIRECTORY: the children's names. */
export function doDirectory(ctx: OpContext, path: string): readonly string[] {
  return getNode(ctx, path, XS_PERM_READ).children;
}

/**
 * XS_DIRECTORY_PART (send_directory_part): for directories whose listing exceeds one payload.
 * The reply is the node's generation, then as many names as fit from byte `offset` of the
 * listing; a trailing empty string marks the end. A client seeing the generation change
 * starts over.
 */
export function doDirectoryPart(ctx: OpContext, path: string, offset: number): Uint8Array {
  const node = getNode(ctx, path, XS_PERM_READ);
  const list = encoder.encode(node.children.map((c) => `${c}\0`).join(''));
  const gen = encoder.encode(`${node.generation}\0`);
  if (offset >= list.length) return concat(gen, new Uint8Array(1));
  const maxlen = XENSTORE_PAYLOAD_MAX - gen.length - 1;
  let len = 0;
  while (offset + len < list.length) {
    const end = list.indexOf(0, offset + len) + 1;
    if (end - offset > maxlen) break;
    len = end - offset;
  }
  const part = list.subarray(offset, offset + len);
  return offset + len === list.length ? concat(gen, part, new Uint8Array(1)) : concat(gen, part);
}

function concat(...parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let off = 0;
  for (const p of parts) {
    out.set(p, off);
    off += p.length;
  }
  return out;
}

/** XS_GET_PERMS. */
export function doGetPerms(ctx: OpContext, path: string): readonly XsPermission[] {
  return getNode(ctx, path, XS_PERM_READ).perms;
}

/** XS_SET_PERMS on a node: the owner (or Dom0) may; only Dom0 may give it to another owner. */
export function doSetPerms(ctx: OpContext, path: string, perms: XsPermission[]): void {
  if (limited(ctx) && perms.length > ctx.quota.permsPerNode) fail('ENOSPC', `more than ${ctx.quota.permsPerNode} permissions`);
  const node = getNode(ctx, path, XS_PERM_WRITE | XS_PERM_OWNER);
  if (limited(ctx) && perms[0].id !== node.perms[0].id) fail('EPERM', 'only Dom0 changes owners');
  const next = { ...node, perms };
  checkSize(ctx, next);
  ctx.access.write(next);
  ctx.changed(path, false, node.perms);
}
