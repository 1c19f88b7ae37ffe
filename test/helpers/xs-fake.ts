/*
 * A single-threaded xenstored rig for precise tests of XenStore semantics.
 *
 * The real daemon (dom0/services/xenstored) with a fake platform: each "guest" is a plain
 * SharedArrayBuffer page standing in for its store ring, and its event channel is a function
 * call (deferred to a microtask, as an interrupt is). Guests talk to xenstored through the real
 * ring transport (shared/kernel/xenbus/xs-ring.ts) and the real client, so every request still
 * crosses the ring byte by byte; only threads and the hypervisor are left out. The tests that
 * need those (handshake, hostile guests, console, xenstore-utils) boot real domains instead.
 */
import { Xenstored, type XenstoredOptions } from '../../dom0/services/xenstored/server.ts';
import { XenbusClient, XsError } from '../../shared/kernel/xenbus/client.ts';
import { XsRingTransport } from '../../shared/kernel/xenbus/xs-ring.ts';
import type { Quotas } from '../../dom0/services/xenstored/quota.ts';
import { makeDomainHome } from '../../dom0/toolstack/xenstore-home.ts';

export interface FakeGuest {
  domid: number;
  page: Int32Array;
  bytes: Uint8Array;
  transport: XsRingTransport;
  xs: XenbusClient;
  /** xenstored's event handler for this guest, once introduced. */
  serverEvent: (() => void) | null;
  /** Notify xenstored as the guest's kernel would. */
  notify(): void;
}

export interface Rig {
  xenstored: Xenstored;
  /** Dom0's own privileged client. */
  dom0: XenbusClient;
  guests: Map<number, FakeGuest>;
  log: string[];
  /** Build a guest's page and client, and introduce it (as the toolstack would). */
  addGuest(domid: number, opts?: { introduce?: boolean; home?: boolean }): Promise<FakeGuest>;
}

export async function makeRig(quotas: Partial<Quotas> = {}): Promise<Rig> {
  const guests = new Map<number, FakeGuest>();
  const log: string[] = [];
  const opts: XenstoredOptions = {
    quotas,
    log: (l) => log.push(l),
    platform: {
      attach(domid, _gfn, _port, onEvent) {
        const g = guests.get(domid);
        if (!g) return null;
        g.serverEvent = onEvent;
        return {
          page: g.page,
          notify: () => queueMicrotask(() => g.transport.interrupt()),
          detach: () => { g.serverEvent = null; },
        };
      },
    },
  };
  const xenstored = new Xenstored(opts);
  const dom0 = new XenbusClient(xenstored.connectLocal());
  const rig: Rig = {
    xenstored, dom0, guests, log,
    async addGuest(domid, o = {}) {
      const page = new Int32Array(new SharedArrayBuffer(4096));
      const g: FakeGuest = {
        domid, page, bytes: new Uint8Array(page.buffer), serverEvent: null,
        transport: null as unknown as XsRingTransport, xs: null as unknown as XenbusClient,
        notify: () => queueMicrotask(() => g.serverEvent?.()),
      };
      g.transport = new XsRingTransport(page, () => g.notify());
      g.xs = new XenbusClient(g.transport);
      guests.set(domid, g);
      if (o.home ?? true) await dom0.transaction((t) => makeDomainHome(dom0, domid, `guest-${domid}`, t));
      if (o.introduce ?? true) await dom0.introduce(domid, 0, 1);
      return g;
    },
  };
  return rig;
}

/** Resolve after the event loop has run everything already queued (no timing involved). */
export function settle(): Promise<void> {
  return new Promise((r) => setImmediate(() => setImmediate(r)));
}

/** The errno a request was refused with, or 'resolved' if it was not refused. */
export async function refusal(p: Promise<unknown>): Promise<string> {
  try {
    await p;
    return 'resolved';
  } catch (e) {
    if (e instanceof XsError) return e.errno;
    throw e;
  }
}
