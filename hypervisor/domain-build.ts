/*
 * Creating and destroying a domain's hypervisor state: struct domain, its RAM and physmap, the
 * pages the builder hands a new guest, and the teardown that gives all of it back.
 *
 * Xen: domain_create / domain_kill / domain_relinquish_resources (xen/common/domain.c) and the
 * toolstack's domain builder (tools/libs/guest/xg_dom_*.c, xc_dom_gnttab_seed), which in Xen
 * runs in Dom0 and issues hypercalls. ringvisor runs the builder on the control thread, because
 * that is where threads are made; what it writes into the guest is what Xen's writes:
 *
 *   gfn 0 .. nr_pages-4   RAM for the kernel's own allocator
 *   gfn nr_pages-3        start_info (magic, sizes, where everything else is, the command line)
 *   gfn nr_pages-2        the xenstore ring page, its port in start_info.store_evtchn
 *   gfn nr_pages-1        the console ring page, its port in start_info.console.domU.evtchn
 *   gfn nr_pages          shared_info, mapped from the Xen heap (a hole above RAM)
 *   gfn nr_pages+1 ...    the domain's GRANT_FRAMES grant-table frames, also Xen heap
 *
 * Both ports are allocated unbound for Dom0, and grant refs 0 (console) and 1 (xenstore) are
 * seeded for Dom0, so xenconsoled and xenstored can map the pages without the guest's help.
 */
import { Buffer } from 'node:buffer';
import type { CreatedDomain } from '../shared/public/hypercall.ts';
import {
  GNTTAB_RESERVED_CONSOLE, GNTTAB_RESERVED_XENSTORE, GTF_permit_access, gntent_flags_word, gntent_frame_word,
} from '../shared/public/grant_table.ts';
import {
  PAGE_SIZE, SIF_INITDOMAIN, SIF_PRIVILEGED, START_INFO_MAGIC, XEN_ENOMEM, start_info,
} from '../shared/public/xen.ts';
import { alloc_unbound_port, evtchn_destroy } from './event-channel.ts';
import { gnttab_fence, gnttab_release_mappings } from './grant-table.ts';
import { p2m_take_back } from './guest-memory.ts';
import { log_dirty_teardown } from './mm/log-dirty.ts';
import { hvm_domain_kill } from './ioreq.ts';
import { freeFrames, frameOwner, release_page_of_dying } from './page-alloc.ts';
import { p2m_fault } from './mm/fault.ts';
import { mmDomainReset } from './mm/mm-state.ts';
import { paging_teardown } from './mm/paging.ts';
import { p2m_pod_mark } from './mm/pod.ts';
import { p2m_release_entry } from './mm/release.ts';
import {
  D, DOMF_INITDOMAIN, DOMF_PRIVILEGED, DOMSTATE_CREATING, DOMSTATE_DYING, DOMSTATE_FREE, MAX_DOMAINS,
  MAX_GUEST_PAGES, MAX_VCPUS, NR_COUNTERS, P2M_FOREIGN, P2M_MFN_MASK, P2M_PRESENT, V, VT,
  GRANT_FRAMES, grantFrameMfn, sharedInfoMfn, type HypervisorState,
} from './state.ts';

/** The domain that runs xenstored and xenconsoled, and so the far end of every store/console port. */
export const XENSTORE_DOMID = 0;
export const CONSOLE_BACKEND_DOMID = 0;
export const NR_SPECIAL_PAGES = 3;

export type BuiltDomain = CreatedDomain;

let rover = 0;

/**
 * domain_create: claim a free slot. Dom0 gets id 0; every other domain the next free id after
 * the last one handed out, so a just-destroyed id is not reused at once (Xen does the same, to
 * keep stale references to an old domain from reaching a new one).
 */
