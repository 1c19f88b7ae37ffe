/*
 * The XenStore client every kernel and tool uses: requests and replies, watches, transactions.
 *
 * Xen/Linux: drivers/xen/xenbus/xenbus_xs.c (xs_talkv, xenbus_read, xenbus_write,
 * xenbus_directory, xenbus_transaction_start/end, register_xenbus_watch and the xenwatch thread)
 * and, for tools, tools/libs/store/xs.c (libxenstore). What they share is this: a request carries
 * a req_id that its reply echoes, errors come back as names, and watch events arrive unasked,
 * interleaved with replies, carrying the token the watch was set with.
 *
 * The client knows nothing of how bytes travel: a DomU hands it the ring-page transport
 * (./xs-ring.ts), Dom0's own kernel a local connection to its in-thread xenstored, a tool on the
 * host a Unix-socket one. Several requests may be in flight at once (replies are matched by
 * req_id), which xenstored allows within its outstanding-request quota.
 *
 * Watch callbacks run after the event is taken off the transport, never inside it, and the
 * events of one watch are handled one at a time, in order (Linux's xenwatch thread serialises
 * all of them; per watch is enough here and cannot deadlock one watch on another's callback).
 */
import {
  XBT_NULL, XS_DIRECTORY, XS_ERROR, XS_GET_DOMAIN_PATH, XS_GET_PERMS, XS_INTRODUCE, XS_IS_DOMAIN_INTRODUCED,
  XS_MKDIR, XS_READ, XS_RELEASE, XS_RM, XS_SET_PERMS, XS_TRANSACTION_END, XS_TRANSACTION_START, XS_TYPE_NAMES,
  XS_UNWATCH, XS_WATCH, XS_WATCH_EVENT, XS_WRITE, isXsErrno, permFromString, permToString, type XsErrno,
  type XsPermission,
} from '../../public/io/xs_wire.ts';
import { decodeString, encodeMessage, encodeString, splitStrings, type XsPayloadPart } from './xs-message.ts';
import type { RingTracer } from '../../public/io/ring.ts';
import { TRC_GUEST_XS_REPLY, TRC_GUEST_XS_REQUEST, TRC_GUEST_XS_WATCH_EVENT } from '../../public/trace.ts';

/** How bytes reach xenstored. The client sets the two callbacks. */
export interface XsTransport {
  /** Queue one whole message (header and payload). */
  send(msg: Uint8Array): void;
  /** Each message from xenstored; `payload` is valid only during the call. */
  onMessage: ((type: number, req_id: number, tx_id: number, payload: Uint8Array) => void) | null;
  /** The transport failed for good (xenstored dropped us, or broke the ring). */
  onClose: ((why: string) => void) | null;
  close(): void;
}

/** An error reply from xenstored (or a failed transport, as EIO). The message names op and path. */
export class XsError extends Error {
  override readonly name = 'XsError';
  constructor(readonly errno: XsErrno, readonly op: string, readonly path: string) {
    super(`xenstore ${op} ${path}: ${errno}`);
  }
}

export type WatchCallback = (path: string, token: string) => void | Promise<void>;

export interface XsWatch {
  readonly path: string;
  readonly token: string;
  unwatch(): Promise<void>;
}

interface Pending {
  type: number;
  what: string;
  resolve(payload: Uint8Array): void;
  reject(e: Error): void;
}

interface WatchEntry {
  path: string;
  cb: WatchCallback;
  queue: Promise<void>;
}

export class XenbusClient {
  private nextReqId = 1;
  private nextToken = 1;
  private readonly pending = new Map<number, Pending>();
  private readonly watches = new Map<string, WatchEntry>();
  private closed: string | null = null;
  /**
   * Counters a reader can inspect. `rounds`: requests sent while none was in flight, i.e. how many
   * times the client waited for xenstored from a standing start, a count of sequential round trips
   * that does not depend on the machine's load (requests sent together count once).
   */
  readonly stats = { requests: 0, errors: 0, watchEvents: 0, rounds: 0 };
  /**
   * Trace points (xentrace: each request, reply and watch event, so a resume's round trips can be
   * timed one by one: tools/trace/resume-timeline.ts); set by a kernel's xenbus_init, null for tools.
   */
  tracer: RingTracer | null = null;
  /** Where a failing watch callback is reported (default: thrown away with one console line, no stack). */
  onWatchError: (e: unknown, path: string) => void = (e, path) => console.error(`xenbus watch ${path}: ${e instanceof Error ? e.message : String(e)}`);

  constructor(private readonly transport: XsTransport) {
    transport.onMessage = (type, req_id, _tx, payload) => this.receive(type, req_id, payload);
    transport.onClose = (why) => this.fail(why);
  }

  /* ---- the generic request (xs_talkv) ---- */

