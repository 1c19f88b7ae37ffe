/*
 * A host's hypervisor state with domains built but no threads: for testing hypercall handlers
 * directly, in one thread, where every step can be checked. (The thread tests use Host.)
 */
import { Caller } from '../../hypervisor/caller.ts';
import { build_domain, domain_create, domain_kill, type BuiltDomain } from '../../hypervisor/domain-build.ts';
import { DomainMemory } from '../../hypervisor/guest-memory.ts';
import { initAllocator } from '../../hypervisor/page-alloc.ts';
import { D, DOMSTATE_RUNNING, GRANT_FRAMES, HypervisorState, allocateBuffers } from '../../hypervisor/state.ts';
import { GrantTable } from '../../shared/kernel/grant-table.ts';
import { PageAllocator } from '../../shared/kernel/pages.ts';
import { readStartInfo } from '../../shared/kernel/start-info.ts';
import type { Hypercalls } from '../../shared/public/hypercall.ts';

export interface TestDomain {
  domid: number;
  built: BuiltDomain;
  c: Caller;
  mem: DomainMemory;
  gnttab: GrantTable;
  pages: PageAllocator;
}

export class World {
  readonly hv: HypervisorState;
  constructor(memoryMiB = 16) {
    this.hv = new HypervisorState(allocateBuffers(memoryMiB));
    initAllocator(this.hv);
  }

  domain(opts: { privileged?: boolean; memoryKiB?: number } = {}): TestDomain {
    const priv = opts.privileged ?? false;
    const domid = domain_create(this.hv, priv, priv, 1);
    if (domid < 0) throw new Error('no slot');
    const built = build_domain(this.hv, domid, opts.memoryKiB ?? 1024, '');
    if (typeof built === 'number') throw new Error(`build failed ${built}`);
    Atomics.store(this.hv.domains, domid * D.WORDS + D.STATE, DOMSTATE_RUNNING);
    const mem = new DomainMemory(this.hv, domid);
    const fake = { gnttab_query_size: () => ({ nr_frames: GRANT_FRAMES, max_nr_frames: GRANT_FRAMES }) } as Hypercalls;
    const si = readStartInfo(mem, built.start_info_gfn);
    const gnttab = new GrantTable(fake, mem, si.shared_info_gfn + 1, { first: 8, count: 1000 });
    return { domid, built, c: new Caller(this.hv, domid, 0), mem, gnttab, pages: new PageAllocator(si) };
  }

  kill(d: TestDomain): void {
    domain_kill(this.hv, d.domid);
  }
}
