/*
 * xenstored's Unix socket: how Dom0's tools (xenstore-read, xl, ...) reach the store.
 *
 * Xen: the socket half of tools/xenstored/core.c and posix.c (init_sockets, accept_connection,
 * readfd, writefd) at /var/run/xenstored/socket, which libxenstore's xs_open connects to (or to
 * $XENSTORED_PATH). The bytes are the same xsd_sockmsg messages a guest's ring carries, and a
 * socket client is Dom0: privileged, home /local/domain/0, no quotas. Xen restricts the socket to
 * root by its file mode; ringvisor's lives in the host's run directory and is created 0600.
 *
 * Node delivers socket data in chunks of any size; they wait in an inbox and are framed one
 * message at a time like a ring's bytes. A client whose inbox grows large is paused (the kernel's
 * socket buffer then pushes back on it), and a header announcing more than XENSTORE_PAYLOAD_MAX
 * closes the socket.
 */
import { chmodSync, mkdirSync, rmSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import { dirname } from 'node:path';
import { Connection, type ConnectionOwner, type ReceiveResult } from './connection.ts';

/** Inbox bytes above which we stop reading a socket until the daemon catches up. */
const INBOX_HIGH_WATER = 64 * 1024;

/** A byte-chunk inbox framed one message at a time (shared by the socket and local connections). */
export abstract class StreamConnection extends Connection {
  private readonly inbox: Uint8Array[] = [];
  private inOff = 0;
  protected inboxBytes = 0;

  /** Bytes arrived from the client. */
  deliver(chunk: Uint8Array): void {
    if (this.ignored !== null) return;
    this.inbox.push(chunk);
    this.inboxBytes += chunk.length;
    this.owner.schedule(this);
  }

  receive(): ReceiveResult {
    if (this.ignored !== null) return 'closed';
    const r = this.reader;
    while (this.inbox.length > 0) {
      const chunk = this.inbox[0];
      const n = Math.min(r.wanted, chunk.length - this.inOff);
      r.buffer.set(chunk.subarray(this.inOff, this.inOff + n), r.offset);
      this.inOff += n;
      this.inboxBytes -= n;
      if (this.inOff === chunk.length) {
        this.inbox.shift();
        this.inOff = 0;
      }
      const res = r.advance(n);
      if (res === 'oversize') {
        this.ignore(`header announces a ${r.header.len}-byte payload`);
        return 'closed';
      }
      if (res === 'message') return 'message';
    }
    return 'none';
  }

  hasInput(): boolean {
    return this.ignored === null && this.inbox.length > 0;
  }
}

export class SocketConnection extends StreamConnection {
  private paused = false;

  constructor(owner: ConnectionOwner, private readonly socket: Socket) {
    super(0, true, 'socket', owner);
    socket.on('data', (chunk: Buffer) => {
      this.deliver(chunk);
      if (this.inboxBytes > INBOX_HIGH_WATER && !this.paused) {
        this.paused = true;
        socket.pause();
      }
    });
    socket.on('error', () => undefined); // 'close' follows and drops us
    socket.on('close', () => this.drop());
  }

  override receive(): ReceiveResult {
    const r = super.receive();
    if (this.paused && this.inboxBytes < INBOX_HIGH_WATER / 2) {
      this.paused = false;
      this.socket.resume();
    }
    return r;
  }

  flush(): void {
    while (this.out.length > 0) {
      this.socket.write(this.out[0].bytes);
      this.sent();
    }
  }

  protected shutdown(): void {
    this.socket.destroy();
  }
}

/** Listen at `path` (a stale socket file is replaced), accepting each client as Dom0. */
export function listenUnix(owner: ConnectionOwner, path: string, onConnection: (c: SocketConnection) => void): Promise<Server> {
  mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
  rmSync(path, { force: true });
  const server = createServer((socket) => onConnection(new SocketConnection(owner, socket)));
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(path, () => {
      server.off('error', reject);
      chmodSync(path, 0o600);
      resolve(server);
    });
  });
}
