/*
 * The guest kernel's page allocator: which of its own gfns are free.
 *
 * Xen: nothing; this is the guest's business (Linux's buddy allocator, mini-os's
 * mm.c). ringvisor's kernels need pages for rings, I/O buffers and grant mappings, so they keep
 * a stack of free RAM gfns (every RAM page but the builder's special ones) and a bump pointer
 * for "holes" above RAM, where foreign pages (grant mappings, shared_info, grant frames) are put.
 *
 * Each vCPU thread runs its own copy of the kernel with its own heap, so RAM and holes are split
 * between vCPUs: vCPU v of n takes every page whose index is v modulo n. Nothing is shared but
 * one page, the vCPUs' common SMP state (./smp.ts), which no allocator hands out.
 */
import type { StartInfo } from './start-info.ts';
import { smpAreaGfn } from './smp.ts';

/** Holes begin this far above RAM; the first gfns above RAM hold shared_info and the grant frames. */
export const HOLE_BASE_OFFSET = 64;
export const HOLES_PER_VCPU = 1 << 13;

export class PageAllocator {
  private readonly free: number[];
  private nextHole: number;
  private readonly holeEnd: number;
  private readonly freedHoles: number[] = [];
  readonly total: number;

  constructor(si: StartInfo, vcpu = 0, nr_vcpus = 1) {
    // The builder's pages, and the page the kernel's vCPUs share (./smp.ts), are nobody's to hand out.
    // This runs first thing at every boot, a resumed kernel's on the critical path of a migration's
    // downtime, in code not yet compiled: so one array of the right size written by index, and
    // four comparisons, not a push and a Set lookup per page (16,384 pages for 64 MiB took
    // 9-14 ms on a loaded machine that way).
    const a = si.start_info_gfn;
    const b = si.store_gfn;
    const c = si.console_gfn;
    const d = smpAreaGfn(si);
    const mine = vcpu < si.nr_pages ? Math.ceil((si.nr_pages - vcpu) / nr_vcpus) : 0;
    const free = new Array<number>(mine);
    let n = 0;
    for (let gfn = vcpu + (mine - 1) * nr_vcpus; gfn >= 0; gfn -= nr_vcpus) {
      if (gfn !== a && gfn !== b && gfn !== c && gfn !== d) free[n++] = gfn;
    }
    free.length = n;
    this.free = free;
    this.total = n;
    this.nextHole = si.nr_pages + HOLE_BASE_OFFSET + vcpu * HOLES_PER_VCPU;
    this.holeEnd = this.nextHole + HOLES_PER_VCPU;
  }

  /** One free RAM page, or throws: a kernel out of memory is a bug in its sizing. */
  alloc(): number {
    const gfn = this.free.pop();
    if (gfn === undefined) throw new Error(`out of guest memory (${this.total} pages)`);
    return gfn;
  }

  allocMany(n: number): number[] {
    const out: number[] = [];
    for (let i = 0; i < n; i++) out.push(this.alloc());
    return out;
  }

  /**
   * The `n` highest free pages, highest first. alloc() takes from the bottom, so these are the
   * same pages at every boot of the same domain: a resumed kernel takes them again to keep what
   * its predecessor stored there (domu/resume.ts).
   */
  allocTop(n: number): number[] {
    if (n > this.free.length) throw new Error(`out of guest memory (${n} pages asked at the top, ${this.free.length} free)`);
    return this.free.splice(0, n);
  }

  /** Take these particular pages out of the free list (a resumed kernel's balloon: gfns it has no RAM behind). Returns how many were free. */
  take(gfns: ReadonlySet<number>): number {
    const before = this.free.length;
    let j = 0;
    for (let i = 0; i < this.free.length; i++) if (!gfns.has(this.free[i])) this.free[j++] = this.free[i];
    this.free.length = j;
    return before - j;
  }

  release(gfn: number): void {
    this.free.push(gfn);
  }

  get available(): number {
    return this.free.length;
  }

  /** A gfn with no RAM behind it, to map something foreign at. */
  allocHole(): number {
    const gfn = this.tryAllocHole();
    if (gfn < 0) throw new Error('out of physmap holes');
    return gfn;
  }

  /**
   * The same, or -1 when every hole is taken: for a backend, where running out is a frontend's
   * request to refuse, not a bug in the kernel's sizing.
   */
  tryAllocHole(): number {
    const freed = this.freedHoles.pop();
    if (freed !== undefined) return freed;
    if (this.nextHole >= this.holeEnd) return -1;
    return this.nextHole++;
  }

  releaseHole(gfn: number): void {
    this.freedHoles.push(gfn);
  }
}
