/*
 * The saver's and restorer's window on a guest's memory: batches of its pages mapped into Dom0's
 * physmap, read or written, and unmapped again.
 *
 * Xen: xc_map_foreign_bulk (privcmd's IOCTL_PRIVCMD_MMAPBATCH_V2 over
 * XENMEM_add_to_physmap_batch(XENMAPSPACE_gmfn_foreign)), which xg_sr_save.c's write_batch and
 * xg_sr_restore.c's process_page_data use a batch at a time. Dom0 names the guest's gfns, never a
 * machine frame; the hypervisor checks it is the control domain and that the pages are the
 * guest's (hypervisor/p2m-foreign.ts). One set of holes is reused for every batch.
 */
import type { Kernel } from '../../../shared/kernel/kernel.ts';
import { XENMAPSPACE_gmfn_foreign } from '../../../shared/public/hypercall.ts';
import { MAX_BATCH_SIZE } from '../../../shared/public/migration-stream.ts';
import { PAGE_SIZE, errnoName } from '../../../shared/public/xen.ts';

export class ForeignPages {
  private readonly holes: number[];
  private readonly errs = new Int32Array(MAX_BATCH_SIZE);

  constructor(private readonly k: Kernel, private readonly domid: number) {
    this.holes = Array.from({ length: MAX_BATCH_SIZE }, () => k.pages.allocHole());
  }

  /** Copy the guest's pages `gfns` (at most MAX_BATCH_SIZE) into `out`, one page after another. */
  read(gfns: readonly number[], out: Uint8Array): void {
    this.batch(gfns, (i, gpa) => this.k.memory.read(gpa, out.subarray(i * PAGE_SIZE, (i + 1) * PAGE_SIZE)));
  }

  /** Write `data` (one page per gfn) into the guest's pages `gfns`. */
  write(gfns: readonly number[], data: Uint8Array): void {
    this.batch(gfns, (i, gpa) => this.k.memory.write(gpa, data.subarray(i * PAGE_SIZE, (i + 1) * PAGE_SIZE)));
  }

  /**
   * Map `gfns` (at most MAX_BATCH_SIZE) for writing while `fill` runs: it writes into page i at
   * byte `off` with `put`, piece by piece, as the bytes come; unmapped when it settles.
   */
  async writeWhile(gfns: readonly number[], fill: (put: (i: number, off: number, bytes: Uint8Array) => void) => Promise<void>): Promise<void> {
    const n = gfns.length;
    const rc = n === 0 ? 0 : this.k.hypercall.memory_add_to_physmap_batch(XENMAPSPACE_gmfn_foreign, this.domid, gfns, this.holes, this.errs, n);
    try {
      this.check(gfns, rc);
      await fill((i, off, bytes) => {
        if (!(i >= 0 && i < n && off >= 0 && off + bytes.length <= PAGE_SIZE)) throw new RangeError(`a write of ${bytes.length} bytes at ${off} into page ${i} of ${n}`);
        this.k.memory.write(this.holes[i] * PAGE_SIZE + off, bytes);
      });
    } finally {
      this.unmap(n, rc);
    }
  }

  private check(gfns: readonly number[], rc: number): void {
    if (rc < 0) throw new Error(`mapping domain ${this.domid}'s pages: ${errnoName(rc)}`);
    for (let i = 0; i < gfns.length; i++) {
      if (this.errs[i] !== 0) throw new Error(`mapping domain ${this.domid}'s gfn ${gfns[i]}: ${errnoName(this.errs[i])}`);
    }
  }

  private unmap(n: number, rc: number): void {
    for (let i = 0; i < n; i++) if (rc >= 0 && this.errs[i] === 0) this.k.hypercall.memory_remove_from_physmap(this.holes[i]);
  }

  private batch(gfns: readonly number[], each: (i: number, gpa: number) => void): void {
    const n = gfns.length;
    const rc = this.k.hypercall.memory_add_to_physmap_batch(XENMAPSPACE_gmfn_foreign, this.domid, gfns, this.holes, this.errs, n);
    try {
      this.check(gfns, rc);
      for (let i = 0; i < n; i++) each(i, this.holes[i] * PAGE_SIZE);
    } finally {
      this.unmap(n, rc);
    }
  }

  close(): void {
    for (const h of this.holes) this.k.pages.releaseHole(h);
  }
}
