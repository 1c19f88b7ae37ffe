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
 * The wait is libxl's too (domain_suspend_common_wait_guest): 60 s for the domain to shut down
 * with reason suspend, then "guest did not suspend, timed out" and the save or migration fails
 * with the guest running where it is (waitSuspended below). A request through control/shutdown
 * that the guest has not acknowledged by then is taken back, as libxl's pvcontrol wait does
 * ("guest didn't acknowledge suspend, cancelling request"), so a late guest does not suspend
 * with no one left to save it. A notification cannot be taken back: a guest asked through its
 * event channel that suspends after the timeout stays suspended, for `xl destroy` or a resume,
 * as with libxl.
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
  /** Take back a request the guest has not acknowledged (control/shutdown still "suspend"). */
  cancel(): Promise<void>;
  /**
   * The guest is about to be resumed where it is (a failed migration): its new kernel closes the
   * old port and advertises another, so the old number must not be found meanwhile.
   */
  forget(): Promise<void>;
}

/** libxl__domain_suspend_init: find and bind the guest's suspend event channel, if it has one. */
export async function openSuspendRequest(h: SuspendHost, domid: number, who: string): Promise<SuspendRequest> {
  const key = `${domainPath(domid)}/${XS_SUSPEND_EVENT_CHANNEL}`;
  const control = `${domainPath(domid)}/${XS_CONTROL_SHUTDOWN}`;
  const viaXenstore: SuspendRequest = {
    via: XS_CONTROL_SHUTDOWN,
    request: () => h.xs.write(control, 'suspend'),
    close: () => undefined,
    cancel: async () => {
      // In one transaction, so an acknowledgement that lands meanwhile is not overwritten.
      await h.xs.transaction(async (t) => {
        if (await h.xs.tryRead(control, t) === 'suspend') await h.xs.write(control, '', t);
      }).catch(() => undefined); // the domain is gone: nothing to take back
    },
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
    cancel: () => Promise.resolve(), // a notification cannot be taken back; nor can it be half-read
    forget: async () => {
      await h.xs.rm(key).catch(() => undefined); // gone already: nothing to forget
    },
  };
}

/** libxl's bound on the guest's suspend (domain_suspend_common_wait_guest: 60*1000 ms). */
export const SUSPEND_TIMEOUT_MS = 60_000;

/**
 * Wait for `stopped` (the toolstack's waitStopped), at most `ms`. On timeout: take the request
 * back if it can be, and fail with libxl's words; the caller's failure path then leaves the guest
 * running where it is.
 */
export async function waitSuspended(sr: SuspendRequest, stopped: Promise<void>, who: string, ms = SUSPEND_TIMEOUT_MS): Promise<void> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timedOut = new Promise<'timeout'>((resolve) => { timer = setTimeout(() => resolve('timeout'), ms); });
  try {
    if (await Promise.race([stopped.then(() => 'stopped' as const), timedOut]) === 'stopped') return;
  } finally {
    clearTimeout(timer);
  }
  await sr.cancel();
  throw new Error(`${who}: guest did not suspend, timed out (${ms / 1000} s after the request through ${sr.via})`);
}
