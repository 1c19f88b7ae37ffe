/*
 * The memory features' host counters by name, for `xl info` and the bench: Xen's names first,
 * KSM's where it has its own (XEN-FACTS Part 2 §3.3).
 *
 *   sharing_shared_frames    frames shared (Xen nr_shared_mfns / XENMEM_get_sharing_shared_pages; KSM pages_shared)
 *   sharing_mappings         gfns that map a shared frame
 *   sharing_freed_memory     frames saved = mappings − shared frames (Xen nr_saved_mfns /
 *                            XENMEM_get_sharing_freed_pages; KSM pages_sharing)
 *   cow_breaks               writes that got a private copy (Linux /proc/vmstat cow_ksm)
 *   sharing_pages_scanned, sharing_full_scans   the scanner's work (KSM pages_scanned, full_scans)
 *   paged_out, page_outs, page_ins              xenpaging's state and traffic
 *   pod_fills, pod_oom_crashes                  populate-on-demand
 */
import type { HypervisorState } from '../state.ts';
import { MH } from './mm-state.ts';

export function mmCounters(hv: HypervisorState): Record<string, number> {
  const m = hv.mm;
  const frames = Atomics.load(m, MH.SHARED_FRAMES);
  const mappings = Atomics.load(m, MH.SHARING_MAPPINGS);
  return {
    sharing_shared_frames: frames,
    sharing_mappings: mappings,
    sharing_freed_memory: mappings - frames,
    cow_breaks: Atomics.load(m, MH.COW_BREAKS),
    sharing_pages_scanned: Atomics.load(m, MH.SCANNED),
    sharing_full_scans: Atomics.load(m, MH.FULL_SCANS),
    paged_out: Atomics.load(m, MH.PAGED_OUT),
    page_outs: Atomics.load(m, MH.PAGE_OUTS),
    page_ins: Atomics.load(m, MH.PAGE_INS),
    pod_fills: Atomics.load(m, MH.POD_FILLS),
    pod_oom_crashes: Atomics.load(m, MH.POD_OOM),
  };
}
