/*
 * The memory-management features' shared state: populate-on-demand, page sharing and paging
 * counters, per domain and for the host, in one SharedArrayBuffer every thread views.
 *
 * Xen: the PoD fields of struct p2m_domain (pod.entry_count, pod.count), mem_sharing's globals
 * (nr_shared_mfns, nr_saved_mfns: XENMEM_get_sharing_shared_pages / _freed_pages) and the paging
 * fields of struct domain (d->paged_pages). KSM names its counters pages_shared (distinct shared
 * frames) and pages_sharing (extra mappings of them: the memory saved), which are Xen's
 * nr_shared_mfns and nr_saved_mfns; both names are given where they are shown.
 *
 * This file imports nothing of the hypervisor (state.ts imports it), so its domain count is
 * its own constant, checked against state.ts's MAX_DOMAINS by a test.
 */
export const MM_DOMAINS = 64;

/* Host-wide words. */
export const MH = {
  SHARED_FRAMES: 0,    // frames owned by dom_cow (Xen nr_shared_mfns, KSM pages_shared)
  SHARING_MAPPINGS: 1, // gfn mappings of shared frames; minus SHARED_FRAMES: the frames saved (Xen nr_saved_mfns, KSM pages_sharing)
  COW_BREAKS: 2,       // writes that got a private copy of a shared frame (Linux's cow_ksm)
  SCANNED: 3,          // pages the sharing scanner looked at (KSM's pages scanned)
  FULL_SCANS: 4,       // passes over every candidate page (KSM full_scans)
  PAGED_OUT: 5,        // gfns whose contents are in a paging file now
  PAGE_OUTS: 6,        // evictions so far (xenpaging's evict)
  PAGE_INS: 7,         // page-ins so far (xenpaging's prep / page-in on access)
  POD_FILLS: 8,        // PoD entries backed by a frame at first touch
  POD_OOM: 9,          // domains crashed because a PoD entry found no frame
  PAGER_ON: 10,        // 1 while the pager runs: a vCPU short of a frame waits for it instead of crashing
  PRESSURE: 11,        // bumped by a vCPU that found no frame: wakes the pager at once
  FREED_SEQ: 12,       // bumped by the pager after each batch it evicted: wakes waiting vCPUs
  LAST_FREED: 13,      // frames that batch evicted (0: the pager found nothing it could take)
  WORDS: 16,
} as const;

/* Per-domain words, at MH.WORDS + domid × MD.WORDS. */
export const MD = {
  POD_ENTRIES: 0,      // gfns still P2M_POD (Xen p2m->pod.entry_count)
  SHARED: 1,           // gfns of this domain that map a shared frame
  PAGED: 2,            // gfns of this domain that are P2M_PAGED
  COW_BREAKS: 3,
  PAGE_INS: 4,
  PAGE_OUTS: 5,
  POD_FILLS: 6,
  POD_TARGET: 7,       // the balloon target in pages (XENMEM_set_pod_target): what getdomaininfo counts of the PoD entries
  WORDS: 8,
} as const;

/* The paging directory, as UTF-8 bytes with a length word, after the per-domain words. */
export const MM_PATH_LEN = MH.WORDS + MM_DOMAINS * MD.WORDS;
export const MM_PATH = MM_PATH_LEN + 1;
export const MM_PATH_BYTES = 1024;
const MM_WORDS = MM_PATH + MM_PATH_BYTES / 4;

export function allocateMmBuffer(): SharedArrayBuffer {
  return new SharedArrayBuffer(MM_WORDS * 4);
}

/** Index of per-domain word `w` of domain `d`. */
export function md(d: number, w: number): number {
  return MH.WORDS + d * MD.WORDS + w;
}

/** The per-domain words a new domain starts with. */
export function mmDomainReset(mm: Int32Array, d: number): void {
  mm.fill(0, md(d, 0), md(d + 1, 0));
}
