/*
 * A domain's memory object: guest-physical reads and writes through the domain's P2M.
 *
 * Xen: the P2M (xen/arch/x86/mm/p2m.c) and the second-stage page tables that enforce it.
 * Each domain reaches memory only through its own instance of this class, built in its own
 * vCPU thread with its domain id fixed. Every access translates gfn → mfn through the P2M the
 * hypervisor maintains; a gfn with no entry, or a write to a read-only one (a read-only grant
 * mapping), is a PageFault naming the domain and the address. Only the hypervisor writes P2M
 * entries, and only for frames the domain owns or has mapped through a grant or (Dom0) a
 * foreign mapping. The objects handed to the kernel keep their state in ECMAScript #private
 * fields, so the kernel can call them but not walk from them to the hypervisor's tables (README,
 * "Isolation", says what this does and does not guarantee in one process).
 *
 * The translate gate: every access, and every page view, is translated by Gate.translate().
 * All write access, whether a write call or a writable page view handed out for a hot path, goes
 * through it with write = true: the one place log-dirty tracking will mark frames.
 *
 * Taking a frame back (DESIGN.md section 12). Grant unmap, foreign unmap and domain destroy
 * today, and ballooning, page sharing, hypervisor paging and log-dirty rounds next, all take a
 * frame away from a domain that may hold a view of it. They all do it the same way:
 *   1. change or clear the domain's P2M entry;
 *   2. call p2m_take_back(hv, d), which bumps the domain's P2M generation word (hv.p2mgen),
 *      after the entry store, so whoever sees the new generation also sees the new entry.
 * A GuestPage (from map()) remembers the generation it was checked at. Its bytes() / words(),
 * called once per request, compare that with the live word: one load when nothing changed. When
 * the word has moved the view goes back through the gate: a hole now faults as an unmapped page
 * does; a changed entry (a frame paged back in elsewhere, a shared frame replaced by a private
 * copy) gives the view its new frame; a log-dirty round that wants to see writes again bumps the
 * word so writable views pass the write gate once more. One word per domain rather than per
 * mapping: nothing to allocate per mapping, and a change costs each live view one P2M load.
 *
 * What the request boundary means. Xen's unmap flushes the TLBs of the domain's vCPUs before it
 * returns; here the check at the start of a request is the TLB refill, so a vCPU in the middle of
 * a request finishes it on the array it got. A kernel unmapping a page its other vCPU is still
 * using is that kernel's bug, in Xen too. When the hypervisor takes a frame from a running
 * domain (paging, sharing), it pauses the domain first: its vCPUs stop at a preemption point,
 * between requests, so none holds an array across the change.
 *
 * page() and pageWords() are the older, unchecked views: typed arrays checked once when made.
 * They are right for a domain's own RAM, and they pin the page (P2M_PINNED, mm/fault.ts), so page
 * sharing and paging never take it back; a view of a page that can go away should be a GuestPage.
 *
 * Every view is a typed array over the machine buffer; in a guest's thread its `.buffer` is
 * refused (view-guard.ts), so a view reaches its page and nothing beside it.
 */
import { PageFault, type GuestMemory, type GuestPage } from '../shared/public/memory.ts';
import { PAGE_SHIFT, PAGE_SIZE, PAGE_WORDS } from '../shared/public/xen.ts';
import {
  C, MAX_GUEST_PAGES, MAX_VCPUS, NR_COUNTERS, P2M_MFN_MASK, P2M_PRESENT, P2M_READONLY, P2MGEN_STRIDE,
  type HypervisorState,
} from './state.ts';
import { FAULT_NOMEM, p2m_fault, p2m_pin_private, p2m_pod_oom_counted } from './mm/fault.ts';
import { log_dirty_view, log_dirty_write, log_dirty_written } from './mm/log-dirty.ts';

/**
 * Step 2 of taking a frame back (see the header): `d`'s P2M has lost or changed an entry, so
 * every view `d` holds must be checked again before its next use.
 */
export function p2m_take_back(hv: HypervisorState, d: number): void {
  Atomics.add(hv.p2mgen, d * P2MGEN_STRIDE, 1);
}

/** What a vCPU thread gives its memory object for the fault path (vcpu.ts). */
export interface FaultHooks {
  /** Crash the domain (Xen's domain_crash): no frame for a page it must have. Never returns. */
  crash?: (why: string) => never;
  /** Wait for the pager to free frames; false if none runs or it freed nothing in time. */
  waitFrames?: () => boolean;
}

/** What the memory object and its page views share; never handed to the kernel itself. */
class Gate {
  readonly p2mBase: number;
  readonly genIndex: number;
  private readonly faultCounter: number;

  constructor(readonly hv: HypervisorState, readonly domid: number, vcpu: number, readonly hooks: FaultHooks = {}) {
    this.p2mBase = domid * MAX_GUEST_PAGES;
    this.genIndex = domid * P2MGEN_STRIDE;
    this.faultCounter = (domid * MAX_VCPUS + vcpu) * NR_COUNTERS + C.page_faults;
  }

