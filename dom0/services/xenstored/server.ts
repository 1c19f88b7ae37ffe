/*
 * xenstored: the XenStore daemon in Dom0, serving every domain's ring, the tools' Unix socket,
 * and Dom0's own kernel.
 *
 * Xen: tools/xenstored/core.c's main loop (poll over every connection, handle_input,
 * handle_output) and its global state. The pieces live beside this file:
 *
 *   node.ts        nodes, permissions, path rules        store.ts        the database
 *   ops.ts         read / write / mkdir / rm / perms      transaction.ts  transactions
 *   watch.ts       watches and special watch paths       quota.ts        quotas, refusals
 *   dispatch.ts    one request → one reply               domain.ts       introduce / release
 *   control.ts     XS_CONTROL (xenstore-control)         trace.ts        the trace file
 *   connection.ts  framing, output queue, misbehaviour   ring-connection.ts, socket.ts, local.ts
 *                                                                         the three transports
 *
 * Scheduling. C xenstored is one thread polling all connections; this one runs in Dom0's kernel
 * thread and is woken by event-channel handlers, socket data and local sends, each of which marks
 * its connection ready. A pump then serves ready connections round-robin, at most BATCH requests
 * each per turn, and yields to the event loop between turns, so one busy or hostile client can
 * delay the others by at most one turn and never starve Dom0's other work.
 */
import type { Server } from 'node:net';
import { XS_PERM_NONE, type XsPermission } from '../../../shared/public/io/xs_wire.ts';
import { TRC_GUEST_XENSTORED_REQUEST } from '../../../shared/public/trace.ts';
import type { Connection, ConnectionOwner } from './connection.ts';
import type { XenstoredCore, XenstoredPlatform } from './core.ts';
import { processMessage } from './dispatch.ts';
import { introduceDomain, releaseDomain } from './domain.ts';
import { LocalConnection, LocalTransport } from './local.ts';
import { DEFAULT_QUOTAS, type Quotas } from './quota.ts';
import type { RingConnection } from './ring-connection.ts';
import { listenUnix } from './socket.ts';
import { Store } from './store.ts';
import { XenstoredTrace } from './trace.ts';
import { SpecialNodes, WatchIndex } from './watch.ts';

export type { DomainLink, XenstoredPlatform } from './core.ts';

export interface XenstoredOptions {
  platform: XenstoredPlatform;
  quotas?: Partial<Quotas>;
  log?: (line: string) => void;
}

/** Requests served per connection per turn (see "Scheduling"). */
const BATCH = 8;

export class Xenstored implements ConnectionOwner, XenstoredCore {
  readonly store = new Store();
  readonly special = new SpecialNodes();
  readonly watchIndex = new WatchIndex();
  readonly quota: Quotas;
  readonly platform: XenstoredPlatform;
  readonly connections = new Set<Connection>();
  /** Introduced domains, by domid. */
  readonly domains = new Map<number, RingConnection>();
  private readonly ready = new Set<Connection>();
  private scheduled = false;
  private pumping = false;
  private server: Server | null = null;
  readonly log: (line: string) => void;
  /** The trace file, off until XS_CONTROL names one (./trace.ts). */
  readonly trace: XenstoredTrace;
  readonly stats = { requests: 0, turns: 0 };

  constructor(opts: XenstoredOptions) {
    this.platform = opts.platform;
    this.quota = { ...DEFAULT_QUOTAS, ...opts.quotas };
    const log = opts.log ?? ((line) => console.error(line));
    this.trace = new XenstoredTrace(log);
    // C's log() goes to syslog and, when tracing, the trace file too.
    this.log = (line) => {
      log(line);
      this.trace.line(line);
    };
    // setup_structure: what exists before anyone connects.
    const dom0Only: XsPermission[] = [{ id: 0, perms: XS_PERM_NONE }];
    for (const p of ['/tool', '/tool/xenstored', '/local', '/local/domain']) {
      const parent = p.slice(0, p.lastIndexOf('/')) || '/';
      const pn = this.store.read(parent)!;
      this.store.write({ ...pn, children: [...pn.children, p.slice(p.lastIndexOf('/') + 1)] });
      this.store.write({ name: p, data: new Uint8Array(0), children: [], perms: dom0Only });
    }
  }

