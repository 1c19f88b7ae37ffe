/*
 * A xenstored connection: one client's stream of requests in and replies and watch events out,
 * whatever carries the bytes.
 *
 * Xen: struct connection and its buffered_data queues in tools/xenstored/core.c (handle_input,
 * write_messages, send_reply, send_event, ignore_connection, conn_delete_all_*), with the
 * per-transport read/write functions of domain.c (rings) and core.c / posix.c (sockets).
 *
 * Three transports share this class: a guest's ring page (./ring-connection.ts), a tool on the
 * Unix socket (./socket.ts), and Dom0's own kernel in the same thread (./local.ts). Each says how
 * to take the next request's bytes and how to move queued output; everything else is here:
 * framing, the output queue, the outstanding-reply count xenstored's flow control uses, the
 * watches and transactions a connection owns, and what happens to a misbehaving client.
 *
 * A hostile client harms only itself: an oversized payload or impossible ring index makes
 * xenstored ignore the connection from then on (ring: its `error` field says why; socket: it is
 * closed); a flood of requests it does not collect replies for stops xenstored reading from it
 * (the outstanding quota) while every other connection is served as before.
 */
import {
  XENSTORE_ERROR_COMM, XENSTORE_PAYLOAD_MAX, XSD_SOCKMSG_SIZE, XS_ERROR, XS_WATCH_EVENT, type XsErrno,
} from '../../../shared/public/io/xs_wire.ts';
import { encodeMessage, XsMessageReader } from '../../../shared/kernel/xenbus/xs-message.ts';
import { domainPath } from '../../../shared/public/io/xenbus.ts';
import type { Quotas } from './quota.ts';
import type { XenstoredTrace } from './trace.ts';
import type { Transaction } from './transaction.ts';
import type { Watch, Watcher, WatchIndex } from './watch.ts';

/** What a connection needs from the daemon around it. */
export interface ConnectionOwner {
  readonly quota: Quotas;
  /** Every connection's watches by path (this connection's go when it does). */
  readonly watchIndex: WatchIndex;
  /** Every message out is traced while tracing is on. */
  readonly trace: XenstoredTrace;
  /** The connection has input (or room for output): serve it soon. */
  schedule(conn: Connection): void;
  /** The connection is gone for good. */
  dropped(conn: Connection): void;
  log(line: string): void;
}

interface OutMessage {
  /** XS_* type (for the trace). */
  type: number;
  bytes: Uint8Array;
  /** A reply (counts as outstanding until sent), not a watch event. */
  reply: boolean;
  /** For a watch event: its "path\0token" key while it is queued (duplicate suppression). */
  eventKey: string | null;
}

export type ReceiveResult = 'message' | 'none' | 'closed';

export abstract class Connection implements Watcher {
  readonly watches = new Map<string, Watch>();
  readonly transactions = new Map<number, Transaction>();
  /** Holds the request being assembled; a complete one is read by the dispatcher. */
  readonly reader = new XsMessageReader();
  /** Its home, /local/domain/<id>: relative paths are relative to it. */
  readonly home: string;
  private nextTransactionId = 1;
  protected readonly out: OutMessage[] = [];
  /** How much of out[0] has already gone. */
  protected outOff = 0;
  private outBytes = 0;
  /** Replies queued and not yet handed to the transport (quota_req_outstanding). */
  outstanding = 0;
  private readonly queuedEvents = new Set<string>();
  /** Over the soft memory quota, and said so in the log (soft_quota_reported). */
  private softReported = false;
  /** Set once xenstored stops serving this client (ignore_connection), with the reason. */
  ignored: string | null = null;
  readonly stats = { requests: 0, errors: 0, events: 0, eventsDropped: 0 };

  constructor(
    readonly id: number,
    readonly privileged: boolean,
    readonly kind: 'domain' | 'socket' | 'local',
    protected readonly owner: ConnectionOwner,
  ) {
    this.home = domainPath(id);
  }

  /** Take bytes until `reader` holds a whole request ('message'), or nothing more is there yet. */
  abstract receive(): ReceiveResult;
  /** Move queued output to the client, as far as the transport allows. */
  abstract flush(): void;
  /** More input may be waiting (so the daemon should come back after serving others). */
  abstract hasInput(): boolean;
  /** Release the transport (the connection is being dropped). */
  protected abstract shutdown(): void;

  /** domain_can_read: a guest with too many replies outstanding is not read until it takes some. */
  canRead(): boolean {
    return this.ignored === null && (this.privileged || this.outstanding < this.owner.quota.outstanding);
  }

