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
 *   Closed      the same, if not already Closed; but see "A backend that dies" below
 *   others      nothing
 *
 * A backend that dies. An orderly end always passes through Closing (the toolstack's removal, the
 * frontend's own shutdown, a backend's xenbus_dev_fatal), so a backend that goes to Closed while we
 * are Initialised or Connected has gone without asking: its driver was unbound, it crashed, or the
 * driver domain it ran in died. A driver with `suspend` keeps the device: suspend(dev) takes what
 * was answered, keeps every request that was not, and frees the ring, grants and port; we go back
 * to Initialising (as xenbus does for a resumed device, xenbus_dev_resume), and the next backend
 * that reaches InitWait in that directory meets us there, the handshake runs again, and the driver's
 * connect() re-issues what was kept (xen-blkfront.c blkfront_resume + blkif_recover). A driver
 * without it closes as before. While suspended we also watch our own `backend` key: when the
 * toolstack hands the device to a new backend domain (a driver domain restarted under a new
 * domid: dom0/toolstack/driver-domain.ts), we re-read `backend` and `backend-id` and follow the new
 * backend's state instead, as xenbus_dev_resume's talk_to_otherend does after a migration; the
 * driver's next publish grants to the new domain.
 *
 * Shortcut tolerated in the other direction: a driver with `connectEarly` publishes and goes
 * Initialised at probe, before the backend reaches InitWait; the backend's state machine
 * (./backend.ts) accepts Initialised at any time.
 *
 * netfront's way (`connectOnInitWait`): on the backend's InitWait it publishes, connects and goes
 * straight to Connected, never Initialised (xen-netfront.c netback_changed → xennet_connect);
 * netback connects when it sees that, and its own Connected then changes nothing here. A driver
 * with `publishWrites` writes its keys and Connected in one transaction, as mini-os netfront does
 * (publishConnected), and one with `probing` / `otherendKnown` sends the reads it will need beside
 * probe's own, and the transaction it will write in is started beside the WATCH on the backend's
 * state (startEarly): from probe to Connected, with the backend waiting in InitWait, five
 * sequential round trips (test/xenbus-rounds.test.ts), the path a migrated guest's vif takes after
 * the unpause.
 */
import { XS_DIR_DEVICE, XS_KEY_BACKEND, XS_KEY_STATE, XenbusState, type XenbusStateValue } from '../../public/io/xenbus.ts';
import type { XenbusClient, XsWatch } from './client.ts';
import { XenbusDevice, watchForDevices } from './device.ts';

export interface FrontendDriver {
  /** Publish at probe instead of waiting for the backend's InitWait. */
  readonly connectEarly?: boolean;
  /** On InitWait: publish, connect and go Connected at once (netfront). */
  readonly connectOnInitWait?: boolean;
  publish(dev: XenbusDevice, t: number): Promise<void>;
  /**
   * publish, for a driver that writes its keys and its Connected state in one transaction
   * (connectOnInitWait; mini-os netfront's way): make the rings, awaiting what must be read first,
   * then send every write within `t` at once and hand back their replies unawaited.
   */
  publishWrites?(dev: XenbusDevice, t: number): Promise<{ writes: Promise<void> }>;
  /** Probe begins: the driver may send the reads it will need from its own directory now, beside probe's. */
  probing?(dev: XenbusDevice): void;
  /**
   * The other end is known: the driver may send the reads it will need from it now, behind the
   * watch on its state and that state's first read (`state`). What it reads is no older than that
   * state, so it holds what the backend published before it reached it (InitWait: its features);
   * read earlier than InitWait, it is stale (a backend not probed yet, a hot-plugged device).
   */
  otherendKnown?(dev: XenbusDevice, state: Promise<XenbusStateValue>): void;
  connect(dev: XenbusDevice): Promise<void>;
  close(dev: XenbusDevice): Promise<void>;
  /** The backend died (see the header): keep unanswered requests, free the rest; reconnect later. */
  suspend?(dev: XenbusDevice): Promise<void>;
}

export interface FrontendOptions {
  /** Told of every state this frontend enters (after it is written). */
  onState?: (dev: XenbusDevice, state: XenbusStateValue) => void;
}

export class XenbusFrontend {
  readonly dev: XenbusDevice;
  private closed = false;
  /** Suspended after a backend died, until the next one connects. */
  private suspended = false;
  /** While suspended: our own `backend` key, which the toolstack rewrites to move us to a new backend. */
  private backendKey: XsWatch | null = null;

