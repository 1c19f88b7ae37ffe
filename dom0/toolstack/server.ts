/*
 * The toolstack daemon's control socket: where `ringvisor create`, `list`, `console` & co. arrive,
 * in Dom0's kernel thread.
 *
 * Xen: nothing quite like it: `xl` runs in Dom0 and calls libxl in-process, and `xl console`
 * opens the pty xenconsoled made. ringvisor's command line is a process outside the host, so this
 * serves it the way xenstored serves its Unix socket (dom0/services/xenstored/socket.ts): a socket in the
 * host's run directory, created 0600, every client trusted as Dom0's root is. Framing and the
 * verbs are ./protocol.ts; what each verb does is ./libxl.ts.
 *
 * A `console` request turns its connection into a console session: output xenconsoled logs is
 * forwarded as it arrives (after the domain's output so far, as a pty would still hold it), input
 * goes to xenconsoled, and the session ends when the client closes the socket (xl console's
 * Ctrl-]) or the domain goes.
 */
import { memDaemon, memMax, memSet } from './mem.ts';
import { MemPolicy, memPolicyFor } from './mem-policy.ts';
import { listenForMigration, migrateTo } from './migration/migrate-verbs.ts';
import { DEFAULT_PRECOPY } from './migration/migrate.ts';
import { chmodSync, mkdirSync, rmSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import { dirname } from 'node:path';
import { blockList } from './devices.ts';
import { pciAssignableList, pciList } from './pci.ts';
import { blockBackendKill, blockBackendStart, vdevNumber } from './backend-kill.ts';
import { isNetworkVerb, runNetworkVerb } from './network.ts';
import { ConfigError } from './config/config-error.ts';
import type { Dom0 } from '../dom0.ts';
import { XlError, type Libxl } from './libxl.ts';
import { schedVerb } from './sched.ts';
import { FrameReader, encodeFrame, type XlMessage, type XlRequest } from './protocol.ts';
import { topSample } from './top.ts';
import { traceToFile } from './trace.ts';

/** Console output a late attacher gets first: the last 16 KiB this domain printed. */
const CONSOLE_HISTORY = 16 * 1024;

export async function serveXl(dom0: Dom0, libxl: Libxl, path: string, runDir: string): Promise<Server> {
  mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
  rmSync(path, { force: true });
  const server = createServer((socket) => new XlConnection(dom0, libxl, socket, runDir));
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(path, () => {
      server.off('error', reject);
      chmodSync(path, 0o600);
      resolve();
    });
  });
  return server;
}

class XlConnection {
  private detachConsole: (() => void) | null = null;
  private consoleDomid = -1;

  constructor(private readonly dom0: Dom0, private readonly libxl: Libxl, private readonly socket: Socket, private readonly runDir: string) {
    const reader = new FrameReader((m) => this.receive(m));
    socket.on('data', (chunk: Buffer) => {
      if (!reader.feed(chunk)) socket.destroy(); // a client that breaks the framing is dropped
    });
    socket.on('error', () => undefined); // 'close' follows
    socket.on('close', () => this.detachConsole?.());
  }

  private send(m: XlMessage): void {
    if (!this.socket.destroyed) this.socket.write(encodeFrame(m));
  }

  private receive(raw: unknown): void {
    const m = raw as Partial<XlRequest> & { input?: Uint8Array };
    if (m.input instanceof Uint8Array) {
      if (this.consoleDomid >= 0) {
        try { this.dom0.consoled.write(this.consoleDomid, m.input); } catch { /* the domain went; 'closed' is on its way */ }
      }
      return;
    }
    if (typeof m.id !== 'number' || typeof m.verb !== 'string') {
      this.socket.destroy();
      return;
    }
    const id = m.id;
    this.run(m as XlRequest).then(
      (value) => { if (value !== CONSOLE_SESSION) this.send({ id, ok: true, value: value ?? null }); },
      (e: unknown) => {
        const kind = e instanceof ConfigError ? 'config' : e instanceof XlError ? e.kind : 'failed';
        this.send({ id, ok: false, kind, error: e instanceof Error ? e.message : String(e) });
      },
    );
  }

