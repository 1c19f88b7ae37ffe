/*
 * Hypervisor paging: a domain's frames written out to its paging file and read back when the
 * domain touches them, the last resort when the host has no frames left.
 *
 * Xen: xen/arch/x86/mm/mem_paging.c and tools/xenpaging. The pager nominates a gfn
 * (p2m_mem_paging_nominate: only a private page nobody else references), writes its contents
 * to the VM's paging file, and evicts it (p2m_mem_paging_evict: the entry becomes p2m_ram_paged
 * and the frame is freed). A vCPU that touches a paged-out gfn faults; Xen pauses it and asks
 * the pager, which reads the page back (prep) and resumes it. Here the faulting vCPU's thread does
 * the pager's read itself, synchronously: the vCPU is held (it runs nothing else) until its page
 * is back, as Xen's is paused, and no thread of Dom0 is needed on the path.
 *
 * The paging file is indexed by gfn: page `gfn` lives at offset gfn × 4096 (a sparse file, so only
 * what was written takes space). xenpaging keeps a slot table instead; indexing by gfn needs no
 * shared allocator, and the file is removed when the domain is destroyed.
 */
import { closeSync, constants, mkdirSync, openSync, readSync, rmSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { PAGE_SIZE } from '../../shared/public/xen.ts';
import { p2m_take_back } from '../guest-memory.ts';
import { alloc_domheap_page, free_domheap_page, release_page_of_dying } from '../page-alloc.ts';
import { D, F, MAX_GUEST_PAGES, P2M_MFN_MASK, P2M_PAGED, P2M_PRESENT, type HypervisorState } from '../state.ts';
import { MD, MH, MM_PATH, MM_PATH_BYTES, MM_PATH_LEN, md } from './mm-state.ts';
import { POD_ENOMEM, POD_RETRY } from './pod.ts';

/** The host's paging directory (set once by the control thread; every thread reads it). */
export function setPagingDir(hv: HypervisorState, dir: string): void {
  const bytes = new TextEncoder().encode(dir);
  if (bytes.length > MM_PATH_BYTES) throw new RangeError(`paging directory path longer than ${MM_PATH_BYTES} bytes: ${dir}`);
  new Uint8Array(hv.buffers.mm, MM_PATH * 4, MM_PATH_BYTES).set(bytes);
  Atomics.store(hv.mm, MM_PATH_LEN, bytes.length);
  mkdirSync(dir, { recursive: true });
}

export function pagingDir(hv: HypervisorState): string | null {
  const n = Atomics.load(hv.mm, MM_PATH_LEN);
  if (n === 0) return null;
  return new TextDecoder().decode(new Uint8Array(hv.buffers.mm, MM_PATH * 4, n).slice());
}

/** Domain `d`'s paging file (its generation tells a reused id's file from an old one). */
export function pagingFile(hv: HypervisorState, d: number): string | null {
  const dir = pagingDir(hv);
  return dir === null ? null : join(dir, `d${d}.${Atomics.load(hv.domains, d * D.WORDS + D.GENERATION)}.paging`);
}

/**
 * nominate + evict: `d`'s private frame behind entry `e` of `gfn` goes to the paging file and the
 * entry becomes paged. The caller chose an unpinned, unshared page of its own and has `d` paused.
 */
export function p2m_mem_paging_evict(hv: HypervisorState, d: number, gfn: number, e: number, maps?: number): boolean {
  const file = pagingFile(hv, d);
  if (file === null) return false;
  const mfn = e & P2M_MFN_MASK;
  const wfd = openSync(file, constants.O_RDWR | constants.O_CREAT, 0o600); // created on first use, never truncated
  try {
    writeSync(wfd, hv.mem8, mfn * PAGE_SIZE, PAGE_SIZE, gfn * PAGE_SIZE);
  } finally {
    closeSync(wfd);
  }
  const idx = d * MAX_GUEST_PAGES + gfn;
  if (Atomics.compareExchange(hv.p2m, idx, e, P2M_PAGED >>> 0) !== e) return false;
  // A foreign mapping may have come and gone while the page was copied out (pinning and unpinning
  // it leaves the entry as it was: its F.MAPS count moved): what it wrote is not in the file, so
  // the page stays. The entry was PAGED only for these few instructions, the domain quiescent.
  let held = false;
  if (maps !== undefined && (Atomics.load(hv.frames, mfn * F.WORDS + F.MAPS) !== maps || Atomics.load(hv.frames, mfn * F.WORDS + F.REF) !== 0)) {
    if (Atomics.compareExchange(hv.p2m, idx, P2M_PAGED >>> 0, e) === (P2M_PAGED >>> 0)) return false;
    held = true; // paged in again meanwhile: the entry has a new frame; this one may still be mapped
  }
  p2m_take_back(hv, d);
  if (!held) free_domheap_page(hv, mfn);
  else release_page_of_dying(hv, mfn); // its last mapping frees it
  Atomics.sub(hv.domains, d * D.WORDS + D.TOT_PAGES, 1);
  Atomics.add(hv.mm, md(d, MD.PAGED), 1);
  Atomics.add(hv.mm, md(d, MD.PAGE_OUTS), 1);
  Atomics.add(hv.mm, MH.PAGED_OUT, 1);
  Atomics.add(hv.mm, MH.PAGE_OUTS, 1);
  return true;
}

/** The page-in on access: read `gfn` back into a new frame. POD_RETRY if someone else did first. */
export function p2m_mem_paging_populate(hv: HypervisorState, d: number, gfn: number, e: number): number {
  const file = pagingFile(hv, d);
  if (file === null) return POD_ENOMEM;
  const mfn = alloc_domheap_page(hv, d);
  if (mfn < 0) return POD_ENOMEM;
  const fd = openSync(file, 'r');
  try {
    const n = readSync(fd, hv.mem8, mfn * PAGE_SIZE, PAGE_SIZE, gfn * PAGE_SIZE);
    if (n !== PAGE_SIZE) throw new Error(`paging file ${file}: gfn 0x${gfn.toString(16)} is short (${n} bytes): a broken host invariant`);
  } finally {
    closeSync(fd);
  }
  if (Atomics.compareExchange(hv.p2m, d * MAX_GUEST_PAGES + gfn, e, (mfn | P2M_PRESENT) >>> 0) !== e) {
    free_domheap_page(hv, mfn);
    return POD_RETRY;
  }
  Atomics.add(hv.domains, d * D.WORDS + D.TOT_PAGES, 1);
  Atomics.sub(hv.mm, md(d, MD.PAGED), 1);
  Atomics.add(hv.mm, md(d, MD.PAGE_INS), 1);
  Atomics.sub(hv.mm, MH.PAGED_OUT, 1);
  Atomics.add(hv.mm, MH.PAGE_INS, 1);
  return mfn;
}

/** A paged entry leaves `d`'s physmap (decrease_reservation, destroy). */
export function p2m_mem_paging_drop(hv: HypervisorState, d: number, gfn: number, e: number): boolean {
  if (Atomics.compareExchange(hv.p2m, d * MAX_GUEST_PAGES + gfn, e, 0) !== e) return false;
  Atomics.sub(hv.mm, md(d, MD.PAGED), 1);
  Atomics.sub(hv.mm, MH.PAGED_OUT, 1);
  return true;
}

/** Teardown: the domain's paging file goes with it. */
export function paging_teardown(hv: HypervisorState, d: number): void {
  const file = pagingFile(hv, d);
  if (file !== null) rmSync(file, { force: true });
}