export function domain_create(hv: HypervisorState, privileged: boolean, initdomain: boolean, nr_vcpus: number, online = nr_vcpus): number {
  let domid = -1;
  if (initdomain) {
    if (Atomics.compareExchange(hv.domains, D.STATE, DOMSTATE_FREE, DOMSTATE_CREATING) === DOMSTATE_FREE) domid = 0;
  } else {
    for (let i = 1; i < MAX_DOMAINS && domid < 0; i++) {
      const d = ((rover + i - 1) % (MAX_DOMAINS - 1)) + 1;
      if (Atomics.compareExchange(hv.domains, hv.dom(d, D.STATE), DOMSTATE_FREE, DOMSTATE_CREATING) === DOMSTATE_FREE) domid = d;
    }
    if (domid > 0) rover = domid;
  }
  if (domid < 0) return -1;
  const base = domid * D.WORDS;
  for (let w = 0; w < D.WORDS; w++) if (w !== D.STATE && w !== D.GENERATION) hv.domains[base + w] = 0;
  hv.domains[base + D.GENERATION]++;
  hv.domains[base + D.FLAGS] = (privileged ? DOMF_PRIVILEGED : 0) | (initdomain ? DOMF_INITDOMAIN : 0);
  hv.domains[base + D.NR_VCPUS] = nr_vcpus;
  hv.domains[base + D.ONLINE_VCPUS] = online;
  hv.domains[base + D.SHUTDOWN_REASON] = -1;
  hv.vcpus.fill(0, hv.vcpu(domid, 0, 0), hv.vcpu(domid, MAX_VCPUS, 0));
  hv.vcpuTime.fill(0, domid * MAX_VCPUS * VT.WORDS, (domid + 1) * MAX_VCPUS * VT.WORDS);
  hv.counters.fill(0, domid * MAX_VCPUS * NR_COUNTERS, (domid + 1) * MAX_VCPUS * NR_COUNTERS);
  for (let v = 0; v < nr_vcpus; v++) hv.vcpus[hv.vcpu(domid, v, V.ALIVE)] = 0;
  // vCPUs beyond the first `online` are built down (_VPF_down): the guest brings them up (vcpu-op.ts).
  for (let v = online; v < nr_vcpus; v++) hv.vcpus[hv.vcpu(domid, v, V.DOWN)] = 1;
  return domid;
}

