/*
 * Mapping one page another domain granted us, for as long as we serve it.
 *
 * Xen/Linux: xengnttab_map_grant_ref / xengnttab_unmap (tools/libs/gnttab), which xenstored and
 * xenconsoled use on the reserved grants GNTTAB_RESERVED_XENSTORE and GNTTAB_RESERVED_CONSOLE,
 * and xenbus_map_ring_valloc in a kernel backend. The mapping goes into a hole of Dom0's physmap
 * (k.pages.allocHole), writable, and stays until unmap(), which gives the hole back.
 */
import type { Kernel } from '../../shared/kernel/kernel.ts';
import { GNTMAP_host_map, GNTST_okay, type GnttabMapGrantRef } from '../../shared/public/grant_table.ts';

export interface ForeignPage {
  gfn: number;
  words: Int32Array;
  unmap(): void;
}

/** Map grant `ref` of `domid` writable; null (and nothing held) if the hypervisor refuses. */
export function mapForeignPage(k: Kernel, domid: number, ref: number): ForeignPage | null {
  const gfn = k.pages.allocHole();
  const op: GnttabMapGrantRef = { host_addr: gfn, flags: GNTMAP_host_map, ref, dom: domid, status: 0, handle: -1 };
  k.hypercall.gnttab_map_grant_ref(op);
  if (op.status !== GNTST_okay) {
    k.pages.releaseHole(gfn);
    return null;
  }
  let mapped = true;
  return {
    gfn,
    words: k.memory.pageWords(gfn, true),
    unmap() {
      if (!mapped) return;
      mapped = false;
      const un = { host_addr: gfn, handle: op.handle, status: 0 };
      k.hypercall.gnttab_unmap_grant_ref(un);
      // A hole still holding a mapping must not be handed out again.
      if (un.status === GNTST_okay) k.pages.releaseHole(gfn);
    },
  };
}
