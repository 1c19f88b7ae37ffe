/*
 * libxenstore for ringvisor's own tools: a XenStore client over xenstored's Unix socket.
 *
 * Xen: tools/libs/store/xs.c (xs_open, get_socket, xs_talkv's writes, read_message), which
 * Debian's xenstore-read & co. are built on. This is the same client as every kernel's
 * (shared/kernel/xenbus/client.ts) on a socket transport: the messages are the rings'
 * xsd_sockmsg bytes, the connection is Dom0's. Harnesses, benchmarks and a future `xl` on the
 * host use it; it is never on a guest's path.
 */
import { connect, type Socket } from 'node:net';
import { XenbusClient, type XsTransport } from '../../shared/kernel/xenbus/client.ts';
import { XsMessageReader } from '../../shared/kernel/xenbus/xs-message.ts';

class SocketTransport implements XsTransport {
  onMessage: XsTransport['onMessage'] = null;
  onClose: XsTransport['onClose'] = null;
  private readonly reader = new XsMessageReader();

  constructor(private readonly socket: Socket) {
    const r = this.reader;
    socket.on('data', (chunk: Buffer) => {
      const res = r.feed(chunk, () => this.onMessage?.(r.header.type, r.header.req_id, r.header.tx_id, r.payload()));
      if (res === 'oversize') socket.destroy(new Error('xenstored sent an oversized message'));
    });
    socket.on('close', () => this.onClose?.('socket closed'));
    socket.on('error', () => undefined); // 'close' follows
  }

  send(msg: Uint8Array): void {
    this.socket.write(msg);
  }

  close(): void {
    this.socket.end();
  }
}

/** xs_open: connect to xenstored at `path` (its XENSTORED_PATH). */
export function xsOpen(path: string): Promise<XenbusClient> {
  return new Promise((resolve, reject) => {
    const socket = connect(path);
    socket.once('error', reject);
    socket.once('connect', () => {
      socket.off('error', reject);
      resolve(new XenbusClient(new SocketTransport(socket)));
    });
  });
}