/** The builder: RAM, special pages, ports, seeded grants, start_info. Returns -errno on failure. */
export function build_domain(hv: HypervisorState, domid: number, memoryKiB: number, cmdline: string, maxPages?: number): BuiltDomain | number {
  const nr_pages = Math.ceil(memoryKiB / 4);
  if (nr_pages < NR_SPECIAL_PAGES + 1 || nr_pages >= MAX_GUEST_PAGES - 64) return -XEN_ENOMEM;
  const p2m = domid * MAX_GUEST_PAGES;
  // Populate on demand (mm/pod.ts): RAM costs a frame at first touch, so `memory` may exceed what
  // the host has free. The builder touches only the three special pages it writes. Dom0 is not a
  // PoD guest: as Xen's dom0_mem, its memory is all allocated when it is built.
  mmDomainReset(hv.mm, domid);
  if ((hv.domains[domid * D.WORDS + D.FLAGS] & DOMF_INITDOMAIN) !== 0 && freeFrames(hv) < nr_pages) return -XEN_ENOMEM;
  p2m_pod_mark(hv, domid, 0, nr_pages);
  const first = (hv.domains[domid * D.WORDS + D.FLAGS] & DOMF_INITDOMAIN) !== 0 ? 0 : nr_pages - NR_SPECIAL_PAGES;
  for (let gfn = first; gfn < nr_pages; gfn++) {
    if (p2m_fault(hv, domid, gfn, true) < 0) return -XEN_ENOMEM; // destroy frees what we took
  }
  hv.domains[domid * D.WORDS + D.MAX_PAGES] = maxPages ?? nr_pages;
  const shared_info_gfn = nr_pages;
  hv.p2m[p2m + shared_info_gfn] = (sharedInfoMfn(domid) | P2M_PRESENT) >>> 0;
  for (let i = 0; i < GRANT_FRAMES; i++) hv.p2m[p2m + shared_info_gfn + 1 + i] = (grantFrameMfn(domid, i) | P2M_PRESENT) >>> 0;

  const built: BuiltDomain = {
    domid,
    nr_pages,
    start_info_gfn: nr_pages - 3,
    store_gfn: nr_pages - 2,
    console_gfn: nr_pages - 1,
    store_evtchn: alloc_unbound_port(hv, domid, XENSTORE_DOMID),
    console_evtchn: alloc_unbound_port(hv, domid, CONSOLE_BACKEND_DOMID),
  };

  // xc_dom_gnttab_seed: the two reserved grants, frame first, then the flags that publish it.
  const gt = hv.grantTable[domid];
  gt[gntent_frame_word(GNTTAB_RESERVED_CONSOLE)] = built.console_gfn;
  Atomics.store(gt, gntent_flags_word(GNTTAB_RESERVED_CONSOLE), (CONSOLE_BACKEND_DOMID << 16) | GTF_permit_access);
  gt[gntent_frame_word(GNTTAB_RESERVED_XENSTORE)] = built.store_gfn;
  Atomics.store(gt, gntent_flags_word(GNTTAB_RESERVED_XENSTORE), (XENSTORE_DOMID << 16) | GTF_permit_access);

  const flags = hv.domains[domid * D.WORDS + D.FLAGS];
  const si = new DataView(hv.buffers.machine, (hv.p2m[p2m + built.start_info_gfn] & P2M_MFN_MASK) * PAGE_SIZE, PAGE_SIZE);
  const magic = new TextEncoder().encode(START_INFO_MAGIC);
  magic.forEach((b, i) => si.setUint8(start_info.magic + i, b));
  si.setBigUint64(start_info.nr_pages, BigInt(nr_pages), true);
  si.setBigUint64(start_info.shared_info, BigInt(shared_info_gfn), true);
  si.setUint32(start_info.flags, ((flags & DOMF_PRIVILEGED) ? SIF_PRIVILEGED : 0) | ((flags & DOMF_INITDOMAIN) ? SIF_INITDOMAIN : 0), true);
  si.setBigUint64(start_info.store_mfn, BigInt(built.store_gfn), true);
  si.setUint32(start_info.store_evtchn, built.store_evtchn, true);
  si.setBigUint64(start_info.console_mfn, BigInt(built.console_gfn), true);
  si.setUint32(start_info.console_evtchn, built.console_evtchn, true);
  const cmd = new TextEncoder().encode(cmdline).subarray(0, start_info.MAX_GUEST_CMDLINE - 1);
  cmd.forEach((b, i) => si.setUint8(start_info.cmd_line + i, b));
  return built;
}

/**
 * domain_kill + domain_relinquish_resources. The domain's threads have already stopped. Ports
 * close (peers see their end unbound), grants it mapped are unmapped, its own grants are fenced,
 * its frames are freed need-scrub (or orphaned if a peer still maps them; the idle scrubber of
 * ./mm/scrub.ts zeroes them later, or the allocation that takes one), and its Xen-heap pages
 * are scrubbed here (a few pages, and the domain's slot may be reused). If a peer still holds
 * one of its grants the slot stays DYING, a zombie, until that peer unmaps, exactly as Xen
 * domains linger when a backend holds their pages.
 *
 * In one go, here (a test's world, a half-built domain). The toolstack's destroy takes it in
 * pieces (domain_kill_begin, relinquish_memory until it is done, domain_kill_finish), as Xen's
 * XEN_DOMCTL_destroydomain does: relinquish_memory stops with -ERESTART when
 * hypercall_preempt_check says other work waits, and the domctl is continued; the control
 * thread it runs on also runs the host's network card (hypervisor/host.ts destroy). With the
 * scrub boot option 'free' (Xen 4.9's way) each frame is zeroed here, tens of ms for a 64 MiB
 * guest; by default (Xen 4.10's deferred scrubbing) the walk only pushes frames on the dirty list.
 */
export function domain_kill(hv: HypervisorState, domid: number): void {
  domain_kill_begin(hv, domid);
  relinquish_memory(hv, domid, 0, Infinity);
  domain_kill_finish(hv, domid);
}

/** domain_kill, up to the memory: dying; ports, grant mappings, grants, ioreq servers and foreign mappings go. */
export function domain_kill_begin(hv: HypervisorState, domid: number): void {
  Atomics.store(hv.domains, domid * D.WORDS + D.STATE, DOMSTATE_DYING);
  evtchn_destroy(hv, domid);
  gnttab_release_mappings(hv, domid);
  gnttab_fence(hv, domid);
  // ioreq servers, interrupt lines and foreign mappings, before the frames go (see ioreq.ts).
  hvm_domain_kill(hv, domid);
}

