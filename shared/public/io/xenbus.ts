/*
 * The xenbus device protocol: the states a frontend and its backend publish in XenStore, and the
 * keys and paths every split device shares.
 *
 * Xen: xen/include/public/io/xenbus.h (enum xenbus_state) and docs/misc/xenstore-paths.pandoc
 * (the device directories); the key names are those Linux's xenbus and libxl use.
 *
 * Each end of a device has a directory, and in it a `state` key holding one of these numbers as a
 * decimal string. Each end watches the other's `state` and moves its own in response; the order
 * Linux uses is described in shared/kernel/xenbus/frontend.ts and backend.ts.
 *
 *   frontend dir  /local/domain/<fe>/device/<type>/<devid>/          backend, backend-id, state, ...
 *   backend dir   /local/domain/<be>/backend/<type>/<fe>/<devid>/    frontend, frontend-id, online, state, ...
 *
 * The toolstack creates both, each owned by its end's domain and readable by the other.
 */

export const XenbusState = {
  Unknown: 0,
  Initialising: 1,
  /** The backend has published what it offers (features) and waits for the frontend's details. */
  InitWait: 2,
  /** The frontend has published its ring and event channel. */
  Initialised: 3,
  Connected: 4,
  /** The device is being shut down. */
  Closing: 5,
  Closed: 6,
  Reconfiguring: 7,
  Reconfigured: 8,
} as const;
export type XenbusStateValue = (typeof XenbusState)[keyof typeof XenbusState];

export const XENBUS_STATE_NAMES: readonly string[] = [
  'Unknown', 'Initialising', 'InitWait', 'Initialised', 'Connected', 'Closing', 'Closed',
  'Reconfiguring', 'Reconfigured',
];

/** xenbus_strstate. */
export function xenbusStateName(s: number): string {
  return XENBUS_STATE_NAMES[s] ?? `invalid(${s})`;
}

/* Keys in a device directory. */
export const XS_KEY_STATE = 'state';
export const XS_KEY_BACKEND = 'backend';
export const XS_KEY_BACKEND_ID = 'backend-id';
export const XS_KEY_FRONTEND = 'frontend';
export const XS_KEY_FRONTEND_ID = 'frontend-id';
/** Backend only: "1" while the toolstack wants the device; "0" asks the backend to go away once closed. */
export const XS_KEY_ONLINE = 'online';

/*
 * The control directory (drivers/xen/manage.c, libxl_domain.c), relative to a domain's home: the
 * toolstack asks for a shutdown by writing its kind to control/shutdown ("poweroff", "reboot",
 * "halt"); the guest acknowledges by writing "" back in the same transaction as it reads the
 * request, and then shuts itself down. A guest that handles these requests says so once, at boot,
 * by writing "1" to the feature keys; a toolstack that finds them missing knows the guest would
 * not answer and must be forced (xl shutdown -F).
 */
export const XS_CONTROL_SHUTDOWN = 'control/shutdown';
export const XS_CONTROL_FEATURE_POWEROFF = 'control/feature-poweroff';
export const XS_CONTROL_FEATURE_REBOOT = 'control/feature-reboot';
/** "suspend": quiesce, save what the kernel needs into guest memory, SCHEDOP_shutdown(SHUTDOWN_suspend). */
export const XS_CONTROL_FEATURE_SUSPEND = 'control/feature-suspend';
/**
 * The guest's suspend event channel (XenLinux's setup_suspend_evtchn; libxl's
 * xs_suspend_evtchn_port reads it): a port the guest allocated unbound for Dom0. A toolstack that
 * finds it binds to it and asks for a suspend with one notification instead of control/shutdown's
 * transaction (libxl domain_suspend_callback_common); a guest that does not write it is asked
 * through control/shutdown.
 */
export const XS_SUSPEND_EVENT_CHANNEL = 'device/suspend/event-channel';
export const SHUTDOWN_REQUESTS = ['poweroff', 'reboot', 'halt', 'suspend'] as const;
export type ShutdownRequest = (typeof SHUTDOWN_REQUESTS)[number];

/* Directories, relative to a domain's home /local/domain/<id>. */
export const XS_DIR_DEVICE = 'device';
export const XS_DIR_BACKEND = 'backend';

/** /local/domain/<domid>: every domain's home, and the prefix of its relative paths. */
export function domainPath(domid: number): string {
  return `/local/domain/${domid}`;
}

export function frontendPath(frontDomid: number, type: string, devid: number): string {
  return `${domainPath(frontDomid)}/${XS_DIR_DEVICE}/${type}/${devid}`;
}

export function backendPath(backDomid: number, type: string, frontDomid: number, devid: number): string {
  return `${domainPath(backDomid)}/${XS_DIR_BACKEND}/${type}/${frontDomid}/${devid}`;
}