  /**
   * gfn → mfn, or a page fault. The single gate for every access (see header). `mark`: a write is
   * logged here (a view handed out, whose writes come later); a write call passes false and logs
   * the page itself once its bytes have landed (written()).
   */
  translate(gfn: number, write: boolean, gpa = gfn * PAGE_SIZE, mark = write): number {
    const e = gfn >= 0 && gfn < MAX_GUEST_PAGES ? this.hv.p2m[this.p2mBase + gfn] : 0;
    if ((e & P2M_PRESENT) === 0 || (write && (e & P2M_READONLY) !== 0)) return this.slow(gfn, write, gpa, e, mark);
    if (mark) log_dirty_write(this.hv, this.domid, gfn, e); // log-dirty's hook (mm/log-dirty.ts)
    return e & P2M_MFN_MASK;
  }

  /**
   * A write call's bytes have landed in gfn: log it now, not before the copy. Marked before, a
   * CLEAN between the mark and the copy would take the bit and let the sender read the page
   * before the bytes landed, and nothing would log them again: the page lost from the migration.
   * Xen has no such window (its CLEAN re-protects the P2M and flushes the TLBs, so a store after it
   * faults); a thread preempted between a mark and its copy does (mm/log-dirty.ts).
   */
  written(gfn: number): void {
    log_dirty_written(this.hv, this.domid, gfn, this.hv.p2m[this.p2mBase + gfn]);
  }

  /* The fault path: populate on demand, page in, break a share (mm/fault.ts), or the guest's fault. */
  private slow(gfn: number, write: boolean, gpa: number, e: number, mark: boolean): number {
    let mfn = p2m_fault(this.hv, this.domid, gfn, write);
    // No frame: while a pager runs, wait for its batches (mm/pager-wait.ts) until one leaves a
    // frame for us. Each true is a batch that freed frames, so the host is making progress even
    // when other vCPUs take them first; a batch that freed nothing ends the wait.
    while (mfn === FAULT_NOMEM && this.hooks.waitFrames?.() === true) mfn = p2m_fault(this.hv, this.domid, gfn, write);
    if (mfn >= 0) {
      if (mark) log_dirty_write(this.hv, this.domid, gfn, this.hv.p2m[this.p2mBase + gfn]);
      return mfn;
    }
    const access = write ? 'write' : 'read';
    if (mfn === FAULT_NOMEM) {
      const why = `PoD: out of memory: d${this.domid} touched gfn 0x${gfn.toString(16)} and the host has no free frame`;
      if (this.hooks.crash) {
        p2m_pod_oom_counted(this.hv);
        this.hooks.crash(why);
      }
      throw this.fault(gpa, access, why);
    }
    if ((e & P2M_PRESENT) === 0) throw this.fault(gpa, access, 'no translation in the P2M');
    throw this.fault(gpa, access, 'the page is mapped read-only');
  }

  /**
   * A page view is translated as an access, made private and pinned (it outlives the access, so
   * sharing and paging must leave the page alone: mm/fault.ts); a writable one is also remembered
   * by log-dirty.
   */
  translateView(gfn: number, writable: boolean): number {
    this.translate(gfn, writable);
    p2m_pin_private(this.hv, this.domid, gfn);
    const mfn = this.translate(gfn, writable);
    if (writable) log_dirty_view(this.hv, this.domid, gfn);
    return mfn;
  }

  generation(): number {
    return Atomics.load(this.hv.p2mgen, this.genIndex);
  }

  fault(gpa: number, access: 'read' | 'write', why: string): PageFault {
    this.hv.counters[this.faultCounter]++;
    return new PageFault(this.domid, gpa, access, why);
  }
}

/* The one page walk behind read, write and fill: what to do with each page-sized piece. */
const READ = 0;
const WRITE = 1;
const FILL = 2;

export class DomainMemory implements GuestMemory {
  readonly #gate: Gate;

  /** `hooks`: how this vCPU waits for the pager, and crashes its domain, when there is no frame for it. */
  constructor(hv: HypervisorState, domid: number, vcpu = 0, hooks: FaultHooks = {}) {
    this.#gate = new Gate(hv, domid, vcpu, hooks);
  }

  present(gfn: number): boolean {
    const g = this.#gate;
    return gfn >= 0 && gfn < MAX_GUEST_PAGES && (g.hv.p2m[g.p2mBase + gfn] & P2M_PRESENT) !== 0;
  }

  read(gpa: number, dst: Uint8Array): void {
    this.#walk(READ, gpa, dst.length, dst, 0);
  }

  write(gpa: number, src: Uint8Array): void {
    this.#walk(WRITE, gpa, src.length, src, 0);
  }

