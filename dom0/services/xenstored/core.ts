/*
 * What xenstored's request handlers (./dispatch.ts, ./control.ts) and its domain bookkeeping
 * (./domain.ts) need of the daemon: its database, watches, quotas, connections and the few actions that reach
 * across connections.
 *
 * Xen: the globals of tools/xenstored/core.c that every handler uses (the node database, the
 * connection list, the quota settings). Declared apart from ./server.ts, which implements it
 * (class Xenstored), so that the handlers depend on this shape and ./server.ts can import them
 * without an import circle.
 */
import type { RingTracer } from '../../../shared/public/io/ring.ts';
import type { XsPermission } from '../../../shared/public/io/xs_wire.ts';
import type { Connection, ConnectionOwner } from './connection.ts';
import type { Quotas } from './quota.ts';
import type { RingConnection } from './ring-connection.ts';
import type { Store } from './store.ts';
import type { XenstoredTrace } from './trace.ts';
import type { SpecialNodes, WatchIndex } from './watch.ts';

/** A guest's store page, mapped, and its store port, bound. */
export interface DomainLink {
  page: Int32Array;
  notify(): void;
  /** Unbind the port and unmap the page. */
  detach(): void;
}

/** How xenstored reaches guests' pages and ports (Dom0's kernel, or a test's fake). */
export interface XenstoredPlatform {
  /** Map `domid`'s store page and bind to its store port `port`; null if either fails. */
  attach(domid: number, gfn: number, port: number, onEvent: () => void): DomainLink | null;
  /** Dom0's HYPERVISOR_xentrace, for a trace point per request taken (TRC_GUEST_XENSTORED_REQUEST); absent in tests. */
  readonly tracer?: RingTracer;
}

/** The daemon, as its handlers see it (it owns every connection: ./connection.ts ConnectionOwner). */
export interface XenstoredCore extends ConnectionOwner {
  readonly store: Store;
  readonly special: SpecialNodes;
  readonly quota: Quotas;
  readonly platform: XenstoredPlatform;
  readonly connections: Set<Connection>;
  /** Introduced domains, by domid. */
  readonly domains: Map<number, RingConnection>;
  /** XS_INTRODUCE / XS_RELEASE (./domain.ts). */
  introduce(domid: number, gfn: number, port: number): void;
  release(domid: number): void;
  /** fire_watches for a change to `name` (./watch.ts). */
  fire(name: string, exact: boolean, perms: readonly XsPermission[] | undefined): void;
  /** Watches, indexed by path (./watch.ts). */
  readonly watchIndex: WatchIndex;
  /** The trace file, off until XS_CONTROL names one (./trace.ts). */
  readonly trace: XenstoredTrace;
  /** check_store (XS_CONTROL "check"): find and repair inconsistencies, logging each. */
  checkStore(): void;
}