/**
 * relinquish_memory: free the frames of gfns `from` onwards, for at most `budgetMs`; returns the
 * gfn to continue from (Xen's -ERESTART), or -1 once the whole P2M is empty.
 */
export function relinquish_memory(hv: HypervisorState, domid: number, from: number, budgetMs: number): number {
  const p2m = domid * MAX_GUEST_PAGES;
  const until = budgetMs === Infinity ? Infinity : performance.now() + budgetMs;
  // The window is 4 GiB of gfns, mostly empty: skip empty stretches with one memcmp each (the
  // kernel never even commits their pages), and look entry by entry only where something is.
  for (let chunk = from - (from % RELINQUISH_SLICE); chunk < MAX_GUEST_PAGES; chunk += RELINQUISH_SLICE) {
    if (chunk > from && performance.now() > until) return chunk; // hypercall_preempt_check
    if (chunk % P2M_SCAN_CHUNK === 0) {
      const words = new Uint8Array(hv.p2m.buffer, (p2m + chunk) * 4, P2M_SCAN_CHUNK * 4);
      if (Buffer.compare(words, P2M_ZEROS) === 0) {
        chunk += P2M_SCAN_CHUNK - RELINQUISH_SLICE;
        continue;
      }
    }
    for (let gfn = Math.max(chunk, from); gfn < chunk + RELINQUISH_SLICE; gfn++) {
      // Look until the entry is empty: a PoD fault racing this scan (a device model's access) may
      // fill it after we looked (mm/pod.ts takes its frame back out itself once it sees DYING).
      for (let e = Atomics.load(hv.p2m, p2m + gfn); e !== 0; e = Atomics.load(hv.p2m, p2m + gfn)) {
        if (p2m_release_entry(hv, domid, gfn, e)) continue; // PoD, shared or paged (mm/release.ts)
        if (Atomics.compareExchange(hv.p2m, p2m + gfn, e, 0) !== e) continue;
        const mfn = e & P2M_MFN_MASK;
        if ((e & P2M_FOREIGN) === 0 && (e & P2M_PRESENT) !== 0 && frameOwner(hv, mfn) === domid) release_page_of_dying(hv, mfn);
      }
    }
  }
  return -1;
}

/** domain_kill, after the memory: the P2M's views taken back, paging, log-dirty and the Xen-heap pages; FREE unless a peer still maps a grant. */
export function domain_kill_finish(hv: HypervisorState, domid: number): void {
  const base = domid * D.WORDS;
  // Every P2M change ends with a take-back (guest-memory.ts). Its threads have stopped, so none
  // of its views is in use while the frames go; any that outlives them faults from now on.
  p2m_take_back(hv, domid);
  paging_teardown(hv, domid);
  hv.domains[base + D.TOT_PAGES] = 0;
  log_dirty_teardown(hv, domid);
  hv.sharedInfo[domid].fill(0);
  hv.grantTable[domid].fill(0);
  Atomics.store(hv.domains, base + D.TEARDOWN_DONE, 1);
  if (Atomics.load(hv.domains, base + D.PINNED) === 0) {
    Atomics.compareExchange(hv.domains, base + D.STATE, DOMSTATE_DYING, DOMSTATE_FREE);
  }
}

/* relinquish_memory's unit between preemption checks: 256 gfns (1 MiB of RAM to scrub at most, in scrub mode 'free'). */
const RELINQUISH_SLICE = 256;
/* domain_kill's P2M scan: entries per memcmp against zeros (16 KiB of table). */
const P2M_SCAN_CHUNK = 4096;
const P2M_ZEROS = new Uint8Array(P2M_SCAN_CHUNK * 4);

/** Undo a half-built domain (out of memory while building). */
export function domain_abort(hv: HypervisorState, domid: number): void {
  if (Atomics.load(hv.domains, domid * D.WORDS + D.STATE) === DOMSTATE_CREATING) domain_kill(hv, domid);
}
