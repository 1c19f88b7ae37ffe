/*
 * Asking a guest to suspend, for save and migration: through its suspend event channel if it has
 * one, else through control/shutdown.
 *
 * Xen: tools/libs/light/libxl_dom_suspend.c. libxl__domain_suspend_init reads the guest's
 * device/suspend/event-channel (xs_suspend_evtchn_port) before the save starts, and binds to it
 * (xc_suspend_evtchn_init_exclusive: xenevtchn_bind_interdomain); domain_suspend_callback_common
 * then asks with one xenevtchn_notify, and only a guest without the channel is asked through
 * control/shutdown = "suspend", which costs the guest a xenstore transaction (read the request,
 * write the acknowledgement: four round trips with xenstored) before it can even start. The port
 * is a guest's word, so it is checked, and a port Dom0 cannot bind (not a number, not unbound for
 * Dom0) means the other way, with a line in the log.
 *
 * Not modelled: XEN_DOMCTL_subscribe, with which libxl also has Xen notify the same channel when
 * the domain has suspended, instead of VIRQ_DOM_EXC. Here the toolstack learns of the suspend as
 * of any shutdown (VIRQ_DOM_EXC, then its scan: libxl.ts waitStopped).
 */
import { XS_CONTROL_SHUTDOWN, XS_SUSPEND_EVENT_CHANNEL, domainPath } from '../../../shared/public/io/xenbus.ts';
import { NR_EVTCHN_PORTS } from '../../../shared/public/event_channel.ts';
import type { Kernel } from '../../../shared/kernel/kernel.ts';
import type { XenbusClient } from '../../../shared/kernel/xenbus/client.ts';

/** What asking needs of the toolstack (a part of save-restore.ts's SaveRestoreHost). */
export interface SuspendHost {
  k: Kernel;
  xs: XenbusClient;
  log(line: string): void;
}

export interface SuspendRequest {
  /** How the request will go: "the suspend event channel" or "control/shutdown". */
  readonly via: string;
  /** Ask the guest to suspend (once). */
  request(): Promise<void>;
  /** Let go of the channel (after the suspend, or when the save or migration is given up). */
  close(): void;
  /**
   * The guest is about to be resumed where it is (a failed migration): its new kernel closes the
   * old port and advertises another, so the old number must not be found meanwhile.
   */
  forget(): Promise<void>;
}

/** libxl__domain_suspend_init: find and bind the guest's suspend event channel, if it has one. */
export async function openSuspendRequest(h: SuspendHost, domid: number, who: string): Promise<SuspendRequest> {
  const key = `${domainPath(domid)}/${XS_SUSPEND_EVENT_CHANNEL}`;
  const viaXenstore: SuspendRequest = {
    via: XS_CONTROL_SHUTDOWN,
    request: () => h.xs.write(`${domainPath(domid)}/${XS_CONTROL_SHUTDOWN}`, 'suspend'),
    close: () => undefined,
    forget: () => Promise.resolve(),
  };
  const text = await h.xs.tryRead(key);
  if (text === null || text === '') return viaXenstore;
  const remote = /^[0-9]{1,6}$/.test(text) ? Number(text) : -1;
  let local = -1;
  try {
    if (remote <= 0 || remote >= NR_EVTCHN_PORTS) throw new Error(`"${text}" is not a port`);
    // The guest notifies nothing back on it (see the header): its events are ignored.
    local = h.k.events.bindInterdomain(domid, remote, () => undefined);
  } catch (e) {
    h.log(`xl: ${who}: its suspend event channel (${XS_SUSPEND_EVENT_CHANNEL} = "${text}") cannot be bound ` +
      `(${(e as Error).message}); asking through ${XS_CONTROL_SHUTDOWN}`);
    return viaXenstore;
  }
  let open = true;
  return {
    via: 'the suspend event channel',
    request: () => {
      h.k.events.notify(local);
      return Promise.resolve();
    },
    close: () => {
      if (!open) return;
      open = false;
      h.k.events.close(local);
    },
    forget: async () => {
      await h.xs.rm(key).catch(() => undefined); // gone already: nothing to forget
    },
  };
}