  /** A new client in Dom0's own kernel (see ./local.ts). */
  connectLocal(): LocalTransport {
    const t = new LocalTransport();
    const conn = new LocalConnection(this, t);
    t.conn = conn;
    this.connections.add(conn);
    return t;
  }

  /** Start serving the Unix socket at `path` (Xen's /var/run/xenstored/socket). */
  async listen(path: string): Promise<void> {
    this.server = await listenUnix(this, path, (c) => this.connections.add(c));
  }

  /** XS_INTRODUCE, for the toolstack in Dom0's own kernel. */
  introduce(domid: number, gfn: number, port: number): void {
    introduceDomain(this, domid, gfn, port);
  }

  /** XS_RELEASE. */
  release(domid: number): void {
    releaseDomain(this, domid);
  }

  /** fire_watches for a change to `name` (see ./watch.ts). */
  fire(name: string, exact: boolean, perms: readonly XsPermission[] | undefined): void {
    this.watchIndex.fire(this.store, this.special, name, exact, perms);
    // Outside a turn (the toolstack calling introduce() directly), make sure a turn flushes them.
    if (!this.pumping) this.kick();
  }

  private kick(): void {
    if (this.scheduled) return;
    this.scheduled = true;
    setImmediate(() => this.pump());
  }

  schedule(conn: Connection): void {
    this.ready.add(conn);
    this.kick();
  }

  dropped(conn: Connection): void {
    this.connections.delete(conn);
    this.ready.delete(conn);
    if (conn.kind === 'domain' && this.domains.get(conn.id) === conn) this.domains.delete(conn.id);
  }

  /** One turn: every ready connection gets up to BATCH requests served, then its output moved. */
  private pump(): void {
    this.scheduled = false;
    this.pumping = true;
    this.stats.turns++;
    const turn = [...this.ready];
    this.ready.clear();
    try {
      for (const conn of turn) if (this.connections.has(conn)) this.serve(conn);
      // This turn's writes may have queued watch events on connections that were not ready.
      for (const c of this.connections) if (c.queuedOutput > 0) c.flush();
    } finally {
      this.pumping = false;
      if (this.ready.size > 0) this.kick();
    }
  }

  private serve(conn: Connection): void {
    for (let n = 0; n < BATCH; n++) {
      // Replies piling up: try to hand them over before deciding the guest must wait.
      if (!conn.canRead()) conn.flush();
      if (!conn.canRead() || conn.receive() !== 'message') break;
      this.stats.requests++;
      this.platform.tracer?.xentrace(TRC_GUEST_XENSTORED_REQUEST, conn.kind === 'domain' ? conn.id : 0x7fff, conn.reader.header.type, conn.reader.header.req_id, 0);
      processMessage(this, conn);
      conn.reader.reset();
    }
    conn.flush();
    // More waiting: come back next turn, after everyone else has had theirs.
    if (conn.canRead() && conn.hasInput()) this.ready.add(conn);
  }

  /** check_store (XS_CONTROL "check"): find and repair inconsistencies, logging each. */
  checkStore(): void {
    this.log('xenstored: Checking store ...');
    for (const problem of this.store.check()) this.log(`xenstored: check_store: ${problem}`);
    this.log('xenstored: Checking store complete.');
  }

  /** Stop: close the socket and drop every connection. */
  async close(): Promise<void> {
    const server = this.server;
    this.server = null;
    for (const c of [...this.connections]) c.drop();
    if (server) await new Promise<void>((resolve) => server.close(() => resolve()));
  }
}
