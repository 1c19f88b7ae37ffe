/*
 * xenstored's end of a guest's ring page: the connection a DomU talks through.
 *
 * Xen: tools/xenstored/domain.c (readchn, writechn, domain_can_read, domain_can_write,
 * check_indexes, map_interface) over xs_wire.h's xenstore_domain_interface.
 *
 * xenstored consumes `req` and produces `rsp`. It reads a guest's ring one message at a time and
 * only while the guest has fewer than quota.outstanding replies waiting, so a guest that floods
 * requests and never collects replies is simply not read any more. Every index the guest owns is
 * read once per call and checked (prod − cons ≤ 1024); an impossible one, or a header announcing
 * more than XENSTORE_PAYLOAD_MAX, makes xenstored ignore the ring for good and publish the reason
 * in the page's `error` field (XENSTORE_ERROR_RINGIDX / _PROTO), as C xenstored does.
 *
 * A guest notifies only when it publishes requests to a xenstored that had taken everything
 * before them (Linux's xb_write), so xenstored never stops reading on what it saw last: receive()
 * reads req_prod again after each req_cons it publishes, and serve() looks once more (hasInput)
 * before it leaves a connection with requests waiting.
 *
 * Bytes are copied out of the shared page into the connection's private reader before anything
 * is parsed, so a guest rewriting its ring meanwhile cannot change a request under validation.
 *
 * Difference from Xen: C xenstored zeroes the ring's indices on XS_INTRODUCE (domain_conn_reset),
 * which is safe because the toolstack introduces a domain before it first runs. ringvisor's
 * toolstack does the same (dom0/toolstack/xenstore-home.ts creates paused), but a domain may also be created
 * running and queue requests before it is introduced, so xenstored picks the ring up as it finds
 * it instead of zeroing it.
 */
import { ByteRingView } from '../../../shared/public/io/byte-ring.ts';
import {
  XENSTORE_CONNECTED, XENSTORE_ERROR_PROTO, XENSTORE_ERROR_RINGIDX, XENSTORE_REQ_RING, XENSTORE_RSP_RING,
  XENSTORE_SERVER_FEATURE_ERROR, xenstore_domain_interface,
} from '../../../shared/public/io/xs_wire.ts';
import { PAGE_SIZE } from '../../../shared/public/xen.ts';
import { Connection, type ConnectionOwner, type ReceiveResult } from './connection.ts';

export class RingConnection extends Connection {
  private readonly page: Int32Array;
  private readonly req: ByteRingView;
  private readonly rsp: ByteRingView;
  /** We consumed from a full request ring: the guest may be waiting to write more. */
  private madeRoom = false;

  constructor(
    domid: number,
    owner: ConnectionOwner,
    page: Int32Array,
    /** Send on our end of the domain's store event channel. */
    private readonly notify: () => void,
    /** Unmap the page and unbind the port. */
    private readonly release: () => void,
  ) {
    super(domid, false, 'domain', owner);
    this.page = page;
    const bytes = new Uint8Array(page.buffer, page.byteOffset, PAGE_SIZE);
    this.req = new ByteRingView(bytes, page, XENSTORE_REQ_RING);
    this.rsp = new ByteRingView(bytes, page, XENSTORE_RSP_RING);
    Atomics.store(page, xenstore_domain_interface.server_features >> 2, XENSTORE_SERVER_FEATURE_ERROR);
    Atomics.store(page, xenstore_domain_interface.connection >> 2, XENSTORE_CONNECTED);
  }

  /** The store port fired: the guest produced requests or consumed replies. */
  interrupt(): void {
    if (this.ignored !== null) return;
    this.flush();
    this.owner.schedule(this);
  }

  receive(): ReceiveResult {
    if (this.ignored !== null) return 'closed';
    const r = this.reader;
    for (;;) {
      const n = this.req.read(r.buffer, r.offset, r.wanted);
      if (n < 0) {
        this.ignore('req_prod is more than a ring away from req_cons', XENSTORE_ERROR_RINGIDX);
        return 'closed';
      }
      this.madeRoom ||= this.req.consumerShouldNotify;
      if (n === 0) return 'none';
      const res = r.advance(n);
      if (res === 'oversize') {
        this.ignore(`header announces a ${r.header.len}-byte payload`, XENSTORE_ERROR_PROTO);
        return 'closed';
      }
      if (res === 'message') return 'message';
    }
  }

  hasInput(): boolean {
    return this.ignored === null && this.req.used() > 0;
  }

  /** writechn: as much queued output as fits, then one notification for everything. */
  flush(): void {
    if (this.ignored !== null) return;
    let wrote = false;
    while (this.out.length > 0) {
      const m = this.out[0];
      const n = this.rsp.write(m.bytes, this.outOff, m.bytes.length - this.outOff);
      if (n < 0) return this.ignore('rsp_cons is more than a ring away from rsp_prod', XENSTORE_ERROR_RINGIDX);
      wrote ||= n > 0;
      this.outOff += n;
      if (this.outOff < m.bytes.length) break; // ring full: the guest notifies when it takes some
      this.sent();
    }
    if (wrote || this.madeRoom) {
      this.madeRoom = false;
      this.notify();
    }
  }

  /** Publish why (XENSTORE_ERROR_*), and kick the guest so it looks (C xenstored only writes it). */
  protected override markIgnored(code: number): void {
    Atomics.store(this.page, xenstore_domain_interface.error >> 2, code);
    this.notify();
  }

  protected shutdown(): void {
    this.release();
  }
}
