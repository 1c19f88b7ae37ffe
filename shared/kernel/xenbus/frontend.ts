/*
 * The frontend's half of the xenbus handshake, for any device type.
 *
 * Xen/Linux: drivers/xen/xenbus/xenbus_probe_frontend.c (the "device" bus: watch
 * device/<type>, probe each new directory) and the otherend_changed callback every Linux
 * frontend writes the same way (xen-blkfront.c's blkback_changed, netfront's netback_changed),
 * reduced to three driver hooks:
 *
 *   publish(dev, t)  talk_to_blkback: make the ring and event channel, write their keys within
 *                    transaction t (called again if the commit meets EAGAIN)
 *   connect(dev)     blkfront_connect: the backend is Connected; read what it published, start
 *   close(dev)       blkfront_closing: stop using the device, free what publish made
 *
 * The order, as Linux frontends follow it (backend state → what the frontend does):
 *
 *   InitWait    if still Initialising: publish, then Initialised
 *   Connected   if not yet Initialised (the backend skipped InitWait): publish first;
 *               then connect, then Connected (a repeated Connected changes nothing)
 *   Closing     close, then Closed (unless already Closed)
 *   Closed      the same, if not already Closed
 *   others      nothing
 *
 * Shortcut tolerated in the other direction: a driver with `connectEarly` publishes and goes
 * Initialised at probe, before the backend reaches InitWait; the backend's state machine
 * (./backend.ts) accepts Initialised at any time.
 *
 * netfront's way (`connectOnInitWait`): on the backend's InitWait it publishes, connects and goes
 * straight to Connected, never Initialised (xen-netfront.c netback_changed → xennet_connect);
 * netback connects when it sees that, and its own Connected then changes nothing here.
 */
import { XS_DIR_DEVICE, XenbusState, type XenbusStateValue } from '../../public/io/xenbus.ts';
import type { XenbusClient, XsWatch } from './client.ts';
import { XenbusDevice, watchForDevices } from './device.ts';

export interface FrontendDriver {
  /** Publish at probe instead of waiting for the backend's InitWait. */
  readonly connectEarly?: boolean;
  /** On InitWait: publish, connect and go Connected at once (netfront). */
  readonly connectOnInitWait?: boolean;
  publish(dev: XenbusDevice, t: number): Promise<void>;
  connect(dev: XenbusDevice): Promise<void>;
  close(dev: XenbusDevice): Promise<void>;
}

export interface FrontendOptions {
  /** Told of every state this frontend enters (after it is written). */
  onState?: (dev: XenbusDevice, state: XenbusStateValue) => void;
}

export class XenbusFrontend {
  readonly dev: XenbusDevice;
  private closed = false;

  constructor(xs: XenbusClient, nodename: string, private readonly driver: FrontendDriver, private readonly opts: FrontendOptions = {}) {
    this.dev = new XenbusDevice(xs, nodename, 'frontend');
  }

  /** xenbus_dev_probe: find the backend, maybe connect early, then follow the backend's state. */
  async probe(): Promise<boolean> {
    if (!(await this.dev.readOtherend())) return false;
    if (this.driver.connectEarly) await this.publish();
    await this.dev.watchOtherend((s) => this.backendChanged(s));
    return true;
  }

  /** talk_to_blkback: publish in a transaction, then Initialised (netfront: connect, Connected). */
  private async publish(): Promise<void> {
    await this.dev.xs.transaction((t) => this.driver.publish(this.dev, t));
    if (this.driver.connectOnInitWait) {
      await this.driver.connect(this.dev);
      await this.enter(XenbusState.Connected);
      return;
    }
    await this.enter(XenbusState.Initialised);
  }

  private async enter(state: XenbusStateValue): Promise<void> {
    if (await this.dev.switchState(state)) this.opts.onState?.(this.dev, state);
  }

  /** blkback_changed. Runs once per backend state change, in order (one watch, one queue). */
  async backendChanged(backend: XenbusStateValue): Promise<void> {
    const dev = this.dev;
    switch (backend) {
      case XenbusState.InitWait:
        if (dev.state === XenbusState.Initialising) await this.publish();
        break;
      case XenbusState.Connected:
        if (dev.state === XenbusState.Connected || this.closed) break;
        if (dev.state !== XenbusState.Initialised) {
          await this.publish();
          if (this.driver.connectOnInitWait) break;
        }
        await this.driver.connect(dev);
        await this.enter(XenbusState.Connected);
        break;
      case XenbusState.Closed:
      case XenbusState.Closing:
        if (dev.state === XenbusState.Closed) break;
        this.closed = true;
        await this.driver.close(dev);
        await this.enter(XenbusState.Closed);
        await dev.unwatchOtherend();
        break;
      default:
        break;
    }
  }

  /** The guest wants the device gone (unplug, shutdown): Closing; the backend's Closing then brings us to Closed. */
  async shutdown(): Promise<void> {
    if (this.dev.state === XenbusState.Closed || this.dev.state === XenbusState.Closing) return;
    await this.enter(XenbusState.Closing);
  }
}

/**
 * xenbus_register_frontend: probe every device of `type` that appears under our device/
 * directory, with a driver made for it.
 */
export function registerFrontend(
  xs: XenbusClient, type: string, makeDriver: (nodename: string) => FrontendDriver,
  opts: FrontendOptions & { onProbe?: (fe: XenbusFrontend) => void } = {},
): Promise<XsWatch> {
  return watchForDevices(xs, `${XS_DIR_DEVICE}/${type}`, 1, async (nodename) => {
    const fe = new XenbusFrontend(xs, nodename, makeDriver(nodename), opts);
    if (await fe.probe()) opts.onProbe?.(fe);
  });
}