  constructor(xs: XenbusClient, nodename: string, private readonly driver: FrontendDriver, private readonly opts: FrontendOptions = {}) {
    this.dev = new XenbusDevice(xs, nodename, 'frontend');
  }

  /** xenbus_dev_probe: find the backend, maybe connect early, then follow the backend's state. */
  async probe(): Promise<boolean> {
    // A directory this domain's previous kernel left Closed (a guest resumed in the domain it
    // suspended in, after a migration failed): say Initialising first, as xenbus_dev_resume resets
    // a resumed device, so the Closed backend starts over from InitWait (./backend.ts); until it
    // does, its Closed is the old session's, and we wait as for a backend that died.
    // (Read beside the other end's keys: one round trip for the three, ./device.ts.)
    this.driver.probing?.(this.dev);
    const [found, was] = await Promise.all([this.dev.readOtherend(), this.dev.xs.tryRead(`${this.dev.nodename}/${XS_KEY_STATE}`)]);
    if (!found) return false;
    if (was !== null && was !== String(XenbusState.Initialising)) {
      this.suspended = true;
      await this.enter(XenbusState.Initialising);
    }
    if (this.driver.connectEarly) await this.publish();
    const watching = this.dev.watchOtherend((s) => this.backendChanged(s));
    // Behind the WATCH and the state read it sent (one round trip for all of them): the
    // transaction's start, then the driver's reads (and whatever it does meanwhile: netfront's
    // prebuild), so that every request is on its way before the driver's own work.
    if (this.driver.connectOnInitWait && this.driver.publishWrites !== undefined && this.dev.firstOtherendState !== null) {
      this.startEarly(this.dev.firstOtherendState);
    }
    if (this.driver.otherendKnown !== undefined && this.dev.firstOtherendState !== null) {
      this.driver.otherendKnown(this.dev, this.dev.firstOtherendState);
    }
    await watching;
    return true;
  }

  /** The transaction publishConnected will write in, started ahead (see there); null once used or given up. */
  private early: Promise<number> | null = null;

  /*
   * The TRANSACTION_START publishConnected needs, sent behind the WATCH on the backend's state and
   * that state's read: the backend is in InitWait already when libxl has added the device before
   * the guest runs (a migrated guest's vif at the unpause), so the transaction is needed as soon as
   * those answer, and its start need not be a round trip of its own. A backend not in InitWait yet
   * (a hot-plugged device), or one Closing or Closed, may keep us waiting or never connect: the
   * transaction is ended at once, unused, rather
   * than held open in xenstored (its reply is awaited by nobody), and publish starts its own.
   */
  private startEarly(backendState: Promise<XenbusStateValue>): void {
    const xs = this.dev.xs;
    const t = xs.transactionStart();
    t.catch(() => undefined); // publishConnected starts its own if this one failed
    this.early = t;
    void backendState.then((s) => s >= XenbusState.InitWait && s <= XenbusState.Connected, () => false).then((soon) => {
      if (soon || this.early !== t) return;
      this.early = null;
      void t.then((id) => xs.transactionEnd(id, false), () => undefined).catch(() => undefined);
    });
  }

  /** The device closes before it published: the transaction started ahead is ended unused. */
  private dropEarly(): void {
    const t = this.early;
    this.early = null;
    if (t !== null) void t.then((id) => this.dev.xs.transactionEnd(id, false), () => undefined).catch(() => undefined);
  }

  /** talk_to_blkback: publish in a transaction, then Initialised (netfront: connect, Connected). */
  private async publish(): Promise<void> {
    if (this.driver.connectOnInitWait && this.driver.publishWrites !== undefined) return this.publishConnected();
    await this.dev.xs.transaction((t) => this.driver.publish(this.dev, t));
    if (this.driver.connectOnInitWait) {
      await this.driver.connect(this.dev);
      await this.enter(XenbusState.Connected);
      return;
    }
    await this.enter(XenbusState.Initialised);
  }

