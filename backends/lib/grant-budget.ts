/*
 * Dom0's grant mappings, accounted per frontend domain, so that no guest (nor two doing valid
 * I/O) can use up what the whole host shares.
 *
 * Xen/Linux: the resources behind a backend's mappings are Dom0's maptrack table (Xen sizes it
 * per mapping domain: max_maptrack_frames) and the holes in Dom0's physmap they go into; here
 * both are MAPTRACK_ENTRIES (8192) and HOLES_PER_VCPU (8192) for all of Dom0. Linux bounds what
 * a frontend can make blkback hold: xen_blkif_max_pgrants (module parameter
 * max_persistent_grants, 1056 per ring), beyond which grants are mapped for one request only,
 * and the transient mappings of a request are bounded by its segment count. ringvisor adds the
 * bound Linux gets from having far more maptrack than any one guest can fill: per frontend.
 *
 *   persistentPerFrontend   persistent grants one frontend may have mapped, all its devices and
 *                           rings together (the rest of its I/O is mapped per request)
 *   persistentTotal         persistent grants of all frontends together: the rest of Dom0's
 *                           maptrack and holes stays free for rings, per-request mappings,
 *                           xenstored, xenconsoled and the device models
 *   perFrontend             every mapping of one frontend (rings, persistent, per-request)
 *
 * A mapping refused here, like one the hypervisor refuses, fails only the request (or the ring
 * set-up) that wanted it. Since Dom0 serves one request piece at a time, per-request mappings
 * in flight never exceed one piece's, so with persistentTotal below the host's limits a
 * frontend's valid request always finds room.
 *
 * Each ring of a frontend keeps at most its share of persistentPerFrontend (blkback's
 * persistentPerRing) and, when it wants more, purges its least recently used ones as Linux's
 * purge_persistent_gnt does (backends/blkback/grants.ts). A frontend whose pages each go to
 * one ring (blkfront does, as Linux's per-ring pools do) keeps every page it does I/O from mapped
 * with far fewer than 1536: 32 buffers of 64 KiB on 4 queues hold 544 (512 data pages and the
 * indirect pages in use), and then its requests cost no grant operation.
 *
 * Not done: shrinking one frontend's persistent set when others arrive; the first frontends keep
 * theirs up to the limits above, later ones get per-request mappings once persistentTotal is
 * reached.
 */
export const MAPPING_LIMITS = { persistentPerFrontend: 1536, persistentTotal: 4096, perFrontend: 2560 };

interface Account {
  held: number;
  persistent: number;
}

export class GrantBudget {
  private readonly accounts = new Map<number, Account>();
  private persistentAll = 0;
  /** Mappings refused by a limit here, for statistics. */
  refused = 0;

  constructor(readonly limits = MAPPING_LIMITS) {}

  private account(fe: number): Account {
    let a = this.accounts.get(fe);
    if (a === undefined) {
      a = { held: 0, persistent: 0 };
      this.accounts.set(fe, a);
    }
    return a;
  }

  /** May `fe` have one more persistent mapping? (Taken if so.) */
  takePersistent(fe: number): boolean {
    const a = this.account(fe);
    if (a.persistent >= this.limits.persistentPerFrontend || this.persistentAll >= this.limits.persistentTotal
      || a.held >= this.limits.perFrontend) return false;
    a.persistent++;
    a.held++;
    this.persistentAll++;
    return true;
  }

  /** May `fe` have one more mapping of any other kind? (Taken if so.) */
  take(fe: number): boolean {
    const a = this.account(fe);
    if (a.held >= this.limits.perFrontend) {
      this.refused++;
      return false;
    }
    a.held++;
    return true;
  }

  give(fe: number, persistent: boolean): void {
    const a = this.account(fe);
    a.held--;
    if (persistent) {
      a.persistent--;
      this.persistentAll--;
    }
    if (a.held === 0) this.accounts.delete(fe);
  }

  held(fe: number): number {
    return this.accounts.get(fe)?.held ?? 0;
  }

  persistent(fe: number): number {
    return this.accounts.get(fe)?.persistent ?? 0;
  }
}

const perKernel = new WeakMap<object, GrantBudget>();

/** The one budget of this Dom0 kernel, shared by its backends. */
export function grantBudget(k: object): GrantBudget {
  let b = perKernel.get(k);
  if (b === undefined) {
    b = new GrantBudget();
    perKernel.set(k, b);
  }
  return b;
}
