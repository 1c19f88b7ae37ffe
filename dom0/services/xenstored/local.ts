/*
 * Dom0's own kernel talking to the xenstored that runs in its thread.
 *
 * Xen: Linux in Dom0 reaches xenstored through /dev/xen/xenbus_backend or, when xenstored runs
 * in Dom0 user space, the same Unix socket the tools use; either way Dom0's backends are a
 * privileged client. ringvisor's xenstored lives inside Dom0's kernel thread, so its own xenbus
 * client (backends, the toolstack) gets a direct connection: the same xsd_sockmsg bytes as the
 * socket and the rings, handed over in memory, with Dom0's privileges and home /local/domain/0.
 * DomUs never use this: they always go through their ring page.
 */
import type { XsTransport } from '../../../shared/kernel/xenbus/client.ts';
import { XsMessageReader } from '../../../shared/kernel/xenbus/xs-message.ts';
import type { ConnectionOwner } from './connection.ts';
import { StreamConnection } from './socket.ts';

export class LocalConnection extends StreamConnection {
  constructor(owner: ConnectionOwner, private readonly client: LocalTransport) {
    super(0, true, 'local', owner);
  }

  flush(): void {
    while (this.out.length > 0) {
      const bytes = this.out[0].bytes;
      this.sent();
      this.client.receive(bytes);
    }
  }

  protected shutdown(): void {
    this.client.serverClosed();
  }
}

/** The client's end: what a XenbusClient in Dom0's kernel is built on. */
export class LocalTransport implements XsTransport {
  onMessage: XsTransport['onMessage'] = null;
  onClose: XsTransport['onClose'] = null;
  conn: LocalConnection | null = null;
  private readonly reader = new XsMessageReader();

  send(msg: Uint8Array): void {
    this.conn?.deliver(msg);
  }

  /** Whole messages from xenstored. */
  receive(bytes: Uint8Array): void {
    const r = this.reader;
    r.feed(bytes, () => this.onMessage?.(r.header.type, r.header.req_id, r.header.tx_id, r.payload()));
  }

  serverClosed(): void {
    this.conn = null;
    this.onClose?.('xenstored closed the connection');
  }

  close(): void {
    this.conn?.drop();
  }
}