  private async run(r: XlRequest): Promise<unknown> {
    const x = this.libxl;
    if (isNetworkVerb(r)) return runNetworkVerb(this.dom0, (d) => x.resolve(d), r);
    switch (r.verb) {
      case 'create': return x.create(r.path, { paused: r.paused });
      case 'list': return x.list();
      case 'info': return { ...await x.info(this.runDir), mem_policy: this.policy().status() };
      case 'destroy': return x.destroy(await x.resolve(r.domain));
      case 'shutdown': return x.shutdown(await x.resolve(r.domain), r.kind, r.force ?? false);
      case 'wait': return x.waitStopped(await x.resolve(r.domain));
      case 'pause': return x.pause(await x.resolve(r.domain));
      case 'unpause': return x.unpause(await x.resolve(r.domain));
      case 'block-list': return blockList(this.dom0.xs, await x.resolve(r.domain));
      case 'pci-list': return pciList(this.dom0.k.hypercall, await x.resolve(r.domain));
      case 'pci-assignable-list': return pciAssignableList(this.dom0.k.hypercall);
      case 'block-backend-start': return blockBackendStart(this.dom0, await x.resolve(r.domain), vdevNumber(r.vdev));
      case 'block-backend-kill': return blockBackendKill(this.dom0, await x.resolve(r.domain), vdevNumber(r.vdev), { restart: r.restart, afterRequests: r.afterRequests });
      case 'destroy-all': return x.destroyAll();
      case 'mem-set': return memSet(this.dom0.k.hypercall, this.dom0.xs, await x.resolve(r.domain), r.size);
      case 'mem-max': return memMax(this.dom0.k.hypercall, this.dom0.xs, await x.resolve(r.domain), r.size);
      case 'mem-sharing': return memDaemon(await this.dom0.k.hypercall.domctl_mem_sharing({ run: r.run, pages_to_scan: r.pages_to_scan, sleep_millisecs: r.sleep_millisecs }));
      case 'mem-paging': return memDaemon(await this.dom0.k.hypercall.domctl_mem_paging({ run: r.run, low_water_pages: r.low_water_pages }));
      case 'mem-policy': {
        const { verb: _v, id: _i, ...settings } = r;
        return await this.policy().set(Object.fromEntries(Object.entries(settings).filter(([, v]) => v !== undefined)))
          .catch((e: unknown) => { throw new XlError('failed', (e as Error).message); });
      }
      case 'save': return x.save(await x.resolve(r.domain), r.file);
      case 'restore': return x.restore(r.file, { paused: r.paused });
      case 'migrate-receive': return listenForMigration(x.saveHost(), r);
      case 'migrate': return migrateTo(x.saveHost(), await x.resolve(r.domain), r.host, r.port, {
        maxIterations: r.maxIterations ?? DEFAULT_PRECOPY.maxIterations, dirtyThreshold: r.dirtyThreshold ?? DEFAULT_PRECOPY.dirtyThreshold, live: r.live ?? true,
        carryHot: r.carryHot ?? true, giveWay: r.giveWay ?? true,
      }).catch((e: unknown) => { throw new XlError('failed', (e as Error).message); });
      case 'console': return this.attach(r.id, await x.resolve(r.domain));
      case 'top': return topSample(this.dom0.k.hypercall, this.dom0.xs);
      case 'trace': return traceToFile(this.dom0.k.hypercall, r.mask, r.seconds, r.path);
      case 'console-history': return this.dom0.consoled.history(await x.resolve(r.domain), Math.min(Math.max(0, r.max | 0), CONSOLE_HISTORY));
      case 'sched': return schedVerb(x, this.dom0, r.op);
      default: throw new XlError('failed', `unknown verb ${(r as { verb: string }).verb}`);
    }
  }

  /* The host's memory policy (one per Dom0, shared by every connection). */
  private policy(): MemPolicy {
    return memPolicyFor(this.dom0, () => new MemPolicy(this.dom0.k.hypercall, this.dom0.xs, (l) => this.libxl.logLine(l)));
  }

  /* xl console: history, then live output; the reply comes first so the client knows it is attached. */
  private attach(id: number, domid: number): typeof CONSOLE_SESSION {
    const consoled = this.dom0.consoled;
    if (this.detachConsole) throw new XlError('failed', 'this connection is attached to a console already');
    const history = consoled.history(domid, CONSOLE_HISTORY);
    this.detachConsole = consoled.attach(domid, {
      output: (data) => this.send({ id, event: 'output', data }),
      closed: (why) => {
        this.detachConsole = null;
        this.consoleDomid = -1;
        this.send({ id, event: 'closed', why });
      },
    });
    this.consoleDomid = domid;
    this.send({ id, ok: true, value: { domid } });
    if (history.length > 0) this.send({ id, event: 'output', data: history });
    return CONSOLE_SESSION;
  }
}

const CONSOLE_SESSION = Symbol('console session');
