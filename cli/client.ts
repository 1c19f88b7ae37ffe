/*
 * The command line's end of the toolstack's control socket (dom0/toolstack/protocol.ts): connect, send a
 * request, wait for its reply; or hold a console session open.
 *
 * Xen: where xl would call libxl directly (it links it), ringvisor's command line sends the same
 * request to the toolstack daemon in the host's Dom0. Only Unix sockets: the host is on this
 * machine, in the run directory.
 */
import { connect, type Socket } from 'node:net';
import { dirname } from 'node:path';
import { deadHost } from '../dom0/toolstack/host-record.ts';
import {
  FrameReader, encodeFrame, xlSocketPath, type XlErrorKind, type XlMessage, type XlVerb,
} from '../dom0/toolstack/protocol.ts';

/** A failure the daemon reported (kind 'config': file:line messages), or no host to talk to. */
export class CliError extends Error {
  constructor(readonly kind: XlErrorKind | 'no-host', message: string) {
    super(message);
    this.name = 'CliError';
  }
}

/** No host answers on `socket` (<runDir>/xl/socket or <runDir>/xenstored/socket): say so, and whether the last one died. */
export function noHostMessage(socket: string): string {
  const runDir = dirname(dirname(socket));
  const dead = deadHost(runDir);
  if (dead) {
    return `no ringvisor host is running at ${socket}: the last host there (pid ${dead.pid}, up since ${dead.started}) ` +
      'died without stopping, and its VMs with it; start one with `ringvisor host`, which cleans up after it';
  }
  return `no ringvisor host is running at ${socket}; start one with \`ringvisor host\``;
}

export class XlClient {
  private nextId = 1;
  private readonly waiting = new Map<number, (m: XlMessage) => void>();
  private closedWhy: string | null = null;
  private readonly onSocketClose: (() => void)[] = [];

  private constructor(private readonly socket: Socket) {
    const reader = new FrameReader((m) => {
      const msg = m as XlMessage;
      this.waiting.get(msg.id)?.(msg);
    });
    socket.on('data', (chunk: Buffer) => { if (!reader.feed(chunk)) socket.destroy(); });
    socket.on('close', () => {
      this.closedWhy = 'the host closed the connection';
      for (const w of this.waiting.values()) w({ id: -1, ok: false, kind: 'failed', error: this.closedWhy });
      this.waiting.clear();
      for (const f of this.onSocketClose) f();
    });
    socket.on('error', () => undefined); // 'close' follows
  }

  /** Connect to the daemon of the host whose run directory is `runDir`. */
  static open(runDir: string): Promise<XlClient> {
    const path = xlSocketPath(runDir);
    return new Promise((resolve, reject) => {
      const s = connect(path);
      s.once('error', (e: NodeJS.ErrnoException) => {
        reject(e.code === 'ENOENT' || e.code === 'ECONNREFUSED' || e.code === 'ENOTSOCK'
          ? new CliError('no-host', noHostMessage(path)) : new CliError('failed', `${path}: ${e.message}`));
      });
      s.once('connect', () => resolve(new XlClient(s)));
    });
  }

  /** One request, one reply. */
  async call<T = unknown>(req: XlVerb): Promise<T> {
    const m = await new Promise<XlMessage>((resolve) => {
      const id = this.nextId++;
      if (this.closedWhy !== null) return resolve({ id, ok: false, kind: 'failed', error: this.closedWhy });
      this.waiting.set(id, (msg) => {
        if ('event' in msg) return; // only console sessions have events
        this.waiting.delete(id);
        resolve(msg);
      });
      this.socket.write(encodeFrame({ ...req, id }));
    });
    if ('event' in m) throw new Error('unreachable');
    if (!m.ok) throw new CliError(m.kind, m.error);
    return m.value as T;
  }

  /**
   * xl console: attach to `domain`; `onOutput` gets its bytes until the domain goes (`onClosed`)
   * or detach() is called. Resolves once attached.
   */
  async console(domain: string, onOutput: (b: Uint8Array) => void, onClosed: (why: string, hostGone: boolean) => void): Promise<{ domid: number; send(b: Uint8Array): void }> {
    const id = this.nextId++;
    const attached = new Promise<XlMessage>((resolve) => {
      this.waiting.set(id, (msg) => {
        if ('event' in msg) {
          if (msg.event === 'output') onOutput(msg.data);
          else onClosed(msg.why, false);
          return;
        }
        resolve(msg);
      });
    });
    this.onSocketClose.push(() => onClosed('the host closed the connection', true));
    this.socket.write(encodeFrame({ verb: 'console', domain, id }));
    const m = await attached;
    if ('event' in m) throw new Error('unreachable');
    if (!m.ok) throw new CliError(m.kind, m.error);
    return {
      domid: (m.value as { domid: number }).domid,
      send: (b) => { if (!this.socket.destroyed) this.socket.write(encodeFrame({ input: b })); },
    };
  }

  close(): void {
    this.socket.end();
  }
}
