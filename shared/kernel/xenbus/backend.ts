/*
 * The backend's half of the xenbus handshake, for any device type.
 *
 * Xen/Linux: drivers/xen/xenbus/xenbus_probe_backend.c (the "backend" bus: watch
 * backend/<type>, probe each new <frontend-id>/<devid> directory) and the frontend_changed
 * callback of Linux's backends (xen-blkback/xenbus.c, netback's xenbus.c), reduced to driver
 * hooks:
 *
 *   probe(dev)       publish what the backend offers (feature-* keys), before InitWait
 *   connect(dev)     connect_ring + connect: read the frontend's keys, map its ring, bind its
 *                    event channel, publish the device's properties
 *   disconnect(dev)  xen_blkif_disconnect: unbind and unmap; must be safe to call twice
 *   remove(dev)      the device is gone for good (device_unregister)
 *
 * The order, as blkback follows it (frontend state → what the backend does):
 *
 *   at probe      probe, then InitWait
 *   Initialising  if we are Closed (the frontend is reconnecting): InitWait again
 *   Initialised,
 *   Connected     unless already Connected: disconnect (idempotent), connect, then Connected
 *   Closing       Closing
 *   Closed        disconnect, then Closed; if the toolstack has set online = 0, remove
 *   Unknown       (the frontend's directory is gone) remove
 *   after remove  Closed, as xenbus_dev_remove leaves it
 *
 * A driver hook that fails (a frontend's bad keys, a ring that cannot be mapped, a port that cannot
 * be bound) is xenbus_dev_fatal: the driver has written why in the device's `error` node and torn
 * down what it had set up; here the device goes Closing and the failure is reported once, on one
 * line (onError, or a console line): a frontend can make a backend fail, never throw out of the
 * watch that runs it, and never print a stack trace.
 *
 * A frontend that goes Initialised before we reach InitWait is served all the same; with
 * `skipInitWait` this backend never publishes InitWait and waits for the frontend to go first
 * (the other shortcut Linux frontends tolerate).
 *
 * netback differs (`connectOn: 'connected'`): netfront goes from Initialising straight to
 * Connected, and Linux's netback ignores Initialised and connects when it sees Connected
 * (xen-netback/xenbus.c frontend_changed). Its connect() also waits for the hotplug step before
 * it returns, so Connected is reported only once `hotplug-status` says the vif is on its bridge.
 */
import {
  XS_DIR_BACKEND, XS_KEY_ONLINE, XenbusState, type XenbusStateValue,
} from '../../public/io/xenbus.ts';
import type { XenbusClient, XsWatch } from './client.ts';
import { XenbusDevice, watchForDevices } from './device.ts';

export interface BackendDriver {
  probe(dev: XenbusDevice): Promise<void>;
  connect(dev: XenbusDevice): Promise<void>;
  disconnect(dev: XenbusDevice): Promise<void>;
  remove?(dev: XenbusDevice): Promise<void>;
}

export interface BackendOptions {
  /** Stay Initialising at probe instead of announcing InitWait. */
  skipInitWait?: boolean;
  onState?: (dev: XenbusDevice, state: XenbusStateValue) => void;
  /** The device was unregistered. */
  onRemove?: (dev: XenbusDevice) => void;
  /** Which frontend state makes this backend connect (default: Initialised or Connected). */
  connectOn?: 'initialised' | 'connected';
  /**
   * Unmap and unbind before answering the frontend's Closing with Closing (netback's
   * set_backend_state walks Connected → Closing through backend_disconnect), so a frontend that
   * frees its ring pages on seeing Closing frees pages nobody maps any more.
   */
  disconnectOnClosing?: boolean;
  /** A driver hook failed (default: one console line, no stack). */
  onError?: (dev: XenbusDevice, e: unknown) => void;
}