  copy(dstGpa: number, srcGpa: number, len: number): void {
    const tmp = new Uint8Array(len);
    this.read(srcGpa, tmp);
    this.write(dstGpa, tmp);
  }

  fill(gpa: number, len: number, value = 0): void {
    this.#walk(FILL, gpa, len, null, value);
  }

  /** Each page-sized piece of [gpa, gpa + len), translated through the gate, then copied or filled. */
  #walk(op: number, gpa: number, len: number, buf: Uint8Array | null, value: number): void {
    const g = this.#gate;
    const mem8 = g.hv.mem8;
    for (let done = 0; done < len;) {
      const a = gpa + done;
      const off = a & (PAGE_SIZE - 1);
      const n = Math.min(PAGE_SIZE - off, len - done);
      const gfn = Math.floor(a / PAGE_SIZE);
      const at = g.translate(gfn, op !== READ, a, false) * PAGE_SIZE + off;
      if (op === READ) buf!.set(mem8.subarray(at, at + n), done);
      else {
        if (op === WRITE) mem8.set(n === len ? buf! : buf!.subarray(done, done + n), at);
        else mem8.fill(value, at, at + n);
        g.written(gfn); // after the bytes, not before (Gate.written)
      }
      done += n;
    }
  }

  readU32(gpa: number): number {
    if ((gpa & 3) !== 0) throw new RangeError(`readU32 at unaligned gpa 0x${gpa.toString(16)}`);
    const mfn = this.#gate.translate(gpa >>> PAGE_SHIFT, false, gpa);
    return this.#gate.hv.mem32[mfn * PAGE_WORDS + ((gpa & (PAGE_SIZE - 1)) >> 2)] >>> 0;
  }

  writeU32(gpa: number, value: number): void {
    if ((gpa & 3) !== 0) throw new RangeError(`writeU32 at unaligned gpa 0x${gpa.toString(16)}`);
    const mfn = this.#gate.translate(gpa >>> PAGE_SHIFT, true, gpa, false);
    this.#gate.hv.mem32[mfn * PAGE_WORDS + ((gpa & (PAGE_SIZE - 1)) >> 2)] = value;
    this.#gate.written(gpa >>> PAGE_SHIFT);
  }

  page(gfn: number, writable: boolean): Uint8Array {
    return new Uint8Array(this.#gate.hv.buffers.machine, this.#gate.translateView(gfn, writable) * PAGE_SIZE, PAGE_SIZE);
  }

  pageWords(gfn: number, writable: boolean): Int32Array {
    return new Int32Array(this.#gate.hv.buffers.machine, this.#gate.translateView(gfn, writable) * PAGE_SIZE, PAGE_WORDS);
  }

  map(gfn: number, writable: boolean): GuestPage {
    return new MappedPage(this.#gate, gfn, writable);
  }
}

/** A GuestPage: a view that goes back through the gate whenever the domain's P2M has changed. */
class MappedPage implements GuestPage {
  readonly #gate: Gate;
  /* The generation word itself, so the check in bytes() / words() is one load and a compare. */
  readonly #genWords: Int32Array;
  readonly #genIndex: number;
  readonly #gfn: number;
  readonly #writable: boolean;
  #gen = 0;
  #mfn = -1;
  #bytes: Uint8Array = new Uint8Array(0);
  #words: Int32Array = new Int32Array(0);

  constructor(gate: Gate, gfn: number, writable: boolean) {
    this.#gate = gate;
    this.#genWords = gate.hv.p2mgen;
    this.#genIndex = gate.genIndex;
    this.#gfn = gfn;
    this.#writable = writable;
    this.#refill();
  }

  get gfn(): number { return this.#gfn; }
  get writable(): boolean { return this.#writable; }

  bytes(): Uint8Array {
    if (Atomics.load(this.#genWords, this.#genIndex) !== this.#gen) this.#refill();
    return this.#bytes;
  }

  words(): Int32Array {
    if (Atomics.load(this.#genWords, this.#genIndex) !== this.#gen) this.#refill();
    return this.#words;
  }

  /** The TLB refill: read the generation first, so an entry changed after it bumps it again. */
  #refill(): void {
    const gen = this.#gate.generation();
    const mfn = this.#gate.translate(this.#gfn, this.#writable);
    // Writes into the array come after this mark, and one made after a CLEAN is seen only at the
    // next request: the last round (LOGDIRTY_FINAL) takes such a page whatever the log says.
    if (this.#writable) log_dirty_view(this.#gate.hv, this.#gate.domid, this.#gfn);
    if (mfn !== this.#mfn) {
      const machine = this.#gate.hv.buffers.machine;
      this.#bytes = new Uint8Array(machine, mfn * PAGE_SIZE, PAGE_SIZE);
      this.#words = new Int32Array(machine, mfn * PAGE_SIZE, PAGE_WORDS);
      this.#mfn = mfn;
    }
    this.#gen = gen;
  }
}
