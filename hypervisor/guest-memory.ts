/*
 * A domain's memory object: guest-physical reads and writes through the domain's P2M.
 *
 * Xen: the P2M (xen/arch/x86/mm/p2m.c) and the second-stage page tables that enforce it.
 * Each domain reaches memory only through its own instance of this class, built in its own
 * vCPU thread with its domain id fixed. Every access translates gfn → mfn through the P2M the
 * hypervisor maintains; a gfn with no entry, or a write to a read-only one (a read-only grant
 * mapping), is a PageFault naming the domain and the address. Because only the hypervisor
 * writes P2M entries, and it writes them only for frames the domain owns or has mapped through
 * a grant, no other frame can be reached.
 *
 * All write access, whether a write call or a writable page view handed out for a hot path,
 * is translated by translateForWrite(): the one place log-dirty tracking will mark frames.
 */
import { PageFault, type GuestMemory } from '../shared/public/memory.ts';
import { PAGE_SHIFT, PAGE_SIZE, PAGE_WORDS } from '../shared/public/xen.ts';
import { C, MAX_GUEST_PAGES, MAX_VCPUS, NR_COUNTERS, P2M_MFN_MASK, P2M_PRESENT, P2M_READONLY, type HypervisorState } from './state.ts';

export class DomainMemory implements GuestMemory {
  private readonly p2mBase: number;
  private readonly faultCounter: number;

  constructor(private readonly hv: HypervisorState, readonly domid: number, vcpu = 0) {
    this.p2mBase = domid * MAX_GUEST_PAGES;
    this.faultCounter = (domid * MAX_VCPUS + vcpu) * NR_COUNTERS + C.page_faults;
  }

  present(gfn: number): boolean {
    return gfn >= 0 && gfn < MAX_GUEST_PAGES && (this.hv.p2m[this.p2mBase + gfn] & P2M_PRESENT) !== 0;
  }

  /** gfn → mfn for a read, or a page fault. */
  translateForRead(gfn: number, gpa = gfn * PAGE_SIZE): number {
    const e = gfn >= 0 && gfn < MAX_GUEST_PAGES ? this.hv.p2m[this.p2mBase + gfn] : 0;
    if ((e & P2M_PRESENT) === 0) throw this.fault(gpa, 'read', 'no translation in the P2M');
    return e & P2M_MFN_MASK;
  }

  /** gfn → mfn for a write, or a page fault. The single gate for write access (see header). */
  translateForWrite(gfn: number, gpa = gfn * PAGE_SIZE): number {
    const e = gfn >= 0 && gfn < MAX_GUEST_PAGES ? this.hv.p2m[this.p2mBase + gfn] : 0;
    if ((e & P2M_PRESENT) === 0) throw this.fault(gpa, 'write', 'no translation in the P2M');
    if ((e & P2M_READONLY) !== 0) throw this.fault(gpa, 'write', 'the page is mapped read-only');
    return e & P2M_MFN_MASK;
  }

  read(gpa: number, dst: Uint8Array): void {
    let done = 0;
    while (done < dst.length) {
      const a = gpa + done;
      const off = a & (PAGE_SIZE - 1);
      const n = Math.min(PAGE_SIZE - off, dst.length - done);
      const mfn = this.translateForRead(Math.floor(a / PAGE_SIZE), a);
      const from = mfn * PAGE_SIZE + off;
      dst.set(this.hv.mem8.subarray(from, from + n), done);
      done += n;
    }
  }

  write(gpa: number, src: Uint8Array): void {
    let done = 0;
    while (done < src.length) {
      const a = gpa + done;
      const off = a & (PAGE_SIZE - 1);
      const n = Math.min(PAGE_SIZE - off, src.length - done);
      const mfn = this.translateForWrite(Math.floor(a / PAGE_SIZE), a);
      this.hv.mem8.set(n === src.length ? src : src.subarray(done, done + n), mfn * PAGE_SIZE + off);
      done += n;
    }
  }

  copy(dstGpa: number, srcGpa: number, len: number): void {
    const tmp = new Uint8Array(len);
    this.read(srcGpa, tmp);
    this.write(dstGpa, tmp);
  }

  fill(gpa: number, len: number, value = 0): void {
    let done = 0;
    while (done < len) {
      const a = gpa + done;
      const off = a & (PAGE_SIZE - 1);
      const n = Math.min(PAGE_SIZE - off, len - done);
      const mfn = this.translateForWrite(Math.floor(a / PAGE_SIZE), a);
      this.hv.mem8.fill(value, mfn * PAGE_SIZE + off, mfn * PAGE_SIZE + off + n);
      done += n;
    }
  }

  readU32(gpa: number): number {
    if ((gpa & 3) !== 0) throw new RangeError(`readU32 at unaligned gpa 0x${gpa.toString(16)}`);
    const mfn = this.translateForRead(gpa >>> PAGE_SHIFT, gpa);
    return this.hv.mem32[mfn * PAGE_WORDS + ((gpa & (PAGE_SIZE - 1)) >> 2)] >>> 0;
  }

  writeU32(gpa: number, value: number): void {
    if ((gpa & 3) !== 0) throw new RangeError(`writeU32 at unaligned gpa 0x${gpa.toString(16)}`);
    const mfn = this.translateForWrite(gpa >>> PAGE_SHIFT, gpa);
    this.hv.mem32[mfn * PAGE_WORDS + ((gpa & (PAGE_SIZE - 1)) >> 2)] = value;
  }

  page(gfn: number, writable: boolean): Uint8Array {
    const mfn = writable ? this.translateForWrite(gfn) : this.translateForRead(gfn);
    return new Uint8Array(this.hv.buffers.machine, mfn * PAGE_SIZE, PAGE_SIZE);
  }

  pageWords(gfn: number, writable: boolean): Int32Array {
    const mfn = writable ? this.translateForWrite(gfn) : this.translateForRead(gfn);
    return new Int32Array(this.hv.buffers.machine, mfn * PAGE_SIZE, PAGE_WORDS);
  }

  private fault(gpa: number, access: 'read' | 'write', why: string): PageFault {
    this.hv.counters[this.faultCounter]++;
    return new PageFault(this.domid, gpa, access, why);
  }
}