  /** send_reply: queue a reply to the request in `reader`, echoing its req_id and tx_id. */
  reply(type: number, payload: Uint8Array): void {
    if (payload.length > XENSTORE_PAYLOAD_MAX) return this.error('E2BIG');
    const h = this.reader.header;
    this.queue({ type, bytes: encodeMessage(type, h.req_id, h.tx_id, [payload]), reply: true, eventKey: null });
  }

  /** send_error. */
  error(errno: XsErrno): void {
    this.stats.errors++;
    const h = this.reader.header;
    this.queue({ type: XS_ERROR, bytes: encodeMessage(XS_ERROR, h.req_id, h.tx_id, [errno]), reply: true, eventKey: null });
  }

  /** send_event: queue a WATCH_EVENT unless an identical one is queued or we are over quota. */
  sendEvent(path: string, token: string, special: boolean): void {
    if (this.ignored !== null) return;
    const key = `${path}\0${token}`;
    if (!special && this.queuedEvents.has(key)) return;
    const bytes = encodeMessage(XS_WATCH_EVENT, 0, 0, [path, token]);
    if (bytes.length - XSD_SOCKMSG_SIZE > XENSTORE_PAYLOAD_MAX) return;
    if (!this.privileged && this.outBytes + bytes.length > this.owner.quota.memory) {
      this.stats.eventsDropped++;
      return;
    }
    if (!special) this.queuedEvents.add(key);
    this.stats.events++;
    this.queue({ type: XS_WATCH_EVENT, bytes, reply: false, eventKey: special ? null : key });
  }

  private queue(m: OutMessage): void {
    if (this.ignored !== null) return;
    if (this.owner.trace.on) this.owner.trace.io(this, true, m.type, m.bytes.subarray(XSD_SOCKMSG_SIZE));
    this.out.push(m);
    this.outBytes += m.bytes.length;
    if (m.reply) this.outstanding++;
    if (!this.privileged) this.noteMemory();
  }

  /** domain_memory_add's soft-quota warning: logged once on the way up, once on the way down. */
  private noteMemory(): void {
    const over = this.outBytes >= this.owner.quota.memorySoft;
    if (over === this.softReported) return;
    this.softReported = over;
    this.owner.log(`xenstored: ${this.describe()} ${over ? 'exceeds soft memory quota' : 'below soft memory quota again'}`);
  }

  /** The transport has taken out[0] whole. */
  protected sent(): void {
    const m = this.out.shift()!;
    this.outOff = 0;
    this.outBytes -= m.bytes.length;
    if (m.reply) this.outstanding--;
    if (m.eventKey !== null) this.queuedEvents.delete(m.eventKey);
    if (this.softReported) this.noteMemory();
  }

  get queuedOutput(): number {
    return this.out.length;
  }

  /** Bytes of queued output, headers included (what C charges the domain's memory for it). */
  get queuedBytes(): number {
    return this.outBytes;
  }

  /** A free transaction id (never 0, never one in use). */
  newTransactionId(): number {
    for (;;) {
      const id = this.nextTransactionId;
      this.nextTransactionId = (this.nextTransactionId + 1) >>> 0 || 1;
      if (!this.transactions.has(id)) return id;
    }
  }

  /** conn_delete_all_watches + conn_delete_all_transactions (also XS_RESET_WATCHES). */
  forgetState(): void {
    this.owner.watchIndex.removeAll(this);
    this.transactions.clear();
  }

  /**
   * ignore_connection: stop serving this client. Its watches, transactions and queued output
   * go; a guest's ring stays mapped (until XS_RELEASE) but is never read again, and its `error`
   * field says why (`code`, a XENSTORE_ERROR_*).
   */
  ignore(why: string, code = XENSTORE_ERROR_COMM): void {
    if (this.ignored !== null) return;
    this.ignored = why;
    this.owner.log(`xenstored: ignoring ${this.describe()}: ${why}`);
    this.forgetState();
    this.out.length = 0;
    this.outOff = 0;
    this.outBytes = 0;
    this.outstanding = 0;
    this.queuedEvents.clear();
    this.markIgnored(code);
    if (this.kind !== 'domain') this.drop();
  }

  /** Transport-specific part of ignore(): a ring publishes the error code. */
  protected markIgnored(_code: number): void {}

  /** The client is gone: release everything. */
  drop(): void {
    this.forgetState();
    this.shutdown();
    this.owner.dropped(this);
  }

  describe(): string {
    return this.kind === 'domain' ? `domain ${this.id}` : `${this.kind} connection`;
  }
}