  /**
   * The keys and state = Connected in one transaction, as mini-os netfront writes them (its
   * xenbus_switch_state takes the transaction); Linux's netfront writes its keys in one
   * (talk_to_netback), then Connected in another (xenbus_switch_state, after xennet_connect).
   * Two round trips of its own (the transaction's start went earlier, beside the WATCH on the
   * backend's state: startEarly): our state read within it (is the directory still there? as
   * xenbus_switch_state checks) beside every write; the commit, once that read has answered (a
   * directory the toolstack removed meanwhile: abort, nothing recreated). Then the driver's
   * connect, with what it has already read.
   */
  private async publishConnected(): Promise<void> {
    const dev = this.dev;
    const xs = dev.xs;
    const gone = new Error('the device directory is gone');
    const early = this.early;
    this.early = null;
    try {
      await xs.transactionWrites(async (t) => {
        const here = xs.tryRead(`${dev.nodename}/${XS_KEY_STATE}`, t);
        here.catch(() => undefined); // awaited below; a failure aborts the transaction there
        const sent = await this.driver.publishWrites!(dev, t);
        const state = xs.write(`${dev.nodename}/${XS_KEY_STATE}`, String(XenbusState.Connected), t);
        if ((await here) === null) {
          await Promise.allSettled([sent.writes, state]);
          throw gone;
        }
        return { writes: Promise.all([sent.writes, state]).then(() => undefined) };
      }, early);
    } catch (e) {
      if (e === gone) return; // being removed: stop, as switchState's false says
      throw e;
    }
    await this.driver.connect(dev);
    dev.stateWritten(XenbusState.Connected);
    this.opts.onState?.(dev, XenbusState.Connected);
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
        this.suspended = false;
        await this.stopFollowing();
        await this.enter(XenbusState.Connected);
        break;
      case XenbusState.Closed:
      case XenbusState.Closing:
        this.dropEarly();
        if (dev.state === XenbusState.Closed) break;
        if (backend === XenbusState.Closed && this.driver.suspend !== undefined && !this.closed
          && (dev.state === XenbusState.Connected || dev.state === XenbusState.Initialised)) {
          await this.driver.suspend(dev);
          this.suspended = true;
          await this.enter(XenbusState.Initialising);
          this.backendKey ??= await dev.xs.watch(`${dev.nodename}/${XS_KEY_BACKEND}`, () => this.followBackend());
          break;
        }
        // Suspended, and the dead backend's Closed seen again: still waiting for the next one.
        if (this.suspended && dev.state === XenbusState.Initialising && backend === XenbusState.Closed) break;
        this.closed = true;
        await this.stopFollowing();
        await this.driver.close(dev);
        await this.enter(XenbusState.Closed);
        await dev.unwatchOtherend();
        break;
      default:
        break;
    }
  }

  /** talk_to_otherend, while suspended: if `backend` names another directory now, follow that one. */
  private async followBackend(): Promise<void> {
    const dev = this.dev;
    if (!this.suspended || this.closed) return;
    const before = dev.otherend;
    if (!(await dev.readOtherend()) || dev.otherend === before) return;
    await dev.unwatchOtherend();
    await dev.watchOtherend((s) => this.backendChanged(s));
  }

  private async stopFollowing(): Promise<void> {
    const w = this.backendKey;
    this.backendKey = null;
    await w?.unwatch().catch(() => undefined);
  }

  /** The guest wants the device gone (unplug, shutdown): Closing; the backend's Closing then brings us to Closed. */
  async shutdown(): Promise<void> {
    this.dropEarly();
    if (this.dev.state === XenbusState.Closed || this.dev.state === XenbusState.Closing) return;
    if (this.suspended) {
      // No backend to answer Closing: let go of what was kept and close on our own.
      this.closed = true;
      await this.stopFollowing();
      await this.driver.close(this.dev);
      await this.enter(XenbusState.Closed);
      await this.dev.unwatchOtherend();
      return;
    }
    await this.enter(XenbusState.Closing);
  }
}

/**
 * xenbus_register_frontend: probe every device of `type` that appears under our device/
 * directory, with a driver made for it. `present`: the devids a resumed kernel had (domu/resume.ts),
 * probed at once, as xenbus_dev_resume goes over the devices Linux has, not after the listing.
 */
export function registerFrontend(
  xs: XenbusClient, type: string, makeDriver: (nodename: string) => FrontendDriver,
  opts: FrontendOptions & { onProbe?: (fe: XenbusFrontend) => void; present?: readonly number[] } = {},
): Promise<XsWatch> {
  const dir = `${XS_DIR_DEVICE}/${type}`;
  return watchForDevices(xs, dir, 1, async (nodename) => {
    const fe = new XenbusFrontend(xs, nodename, makeDriver(nodename), opts);
    if (await fe.probe()) opts.onProbe?.(fe);
  }, (opts.present ?? []).map((devid) => `${dir}/${devid}`));
}
