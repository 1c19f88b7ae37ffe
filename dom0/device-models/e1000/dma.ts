/*
 * The e1000's bus-master DMA: reading descriptors and frames from guest RAM and writing frames and
 * write-backs into it, by guest-physical address, through the device model's mapcache.
 *
 * QEMU: pci_dma_read / pci_dma_write (include/hw/pci/pci_device.h → dma_memory_rw) on a Xen guest
 * go through xen_map_cache (../mapcache.ts). An address with no guest RAM behind it fails the
 * access; QEMU's pci_dma_* report MEMTX_DECODE_ERROR and e1000.c ignores it. Here every copy says
 * whether it reached RAM, so the model can count the guest's mistake and leave the bytes alone
 * (nothing outside the guest's own RAM is ever reachable: the mapcache only maps its frames).
 */
import { PAGE_SIZE } from '../../../shared/public/xen.ts';
import type { MapCache } from '../mapcache.ts';

/** Highest guest-physical address we try (2^52: what a 64-bit descriptor field may name and a gfn can hold). */
const GPA_LIMIT = 2 ** 52;

export class GuestDma {
  constructor(private readonly mem: MapCache) {}

  /** Copy `len` bytes at guest-physical `gpa` into dst[off..]. False if any page is not RAM. */
  read(gpa: number, dst: Uint8Array, off: number, len: number): boolean {
    if (!valid(gpa, len)) return false;
    let done = 0;
    while (done < len) {
      const a = gpa + done;
      const page = this.mem.page(Math.floor(a / PAGE_SIZE));
      if (page === null) return false;
      const po = a & (PAGE_SIZE - 1);
      const n = Math.min(PAGE_SIZE - po, len - done);
      dst.set(page.subarray(po, po + n), off + done);
      done += n;
    }
    return true;
  }

  /** Copy src[off..off+len) to guest-physical `gpa`. False if any page is not RAM (nothing is written then). */
  write(gpa: number, src: Uint8Array, off: number, len: number): boolean {
    if (!valid(gpa, len) || !this.reachable(gpa, len)) return false;
    let done = 0;
    while (done < len) {
      const a = gpa + done;
      const page = this.mem.page(Math.floor(a / PAGE_SIZE))!;
      const po = a & (PAGE_SIZE - 1);
      const n = Math.min(PAGE_SIZE - po, len - done);
      page.set(src.subarray(off + done, off + done + n), po);
      done += n;
    }
    return true;
  }

  /** The byte at `gpa` as a writable view of its page and offset, or null (for one-byte write-backs). */
  byteAt(gpa: number): { page: Uint8Array; off: number } | null {
    if (!valid(gpa, 1)) return null;
    const page = this.mem.page(Math.floor(gpa / PAGE_SIZE));
    return page === null ? null : { page, off: gpa & (PAGE_SIZE - 1) };
  }

  private reachable(gpa: number, len: number): boolean {
    const last = Math.floor((gpa + len - 1) / PAGE_SIZE);
    for (let g = Math.floor(gpa / PAGE_SIZE); g <= last; g++) if (this.mem.page(g) === null) return false;
    return true;
  }
}

function valid(gpa: number, len: number): boolean {
  return Number.isInteger(gpa) && gpa >= 0 && len >= 0 && gpa + len <= GPA_LIMIT;
}