function oneLine(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

export class XenbusBackend {
  readonly dev: XenbusDevice;
  private removed = false;

  constructor(xs: XenbusClient, nodename: string, private readonly driver: BackendDriver, private readonly opts: BackendOptions = {}) {
    this.dev = new XenbusDevice(xs, nodename, 'backend');
  }

  private report(e: unknown): void {
    if (this.opts.onError) this.opts.onError(this.dev, e);
    else console.error(`xenbus ${this.dev.nodename}: ${oneLine(e)}`);
  }

  async probe(): Promise<boolean> {
    if (!(await this.dev.readOtherend())) return false;
    try {
      await this.driver.probe(this.dev);
    } catch (e) {
      this.report(e);
      await this.dev.switchState(XenbusState.Closing).catch(() => false);
      return false;
    }
    if (!this.opts.skipInitWait) await this.enter(XenbusState.InitWait);
    await this.dev.watchOtherend((s) => this.frontendChanged(s));
    return true;
  }

  private async enter(state: XenbusStateValue): Promise<boolean> {
    const ok = await this.dev.switchState(state);
    if (ok) this.opts.onState?.(this.dev, state);
    return ok;
  }

  /** frontend_changed. Runs once per frontend state change, in order. */
  async frontendChanged(frontend: XenbusStateValue): Promise<void> {
    if (this.removed) return;
    try {
      await this.follow(frontend);
    } catch (e) {
      this.report(e);
      if (this.removed) return;
      await this.driver.disconnect(this.dev).catch((e2) => this.report(e2));
      await this.enter(XenbusState.Closing).catch(() => false);
    }
  }

  private async follow(frontend: XenbusStateValue): Promise<void> {
    const dev = this.dev;
    switch (frontend) {
      case XenbusState.Initialising:
        if (dev.state === XenbusState.Closed) await this.enter(XenbusState.InitWait);
        break;
      case XenbusState.Initialised:
      case XenbusState.Connected:
        if (dev.state === XenbusState.Connected) break;
        if (frontend === XenbusState.Initialised && this.opts.connectOn === 'connected') break;
        await this.driver.disconnect(dev);
        await this.driver.connect(dev);
        await this.enter(XenbusState.Connected);
        break;
      case XenbusState.Closing:
        if (this.opts.disconnectOnClosing) await this.driver.disconnect(dev);
        await this.enter(XenbusState.Closing);
        break;
      case XenbusState.Closed:
        await this.driver.disconnect(dev);
        await this.enter(XenbusState.Closed);
        if ((await dev.xs.tryRead(`${dev.nodename}/${XS_KEY_ONLINE}`)) === '1') break;
        await this.unregister();
        break;
      case XenbusState.Unknown:
        await this.driver.disconnect(dev);
        await this.unregister();
        break;
      default:
        break;
    }
  }

  /**
   * The driver is unbound from this device while it runs (Linux: echo the device to the driver's
   * sysfs `unbind`; or its process or domain died and the toolstack cleans up after it): disconnect
   * (unmap and unbind whatever the frontend gave), then remove, ending in Closed without passing
   * through Closing, which is how a frontend tells a backend that died from one that is closing
   * (./frontend.ts). A new driver may then probe the same directory (probeBackend).
   */
  async unbind(): Promise<void> {
    if (this.removed) return;
    await this.driver.disconnect(this.dev).catch((e) => this.report(e));
    await this.unregister();
  }

  /**
   * device_unregister. Like Linux's xenbus_dev_remove, the device ends in Closed (if its directory
   * is still there): a toolstack removing a dead domain's devices waits for that before it deletes
   * the backend directory (libxl__devices_destroy), so it knows the rings and grants are let go.
   */
  private async unregister(): Promise<void> {
    if (this.removed) return;
    this.removed = true;
    await this.dev.unwatchOtherend();
    await this.driver.remove?.(this.dev);
    await this.dev.switchState(XenbusState.Closed);
    this.opts.onRemove?.(this.dev);
  }
}

/**
 * Probe one backend directory with a fresh driver (Linux: bind, after an unbind): the device
 * starts over from InitWait, and the frontend, if it kept the device, reconnects to it.
 */
export async function probeBackend(
  xs: XenbusClient, nodename: string, driver: BackendDriver, opts: BackendOptions = {},
): Promise<XenbusBackend | null> {
  const be = new XenbusBackend(xs, nodename, driver, opts);
  return (await be.probe()) ? be : null;
}

/**
 * xenbus_register_backend: probe every device of `type` the toolstack creates under our
 * backend/ directory (backend/<type>/<frontend-id>/<devid>).
 */
export function registerBackend(
  xs: XenbusClient, type: string, makeDriver: (nodename: string) => BackendDriver,
  opts: BackendOptions & { onProbe?: (be: XenbusBackend) => void } = {},
): Promise<XsWatch> {
  return watchForDevices(xs, `${XS_DIR_BACKEND}/${type}`, 2, async (nodename) => {
    const be = new XenbusBackend(xs, nodename, makeDriver(nodename), opts);
    if (await be.probe()) opts.onProbe?.(be);
  });
}
