/*
 * The smallest toolstack: for harnesses that create domains straight on the Host, with no Dom0
 * toolstack behind them, it does what xl does when one of its domains shuts down: on_poweroff,
 * on_reboot, on_crash from the domain's config (destroy, restart as a new domain, or preserve).
 *
 * Xen: xl's per-domain child waiting for the domain's death (tools/xl/xl_vmcontrol.c,
 * handle_domain_death). The hypervisor only records a shutdown (hypervisor/host.ts); this is one
 * of the places that act on it, beside Dom0's own (dom0/toolstack/libxl.ts for `xl`'s VMs,
 * dom0/toolstack/control.ts for the domains a harness has Dom0 create). Dom0 itself is the
 * host's business, not this.
 *
 * Events: 'restarted' {from, to, name} when a domain came back under a new id.
 */
import { EventEmitter } from 'node:events';
import type { Host, ShutdownEvent } from '../hypervisor/host.ts';
import { shutdownAction } from '../shared/public/hypercall.ts';

export function bareToolstack(host: Host): EventEmitter {
  const events = new EventEmitter();
  host.on('shutdown', (e: ShutdownEvent) => {
    const config = host.domainConfig(e.domid);
    if (e.domid === 0 || config === null) return;
    const action = shutdownAction(config, e.reason);
    if (action === 'preserve') return;
    void (async () => {
      await host.destroy(e.domid);
      if (action !== 'restart' || host.isClosing) return;
      const to = await host.createDomain(config);
      events.emit('restarted', { from: e.domid, to, name: config.name });
    })().catch((err: unknown) => { if (!host.isClosing) events.emit('error', err); }); // closing: the host destroys everything anyway
  });
  return events;
}