  /** Send one request and wait for its reply's payload (a private copy). */
  request(type: number, parts: readonly XsPayloadPart[], t = XBT_NULL, what = ''): Promise<Uint8Array> {
    if (this.closed !== null) return Promise.reject(new XsError('EIO', XS_TYPE_NAMES[type] ?? String(type), `${what} (${this.closed})`));
    const req_id = this.nextReqId;
    this.nextReqId = (this.nextReqId + 1) >>> 0 || 1;
    this.stats.requests++;
    if (this.pending.size === 0) this.stats.rounds++;
    this.tracer?.xentrace(TRC_GUEST_XS_REQUEST, type, req_id, this.pending.size === 0 ? 1 : 0, 0);
    return new Promise((resolve, reject) => {
      this.pending.set(req_id, { type, what, resolve, reject });
      this.transport.send(encodeMessage(type, req_id, t, parts));
    });
  }

  private receive(type: number, req_id: number, payload: Uint8Array): void {
    this.tracer?.xentrace(type === XS_WATCH_EVENT ? TRC_GUEST_XS_WATCH_EVENT : TRC_GUEST_XS_REPLY, type, req_id, 0, 0);
    if (type === XS_WATCH_EVENT) return this.watchEvent(payload);
    const p = this.pending.get(req_id);
    if (p === undefined) return; // a reply to nobody: ignore it, as xs.c would drop the connection's sync
    this.pending.delete(req_id);
    const op = XS_TYPE_NAMES[p.type] ?? String(p.type);
    if (type === XS_ERROR) {
      this.stats.errors++;
      const name = splitStrings(payload)[0] ?? '';
      p.reject(new XsError(isXsErrno(name) ? name : 'EINVAL', op, p.what));
    } else if (type !== p.type) {
      p.reject(new XsError('EIO', op, `${p.what} (reply of type ${type})`));
    } else {
      p.resolve(payload.slice());
    }
  }

  private fail(why: string): void {
    if (this.closed !== null) return;
    this.closed = why;
    for (const p of this.pending.values()) p.reject(new XsError('EIO', XS_TYPE_NAMES[p.type] ?? '?', `${p.what} (${why})`));
    this.pending.clear();
  }

  close(): void {
    this.fail('closed');
    this.transport.close();
  }

  /* ---- nodes ---- */

  async readBytes(path: string, t = XBT_NULL): Promise<Uint8Array> {
    return this.request(XS_READ, [path], t, path);
  }

  /** xenbus_read: the value as text. */
  async read(path: string, t = XBT_NULL): Promise<string> {
    return decodeString(await this.readBytes(path, t));
  }

  /** A read where ENOENT is an answer, not an error. */
  async tryRead(path: string, t = XBT_NULL): Promise<string | null> {
    try {
      return await this.read(path, t);
    } catch (e) {
      if (e instanceof XsError && e.errno === 'ENOENT') return null;
      throw e;
    }
  }

  /**
   * xenbus_read_unsigned: a node holding a whole number, or `dflt` if it is absent or holds
   * anything else (the other end wrote it; a bad value is its mistake, never ours to throw on).
   */
  async readUnsigned(path: string, dflt: number, t = XBT_NULL): Promise<number> {
    const v = await this.tryRead(path, t);
    if (v === null || !/^[0-9]+$/.test(v)) return dflt;
    const n = Number(v);
    return Number.isSafeInteger(n) ? n : dflt;
  }

  /** xenbus_write: creates the node (and missing parents) if needed. */
  async write(path: string, value: string | Uint8Array, t = XBT_NULL): Promise<void> {
    await this.request(XS_WRITE, [path, typeof value === 'string' ? encodeString(value) : value], t, path);
  }

  async mkdir(path: string, t = XBT_NULL): Promise<void> {
    await this.request(XS_MKDIR, [path], t, path);
  }

  /** Remove a node and everything below it; removing a missing node whose parent exists succeeds. */
  async rm(path: string, t = XBT_NULL): Promise<void> {
    await this.request(XS_RM, [path], t, path);
  }

  /** xenbus_directory: the names of a node's children. */
  async directory(path: string, t = XBT_NULL): Promise<string[]> {
    return splitStrings(await this.request(XS_DIRECTORY, [path], t, path));
  }

  async getPerms(path: string, t = XBT_NULL): Promise<XsPermission[]> {
    const strings = splitStrings(await this.request(XS_GET_PERMS, [path], t, path));
    return strings.map((s) => {
      const p = permFromString(s);
      if (p === null) throw new XsError('EINVAL', 'GET_PERMS', `${path} (bad permission "${s}")`);
      return p;
    });
  }

  async setPerms(path: string, perms: readonly XsPermission[], t = XBT_NULL): Promise<void> {
    await this.request(XS_SET_PERMS, [path, ...perms.map(permToString)], t, path);
  }

  /* ---- watches ---- */

