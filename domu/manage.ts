/*
 * The guest's end of a toolstack-requested shutdown, and the guest powering itself off.
 *
 * Linux: drivers/xen/manage.c (setup_shutdown_watcher, shutdown_handler, do_poweroff,
 * do_reboot) and the machine's power-off paths: xen_reboot() → SCHEDOP_shutdown for a PV guest
 * (arch/x86/xen/enlighten_pv.c), the ACPI PM1a control register and the 0xCF9 reset register for
 * an HVM guest. The protocol is shared/public/io/xenbus.ts's control keys:
 *
 *   at boot    write control/feature-poweroff = 1, feature-reboot = 1 ("I answer these"), then
 *              watch control/shutdown
 *   on change  in one transaction read control/shutdown and, if it holds a request we handle,
 *              write "" back (the acknowledgement the toolstack waits for); retry on EAGAIN
 *   and        allocate a port for Dom0 and write its number to device/suspend/event-channel
 *              (XenLinux's setup_suspend_evtchn, which libxl prefers to control/shutdown when
 *              it finds it): a notification on it is a "suspend" request, no transaction needed
 *   then       "poweroff" and "halt": an orderly power-off; "reboot": an orderly restart;
 *              "suspend": do_suspend, for save and migration (domu/resume.ts);
 *              anything else is ignored with a message, as Linux does
 *
 * The orderly part (Linux's orderly_poweroff: stop user space, sync and release the disks) is
 * the kernel's (domu/kernel.ts): it is told through the callback and calls machineOff() last.
 * The lecture's Ring 0 point is here: the guest "powers off the machine", the hypervisor traps it,
 * and only this domain stops.
 */
import type { Kernel } from '../shared/kernel/kernel.ts';
import type { XenbusClient } from '../shared/kernel/xenbus/client.ts';
import type { CmdlineGuestType } from '../shared/public/cmdline.ts';
import {
  SHUTDOWN_REQUESTS, XS_CONTROL_FEATURE_POWEROFF, XS_CONTROL_FEATURE_REBOOT, XS_CONTROL_FEATURE_SUSPEND, XS_CONTROL_SHUTDOWN,
  XS_SUSPEND_EVENT_CHANNEL, type ShutdownRequest,
} from '../shared/public/io/xenbus.ts';
import {
  ACPI_PM1A_CNT, ACPI_SLP_EN, ACPI_SLP_TYP_S5, RESET_CONTROL, RESET_CONTROL_RST_CPU,
} from '../shared/public/platform.ts';

/**
 * setup_shutdown_watcher and setup_suspend_evtchn: advertise, then call `onRequest` once, for the
 * first request we handle, saying where it came from.
 */
export async function watchShutdown(k: Kernel, xs: XenbusClient, onRequest: (req: ShutdownRequest, via: string) => void): Promise<void> {
  await xs.write(XS_CONTROL_FEATURE_POWEROFF, '1');
  await xs.write(XS_CONTROL_FEATURE_REBOOT, '1');
  await xs.write(XS_CONTROL_FEATURE_SUSPEND, '1');
  let shuttingDown = false;
  await xs.watch(XS_CONTROL_SHUTDOWN, async () => {
    if (shuttingDown) return;
    const req = await xs.transaction(async (t) => {
      const s = await xs.tryRead(XS_CONTROL_SHUTDOWN, t);
      if (s === null || s === '') return null; // the watch fires once when set, and for our own ack
      // Only acknowledge what we are prepared to handle (manage.c does the same).
      if (!(SHUTDOWN_REQUESTS as readonly string[]).includes(s)) return s;
      await xs.write(XS_CONTROL_SHUTDOWN, '', t);
      return s;
    });
    if (req === null) return;
    if (!(SHUTDOWN_REQUESTS as readonly string[]).includes(req)) {
      k.log(`Ignoring shutdown request: ${req}`);
      return;
    }
    shuttingDown = true;
    onRequest(req as ShutdownRequest, XS_CONTROL_SHUTDOWN);
  });
  // The suspend event channel: a fresh port at every boot, a resumed one included (the old
  // kernel's ports were closed with it), advertised once the handler is in place. Not waited
  // for: a resumed kernel's devices reconnect behind this, and a round trip here would delay
  // them (xenstored answers in order; until the key is there the toolstack uses control/shutdown).
  const port = k.events.allocUnbound(0, () => {
    if (shuttingDown) return;
    shuttingDown = true;
    onRequest('suspend', 'the suspend event channel');
  });
  void xs.write(XS_SUSPEND_EVENT_CHANNEL, String(port)).catch((e: unknown) => {
    k.log(`xenbus: cannot advertise the suspend event channel (${(e as Error).message}); suspend requests come through ${XS_CONTROL_SHUTDOWN}`);
  });
}

/**
 * The last thing an orderly shutdown does: "switch the machine off". Never returns: the
 * hypervisor stops this domain at the trap or the hypercall.
 */
export function machineOff(k: Kernel, type: CmdlineGuestType, reboot: boolean): never {
  if (type === 'hvm') {
    // What ACPI's S5 and the PIIX reset register do on a PC; both trap (hypervisor/trap.ts).
    if (reboot) k.cpu.outb(RESET_CONTROL, RESET_CONTROL_RST_CPU | 0x2);
    else k.cpu.outw(ACPI_PM1A_CNT, ACPI_SLP_TYP_S5 | ACPI_SLP_EN);
    return k.cpu.cli_hlt(); // not reached: the write above ends the domain
  }
  return k.hypercall.sched_shutdown(reboot ? 'reboot' : 'poweroff');
}
