/*
 * libxenstore for ringvisor's own tools: a XenStore client over xenstored's Unix socket.
 *
 * Xen: tools/libs/store/xs.c (xs_open, get_socket, xs_talkv's writes, read_message), which
 * Debian's xenstore-read & co. are built on. This is the same client as every kernel's
 * (shared/kernel/xenbus/client.ts) on a socket transport: the messages are the rings'
 * xsd_sockmsg bytes, the connection is Dom0's. Harnesses, benchmarks and the command line's
 * xenstore-* verbs use it; it is never on a guest's path.
 */
import { connect, type Socket } from 'node:net';
import { XenbusClient, XsError, type XsTransport } from '../../shared/kernel/xenbus/client.ts';
import { XsMessageReader, splitStrings } from '../../shared/kernel/xenbus/xs-message.ts';
import { XBT_NULL, XS_DIRECTORY_PART } from '../../shared/public/io/xs_wire.ts';

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
/** xs_daemon_socket: where xenstored listens for the tools, in a host's run directory (Xen: /var/run/xenstored/socket). */
export function xenstoredSocketPath(runDir: string): string {
  return `${runDir}/xenstored/socket`;
}

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

const encoder = new TextEncoder();

/**
 * xs_directory: XS_DIRECTORY, and for a listing too long for one reply (E2BIG) the pieces of
 * XS_DIRECTORY_PART (xs_directory_part), starting over if the node's generation changes between
 * pieces, as libxenstore does.
 */
export async function xsDirectory(xs: XenbusClient, path: string, t = XBT_NULL): Promise<string[]> {
  try {
    return await xs.directory(path, t);
  } catch (e) {
    if (!(e instanceof XsError) || e.errno !== 'E2BIG') throw e;
  }
  let names: string[] = [];
  let gen: string | null = null;
  for (let offset = 0; ;) {
    const reply = await xs.request(XS_DIRECTORY_PART, [path, String(offset)], t, path);
    const parts = splitStrings(reply);
    if (parts.length === 0) throw new XsError('EIO', 'DIRECTORY_PART', `${path} (empty reply)`);
    const [thisGen, ...piece] = parts as [string, ...string[]];
    if (gen !== null && thisGen !== gen) {
      names = [];
      gen = null;
      offset = 0;
      continue;
    }
    gen = thisGen;
    const last = piece.length > 0 && piece[piece.length - 1] === '';
    if (last) piece.pop();
    names.push(...piece);
    if (last) return names;
    if (piece.length === 0) throw new XsError('EIO', 'DIRECTORY_PART', `${path} (no progress at ${offset})`);
    for (const n of piece) offset += encoder.encode(n).length + 1;
  }
}
