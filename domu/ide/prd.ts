/*
 * Building a bus-master descriptor table: telling the DMA engine where a request's buffer lies
 * in guest-physical memory.
 *
 * Linux: drivers/ata/libata-sff.c ata_bmdma_fill_sg (one PRD entry per scatter-gather segment,
 * split so that none crosses a 64 KiB boundary); the layout and its rules are
 * shared/public/hw/bmide.ts ([BMIDE] "Physical Region Descriptor").
 *
 * The table lives in one page of the guest's RAM, allocated once, so its address never changes
 * and the device model's mapcache keeps it mapped. A buffer's pages need not be contiguous:
 * each run of physically consecutive pages becomes one entry, cut at every 64 KiB boundary (an
 * entry holds at most 64 KiB, written as count 0). One page holds PRD_PER_PAGE entries, which
 * bounds how much one DMA command can move (disk.ts splits requests to fit).
 */
import type { Kernel } from '../../shared/kernel/kernel.ts';
import { PRD_BOUNDARY, PRD_BYTES, PRD_EOT, PRD_MAX_REGION } from '../../shared/public/hw/bmide.ts';
import { PAGE_SHIFT, PAGE_SIZE } from '../../shared/public/xen.ts';
import type { IoBuffer } from '../block/blkdev.ts';
import { dataViewOf } from '../../shared/view.ts';

export const PRD_PER_PAGE = PAGE_SIZE / PRD_BYTES;

export class PrdTable {
  readonly gfn: number;
  readonly gpa: number;
  private readonly page: Uint8Array;
  private readonly dv: DataView;

  constructor(k: Kernel) {
    this.gfn = k.pages.alloc();
    this.gpa = this.gfn * PAGE_SIZE;
    this.page = k.memory.page(this.gfn, true);
    this.dv = dataViewOf(this.page, 0, PAGE_SIZE);
  }

  /** Entry `i`, written as given (tests use this to build malformed tables). */
  put(i: number, addr: number, count: number, eot: boolean): void {
    this.dv.setUint32(i * PRD_BYTES, addr >>> 0, true);
    this.dv.setUint16(i * PRD_BYTES + 4, count & 0xffff, true);
    this.dv.setUint16(i * PRD_BYTES + 6, eot ? PRD_EOT : 0, true);
  }

  /**
   * Describe `bytes` of `buf` starting at byte `offset`. Returns the number of entries, or -1 if
   * they would not fit in the page.
   */
  build(buf: IoBuffer, offset: number, bytes: number): number {
    let n = 0;
    let start = -1;
    let len = 0;
    let at = offset;
    const end = offset + bytes;
    while (at < end) {
      const gpa = buf.gfns[at >>> PAGE_SHIFT] * PAGE_SIZE + (at & (PAGE_SIZE - 1));
      const chunk = Math.min(PAGE_SIZE - (at & (PAGE_SIZE - 1)), end - at);
      // Extend the current entry if this piece follows it in guest-physical memory, keeps it
      // within 64 KiB, and does not start on a 64 KiB boundary.
      if (start >= 0 && gpa === start + len && len + chunk <= PRD_MAX_REGION && gpa % PRD_BOUNDARY !== 0) {
        len += chunk;
      } else {
        if (start >= 0) {
          if (n === PRD_PER_PAGE) return -1;
          this.put(n++, start, len, false);
        }
        start = gpa;
        len = chunk;
      }
      at += chunk;
    }
    if (n === PRD_PER_PAGE) return -1;
    this.put(n++, start, len, true);
    return n;
  }
}
