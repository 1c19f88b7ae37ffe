/*
 * Request dispatch: from one complete message to its reply.
 *
 * Xen: tools/xenstored/core.c (wire_funcs, process_message, onearg, get_strings) with the
 * handlers of core.c, watch.c, transaction.c, domain.c and control.c. The table says, per
 * XS_* type, which handler runs, whether the transaction id is ignored (WATCH, UNWATCH) and
 * whether only Dom0 may ask (INTRODUCE, RELEASE, ...: EACCES for anyone else). A type with no
 * handler (including the daemon-to-client types, and the newer GET/SET_FEATURE and
 * GET/SET_QUOTA that Xen 4.17 lacks too) is answered with ENOSYS, a transaction id the
 * connection does not have with ENOENT, malformed arguments with EINVAL.
 *
 * The payload handed in is the connection's private copy; nothing here reads the shared page.
 */
import {
  XS_CONTROL, XS_DIRECTORY, XS_DIRECTORY_PART, XS_GET_DOMAIN_PATH, XS_GET_PERMS, XS_INTRODUCE,
  XS_IS_DOMAIN_INTRODUCED, XS_MKDIR, XS_READ, XS_RELEASE, XS_RESET_WATCHES, XS_RESUME, XS_RM, XS_SET_PERMS,
  XS_TRANSACTION_END, XS_TRANSACTION_START, XS_UNWATCH, XS_WATCH, XS_WRITE, permFromString, permToString,
  type XsPermission,
} from '../../../shared/public/io/xs_wire.ts';
import { decodeString, encodeString, splitStrings } from '../../../shared/kernel/xenbus/xs-message.ts';
import { domainPath } from '../../../shared/public/io/xenbus.ts';
import type { Connection } from './connection.ts';
import { canonicalize, isSpecialPath } from './node.ts';
import {
  doDirectory, doDirectoryPart, doGetPerms, doMkdir, doRead, doRm, doSetPerms, doWrite, type OpContext,
} from './ops.ts';
import { doControl } from './control.ts';
import { XsdError, fail } from './quota.ts';
import { Transaction } from './transaction.ts';
import { watchEventPath } from './watch.ts';
import type { XenstoredCore } from './core.ts';

const OK = encodeString('OK\0');

interface Request {
  xs: XenstoredCore;
  conn: Connection;
  t: Transaction | null;
  payload: Uint8Array;
}

type Handler = (r: Request) => void;

interface WireFunc {
  fn: Handler;
  /** XS_FLAG_NOTID: the transaction id is ignored. */
  notid?: boolean;
  /** XS_FLAG_PRIV: Dom0 only. */
  priv?: boolean;
}

/** onearg: exactly one string, its NUL the payload's last byte. */
function onearg(payload: Uint8Array): string {
  if (payload.length === 0 || payload.indexOf(0) !== payload.length - 1) fail('EINVAL', 'expected one argument');
  return decodeString(payload.subarray(0, payload.length - 1));
}

/** Exactly `n` strings. */
function args(payload: Uint8Array, n: number): string[] {
  const s = splitStrings(payload);
  if (s.length !== n) fail('EINVAL', `expected ${n} arguments`);
  return s;
}

function domidArg(payload: Uint8Array): number {
  const s = onearg(payload);
  if (!/^[0-9]{1,5}$/.test(s)) fail('EINVAL', `bad domid "${s.slice(0, 16)}"`);
  return Number(s);
}

/** The context node operations run in: the store, or the request's transaction. */
function opContext(r: Request): OpContext {
  const { xs, conn, t } = r;
  return {
    who: conn,
    access: t ?? xs.store,
    quota: xs.quota,
    changed: t !== null
      ? (path, exact, perms) => t.queueEvent(path, exact, perms)
      : (path, exact, perms) => xs.fire(path, exact, perms),
  };
}

const path = (r: Request) => canonicalize(r.conn, onearg(r.payload));
const ack = (r: Request, type: number) => r.conn.reply(type, OK);
const strings = (list: readonly string[]) => encodeString(list.map((s) => `${s}\0`).join(''));

function write(r: Request): void {
  const nul = r.payload.indexOf(0);
  if (nul < 0) fail('EINVAL', 'no path');
  const p = canonicalize(r.conn, decodeString(r.payload.subarray(0, nul)));
  doWrite(opContext(r), p, r.payload.slice(nul + 1));
  ack(r, XS_WRITE);
}

function setPerms(r: Request): void {
  const s = splitStrings(r.payload);
  if (s.length < 2) fail('EINVAL', 'no permissions');
  const perms: XsPermission[] = s.slice(1).map((p) => permFromString(p) ?? fail('EINVAL', `bad permission "${p.slice(0, 8)}"`));
  if (isSpecialPath(s[0])) r.xs.special.setPerms(r.conn, s[0], perms);
  else doSetPerms(opContext(r), canonicalize(r.conn, s[0]), perms);
  ack(r, XS_SET_PERMS);
}

function watch(r: Request): void {
  const [p, token] = args(r.payload, 2);
  const w = r.xs.watchIndex.add(r.conn, p, token, r.xs.quota.pathMax, r.xs.quota.watches);
  ack(r, XS_WATCH);
  // Every watch fires once when set; this event answers no request.
  r.conn.sendEvent(watchEventPath(w, w.node), w.token, isSpecialPath(w.node));
}

function transactionStart(r: Request): void {
  const { conn, xs } = r;
  if (r.t !== null) fail('EBUSY', 'no nested transactions');
  if (!conn.privileged && conn.transactions.size >= xs.quota.transactions) fail('ENOSPC', `more than ${xs.quota.transactions} transactions`);
  const id = conn.newTransactionId();
  conn.transactions.set(id, new Transaction(id, xs.store, conn.privileged ? Infinity : xs.quota.transactionNodes));
  conn.reply(XS_TRANSACTION_START, encodeString(`${id}\0`));
}

