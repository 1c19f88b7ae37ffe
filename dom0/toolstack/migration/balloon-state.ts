/*
 * A saved guest's memory as its balloon and populate-on-demand left it: what the saver sends for
 * pages that have no RAM behind them, and what the restorer does with them.
 *
 * Xen: tools/libs/guest/xg_sr_save.c asks XEN_DOMCTL_getpageframeinfo3 for each batch's types and
 * sends a ballooned-out pfn as XTAB, with no contents; xg_sr_restore.c populates only the pfns
 * that carry a type needing RAM, so a hole stays a hole. libxl saves the domain's configuration
 * as it is now (libxl__domain_save: the target_memkb that xl mem-set last set, kept in the
 * domain's JSON config), and the restore sets that target again, so the guest's balloon finds
 * the size it had: while it builds the domain, before any page goes in (a migration's target does
 * so; a save file's restore sets it after the pages, with the holes). ringvisor: hypervisor/mm/pfinfo.ts gives the types (XALLOC for a PoD entry
 * never touched: its contents are zeros and are not sent); the restorer's new domain is all PoD,
 * so an XALLOC page needs nothing, and each final hole is given back with decrease_reservation
 * on the new domain. Which gfns the guest ballooned out it knows itself, from its own memory
 * (domu/balloon/balloon.ts's saved list), as Linux's balloon keeps its page list in kernel memory.
 *
 * A gfn may be named more than once in a migration stream (a later round resends what was
 * dirtied): the last record that names it says what it is.
 */
import type { Kernel } from '../../../shared/kernel/kernel.ts';
import type { XenbusClient } from '../../../shared/kernel/xenbus/client.ts';
import { domainPath } from '../../../shared/public/io/xenbus.ts';
import { LIBXL_MAXMEM_CONSTANT_KIB, XS_MEMORY_TARGET } from '../../../shared/public/memory.ts';
import { MAX_BATCH_SIZE, XEN_DOMCTL_PFINFO_NOTAB } from '../../../shared/public/migration-stream.ts';
import { errnoName } from '../../../shared/public/xen.ts';
import type { PageBatch, SavedImage } from './stream-read.ts';

/** getpageframeinfo3 for one batch; returns the gfns whose contents must be sent. */
export function batchTypes(k: Kernel, domid: number, gfns: readonly number[], types: Int32Array): number[] {
  const rc = k.hypercall.domctl_getpageframeinfo3(domid, gfns, types, gfns.length);
  if (rc < 0) throw new Error(`getpageframeinfo3 of domain ${domid}: ${errnoName(rc)}`);
  return gfns.filter((_, i) => types[i] === XEN_DOMCTL_PFINFO_NOTAB);
}

/** The balloon target to save with the config (memory/target, KiB), or undefined if it has none. */
export async function savedTargetKiB(xs: XenbusClient, domid: number): Promise<number | undefined> {
  const v = Number(await xs.tryRead(`${domainPath(domid)}/${XS_MEMORY_TARGET}`));
  return Number.isSafeInteger(v) && v > 0 ? v : undefined;
}

/**
 * The gfns a stream leaves as holes, kept as its PAGE_DATA records are read: a migration's
 * receiver notes each batch as it comes, so that at the stream's END (in the blackout) the holes
 * are known without looking at every batch again.
 */
export class StreamHoles {
  private readonly holes = new Set<number>();

  note(b: Pick<PageBatch, 'gfns' | 'holes' | 'pod'>): void {
    if (this.holes.size > 0) {
      for (const g of b.gfns) this.holes.delete(g);
      for (const g of b.pod) this.holes.delete(g);
    }
    for (const g of b.holes) this.holes.add(g);
  }

  list(): number[] {
    return [...this.holes];
  }
}

/** The gfns a whole image leaves as holes: named XTAB by the last record that names them. */
export function finalHoles(img: SavedImage): number[] {
  const t = new StreamHoles();
  for (const b of img.batches) t.note(b);
  return t.list();
}

/**
 * Before the restored guest runs: its holes given back, and its balloon target as it was saved.
 * `fresh`: the builder's pages in the new domain, never holes.
 */
export async function restoreBalloonState(
  k: Kernel, xs: XenbusClient, domid: number, saved: { holes: readonly number[]; targetKiB: number | undefined }, fresh: ReadonlySet<number>,
): Promise<{ holes: number; targetKiB: number | null }> {
  const holes = restoreHoles(k, domid, saved.holes, fresh);
  return { holes, targetKiB: await restoreBalloonTarget(k, xs, domid, saved.targetKiB) };
}

/**
 * The stream's final holes given back (decrease_reservation on the new domain), once every
 * record is in: a gfn is a hole if the last record naming it says so. Returns how many.
 */
export function restoreHoles(k: Kernel, domid: number, saved: readonly number[], fresh: ReadonlySet<number>): number {
  const holes = saved.filter((g) => !fresh.has(g));
  for (let i = 0; i < holes.length; i += MAX_BATCH_SIZE) {
    const batch = holes.slice(i, i + MAX_BATCH_SIZE);
    const done = k.hypercall.memory_decrease_reservation(batch, batch.length, domid);
    if (done !== batch.length) throw new Error(`leaving gfn ${batch[Math.max(0, done)]} of the restored domain ${domid} a hole: ${done < 0 ? errnoName(done) : 'refused'}`);
  }
  return holes.length;
}

/**
 * The balloon target as saved (the config's), set on the new domain. It limits only what the
 * guest's balloon may populate once it runs (d->max_pages) and what getdomaininfo counts, never
 * the restorer's writes, so a migration's receiver sets it as libxl does, while it builds the
 * domain (libxl__build_pre's max_mem, build_post's memory/target), not at the stream's END.
 */
export async function restoreBalloonTarget(k: Kernel, xs: XenbusClient, domid: number, target: number | undefined): Promise<number | null> {
  if (target === undefined) return null;
  // What libxl_set_memory_target does (../mem.ts's memSet, which this file cannot import without
  // an import circle through libxl.ts): max_mem with the slack, the PoD target, memory/target.
  // All three asked at once: the two domctls reach the control thread in the order asked, and
  // memory/target is xenstored's.
  const [maxRc, podRc] = await Promise.all([
    k.hypercall.domctl_max_mem(domid, target + LIBXL_MAXMEM_CONSTANT_KIB), k.hypercall.domctl_set_pod_target(domid, target),
    xs.write(`${domainPath(domid)}/${XS_MEMORY_TARGET}`, String(target)),
  ]);
  for (const rc of [maxRc, podRc]) {
    if (rc < 0) throw new Error(`setting the restored domain ${domid}'s balloon target: ${errnoName(rc)}`);
  }
  return target;
}
