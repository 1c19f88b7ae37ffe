/*
 * Asking a guest to shut down or reboot, as `xl shutdown` / `xl reboot` do.
 *
 * Xen: tools/libs/light/libxl_domain.c (libxl_domain_shutdown / libxl_domain_reboot →
 * libxl__domain_pvcontrol: write control/shutdown, after checking control/feature-* for an HVM
 * guest), and xl's -F fallback (tools/xl/xl_vmcontrol.c), which here is SCHEDOP_remote_shutdown.
 * What happens after the guest has shut down is libxl.ts's death watch.
 *
 * Apart from libxl.ts because it is one request with its own rules (who is asked, when it is
 * refused), not part of the domain records libxl.ts keeps.
 */
import type { XenbusClient } from '../../shared/kernel/xenbus/client.ts';
import type { Hypercalls } from '../../shared/public/hypercall.ts';
import { XS_CONTROL_FEATURE_POWEROFF, XS_CONTROL_FEATURE_REBOOT, XS_CONTROL_SHUTDOWN, domainPath } from '../../shared/public/io/xenbus.ts';
import { errnoName, type ShutdownReason } from '../../shared/public/xen.ts';
import { XlError } from './xl-error.ts';

/**
 * xl shutdown / xl reboot: ask the guest through control/shutdown (libxl_domain_shutdown). As in
 * libxl, a PV guest is always asked (its kernel has the xenbus driver; a request written before
 * it looks is seen when it sets its watch), while an HVM guest is asked only once its PV drivers
 * said they answer (control/feature-*): otherwise it is refused, unless `force`, which shuts the
 * domain down from outside (SCHEDOP_remote_shutdown; Xen's -F sends an ACPI power-button event
 * instead, which ringvisor does not model).
 */
export async function requestShutdown(
  hc: Hypercalls, xs: XenbusClient, domid: number, kind: 'poweroff' | 'reboot', force: boolean, hvm: boolean, log: (line: string) => void,
): Promise<'requested' | 'forced'> {
  if (domid === 0) throw new XlError('domain', 'Domain-0 is shut down by stopping the host (ringvisor host: Ctrl-C)');
  const home = domainPath(domid);
  const feature = await xs.tryRead(`${home}/${kind === 'reboot' ? XS_CONTROL_FEATURE_REBOOT : XS_CONTROL_FEATURE_POWEROFF}`);
  if (feature === '1' || !hvm) {
    await xs.write(`${home}/${XS_CONTROL_SHUTDOWN}`, kind);
    log(`xl: asked domain ${domid} to ${kind} (control/shutdown)`);
    return 'requested';
  }
  if (!force) {
    throw new XlError('failed', `domain ${domid} is an HVM guest whose PV drivers have not enabled PV control (no ` +
      `${kind === 'reboot' ? 'feature-reboot' : 'feature-poweroff'} in its control directory), so it would not answer; ` +
      'use -F to shut it down from outside');
  }
  const rc = await hc.sched_remote_shutdown(domid, kind as ShutdownReason);
  if (rc < 0) throw new XlError('failed', `cannot shut down domain ${domid}: ${errnoName(rc)}`);
  return 'forced';
}