function transactionEnd(r: Request): void {
  const { conn, xs, t } = r;
  const arg = onearg(r.payload);
  if (arg !== 'T' && arg !== 'F') fail('EINVAL', 'expected T or F');
  if (t === null) fail('ENOENT', 'no transaction');
  conn.transactions.delete(t.id);
  if (arg === 'T') {
    if (t.failed) fail('ENOMEM', 'transaction failed part-way');
    if (!conn.privileged && t.nodeCreated) {
      for (const [, count] of t.ownersAfterCommit()) if (count > xs.quota.nodes) fail('ENOSPC', `more than ${xs.quota.nodes} nodes`);
    }
    for (const e of t.commit()) xs.fire(e.path, e.exact, e.perms);
  }
  ack(r, XS_TRANSACTION_END);
}

/** XS_CONTROL (./control.ts). */
function control(r: Request): void {
  r.conn.reply(XS_CONTROL, encodeString(`${doControl(r.xs, splitStrings(r.payload))}\0`));
}

const wireFuncs: Partial<Record<number, WireFunc>> = {
  [XS_CONTROL]: { fn: control, priv: true },
  [XS_DIRECTORY]: { fn: (r) => r.conn.reply(XS_DIRECTORY, strings(doDirectory(opContext(r), path(r)))) },
  [XS_READ]: { fn: (r) => r.conn.reply(XS_READ, doRead(opContext(r), path(r))) },
  [XS_GET_PERMS]: { fn: (r) => r.conn.reply(XS_GET_PERMS, strings(doGetPerms(opContext(r), path(r)).map(permToString))) },
  [XS_WATCH]: { fn: watch, notid: true },
  [XS_UNWATCH]: {
    fn: (r) => {
      const [p, token] = args(r.payload, 2);
      r.xs.watchIndex.remove(r.conn, p, token);
      ack(r, XS_UNWATCH);
    },
    notid: true,
  },
  [XS_TRANSACTION_START]: { fn: transactionStart },
  [XS_TRANSACTION_END]: { fn: transactionEnd },
  [XS_INTRODUCE]: {
    fn: (r) => {
      const s = splitStrings(r.payload);
      if (s.length < 3 || !s.slice(0, 3).every((x) => /^[0-9]{1,15}$/.test(x))) fail('EINVAL', 'expected domid, gfn, port');
      r.xs.introduce(Number(s[0]), Number(s[1]), Number(s[2]));
      ack(r, XS_INTRODUCE);
    },
    priv: true,
  },
  [XS_RELEASE]: { fn: (r) => { r.xs.release(domidArg(r.payload)); ack(r, XS_RELEASE); }, priv: true },
  [XS_GET_DOMAIN_PATH]: { fn: (r) => r.conn.reply(XS_GET_DOMAIN_PATH, encodeString(`${domainPath(domidArg(r.payload))}\0`)) },
  [XS_WRITE]: { fn: write },
  [XS_MKDIR]: { fn: (r) => { doMkdir(opContext(r), path(r)); ack(r, XS_MKDIR); } },
  [XS_RM]: { fn: (r) => { doRm(opContext(r), path(r)); ack(r, XS_RM); } },
  [XS_SET_PERMS]: { fn: setPerms },
  [XS_IS_DOMAIN_INTRODUCED]: {
    fn: (r) => {
      const domid = domidArg(r.payload);
      r.conn.reply(XS_IS_DOMAIN_INTRODUCED, encodeString(r.xs.domains.has(domid) || domid === 0 ? 'T\0' : 'F\0'));
    },
    priv: true,
  },
  [XS_RESUME]: {
    fn: (r) => {
      if (!r.xs.domains.has(domidArg(r.payload))) fail('ENOENT');
      ack(r, XS_RESUME);
    },
    priv: true,
  },
  [XS_RESET_WATCHES]: { fn: (r) => { r.conn.forgetState(); ack(r, XS_RESET_WATCHES); } },
  [XS_DIRECTORY_PART]: {
    fn: (r) => {
      const [p, off] = args(r.payload, 2);
      r.conn.reply(XS_DIRECTORY_PART, doDirectoryPart(opContext(r), canonicalize(r.conn, p), Number.parseInt(off, 10) || 0));
    },
  },
};

/** process_message: run the request now in conn.reader and queue its reply. */
export function processMessage(xs: XenstoredCore, conn: Connection): void {
  const h = conn.reader.header;
  conn.stats.requests++;
  if (xs.trace.on) xs.trace.io(conn, false, h.type, conn.reader.payload());
  try {
    const wf = wireFuncs[h.type];
    if (wf === undefined) fail('ENOSYS', `type ${h.type}`);
    if (wf.priv && !conn.privileged) fail('EACCES', 'Dom0 only');
    let t: Transaction | null = null;
    if (!wf.notid && h.tx_id !== 0) t = conn.transactions.get(h.tx_id) ?? fail('ENOENT', `no transaction ${h.tx_id}`);
    wf.fn({ xs, conn, t, payload: conn.reader.payload() });
  } catch (e) {
    if (e instanceof XsdError) return conn.error(e.errno);
    // A bug in xenstored, not the client's doing: say so loudly, but keep serving everyone.
    xs.log(`xenstored: internal error on ${conn.describe()} type ${h.type}: ${(e as Error).stack ?? e}`);
    conn.error('EIO');
  }
}
