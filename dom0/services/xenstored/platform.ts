/*
 * xenstored's reach into the hypervisor, through Dom0's kernel: mapping a guest's store page and
 * binding its store event channel.
 *
 * Xen: map_interface (xengnttab_map_grant_ref of GNTTAB_RESERVED_XENSTORE) and
 * xenevtchn_bind_interdomain in tools/xenstored/domain.c. Like C xenstored, it ignores the gfn
 * XS_INTRODUCE carries and maps the reserved grant the domain builder seeded for Dom0; the page
 * is the same one.
 */
import type { Kernel } from '../../../shared/kernel/kernel.ts';
import { GNTTAB_RESERVED_XENSTORE } from '../../../shared/public/grant_table.ts';
import { mapForeignPage } from '../../lib/foreign-page.ts';
import type { XenstoredPlatform } from './core.ts';

export function kernelPlatform(k: Kernel): XenstoredPlatform {
  return {
    tracer: k.hypercall,
    attach(domid, _gfn, port, onEvent) {
      const page = mapForeignPage(k, domid, GNTTAB_RESERVED_XENSTORE);
      if (page === null) return null;
      const local = k.hypercall.evtchn_bind_interdomain(domid, port);
      if (local < 0) {
        page.unmap();
        return null;
      }
      k.events.bind(local, onEvent);
      return {
        page: page.words,
        notify: () => k.events.notify(local),
        detach() {
          k.events.close(local);
          page.unmap();
        },
      };
    },
  };
}