  /**
   * register_xenbus_watch: `cb` runs once soon (every watch fires when set) and then on every
   * change at or below `path`. Tokens are made unique per client unless one is given.
   */
  async watch(path: string, cb: WatchCallback, token = `w${this.nextToken++}`): Promise<XsWatch> {
    if (this.watches.has(token)) throw new XsError('EEXIST', 'WATCH', `${path} (token ${token} in use)`);
    this.watches.set(token, { path, cb, queue: Promise.resolve() });
    try {
      await this.request(XS_WATCH, [path, token], XBT_NULL, path);
    } catch (e) {
      this.watches.delete(token);
      throw e;
    }
    return { path, token, unwatch: () => this.unwatch(path, token) };
  }

  async unwatch(path: string, token: string): Promise<void> {
    this.watches.delete(token);
    await this.request(XS_UNWATCH, [path, token], XBT_NULL, path);
  }

  private watchEvent(payload: Uint8Array): void {
    const [path, token] = splitStrings(payload);
    const w = token === undefined ? undefined : this.watches.get(token);
    if (w === undefined || path === undefined) return; // an event for a watch just removed
    this.stats.watchEvents++;
    w.queue = w.queue.then(async () => {
      if (this.watches.get(token) !== w) return;
      try {
        await w.cb(path, token);
      } catch (e) {
        this.onWatchError(e, path);
      }
    });
  }

  /* ---- transactions ---- */

  async transactionStart(): Promise<number> {
    const id = Number(decodeString(await this.request(XS_TRANSACTION_START, [''], XBT_NULL, '')).replace(/\0$/, ''));
    if (!Number.isInteger(id) || id <= 0) throw new XsError('EIO', 'TRANSACTION_START', `(bad id)`);
    return id;
  }

  /** Commit (`commit` true) or abort. A commit fails with EAGAIN if something it read changed. */
  async transactionEnd(t: number, commit: boolean): Promise<void> {
    await this.request(XS_TRANSACTION_END, [commit ? 'T' : 'F'], t, `transaction ${t}`);
  }

  /**
   * Run `body` in a transaction and commit, starting again on EAGAIN as every xenbus driver does
   * (mini-os blkfront's "again:" loop). An exception from `body` aborts the transaction.
   */
  async transaction<T>(body: (t: number) => Promise<T>): Promise<T> {
    for (;;) {
      const t = await this.transactionStart();
      let result: T;
      try {
        result = await body(t);
      } catch (e) {
        await this.transactionEnd(t, false).catch(() => undefined);
        throw e;
      }
      try {
        await this.transactionEnd(t, true);
        return result;
      } catch (e) {
        if (!(e instanceof XsError && e.errno === 'EAGAIN')) throw e;
      }
    }
  }

  /**
   * transaction(), one round trip shorter: `body` awaits what it reads, then sends its writes and
   * hands back their promise unawaited (`{ writes }`); the commit goes out right behind them,
   * before their replies (see ./device.ts, "Round trips"). xenstored applies a connection's
   * requests in order, so the commit still follows the writes. If a write fails, the commit
   * carries the ones before it and the error is thrown; EAGAIN starts the whole body again.
   * `started`: a TRANSACTION_START the caller sent earlier, beside requests it was waiting for
   * anyway (./frontend.ts), used by the first attempt; a transaction touches no node until its
   * body does, so starting it early changes nothing of what it reads or what the commit checks.
   */
  async transactionWrites<T>(body: (t: number) => Promise<{ writes: Promise<T> }>, started: Promise<number> | null = null): Promise<T> {
    for (;;) {
      const early = started;
      started = null;
      const t = early !== null ? await early.catch(() => this.transactionStart()) : await this.transactionStart();
      let sent: { writes: Promise<T> };
      try {
        sent = await body(t);
      } catch (e) {
        await this.transactionEnd(t, false).catch(() => undefined);
        throw e;
      }
      const [w, end] = await Promise.allSettled([sent.writes, this.transactionEnd(t, true)]);
      if (w.status === 'rejected') throw w.reason;
      if (end.status === 'fulfilled') return w.value;
      if (!(end.reason instanceof XsError && end.reason.errno === 'EAGAIN')) throw end.reason;
    }
  }

  /* ---- domains (the toolstack's) ---- */

  async getDomainPath(domid: number): Promise<string> {
    return decodeString(await this.request(XS_GET_DOMAIN_PATH, [String(domid)])).replace(/\0$/, '');
  }

  /** XS_INTRODUCE: tell xenstored about a new domain's ring page and event channel. */
  async introduce(domid: number, gfn: number, port: number): Promise<void> {
    await this.request(XS_INTRODUCE, [String(domid), String(gfn), String(port)], XBT_NULL, `domain ${domid}`);
  }

  /** XS_RELEASE: the domain is gone; xenstored drops its connection and what it owned. */
  async release(domid: number): Promise<void> {
    await this.request(XS_RELEASE, [String(domid)], XBT_NULL, `domain ${domid}`);
  }

  async isDomainIntroduced(domid: number): Promise<boolean> {
    return decodeString(await this.request(XS_IS_DOMAIN_INTRODUCED, [String(domid)])).startsWith('T');
  }
}
