/*
 * One end of a split device as xenbus sees it: its directory, its state, and the other end's.
 *
 * Xen/Linux: struct xenbus_device and drivers/xen/xenbus/xenbus_client.c (xenbus_switch_state,
 * xenbus_read_driver_state, xenbus_watch_otherend) with xenbus_probe.c's
 * read_otherend_details. The protocol (states, keys, directories) is
 * shared/public/io/xenbus.ts; frontend.ts and backend.ts drive the state machines Linux's
 * drivers implement on top of this.
 *
 * A device finds the other end from two keys in its own directory ("backend" and "backend-id"
 * for a frontend, "frontend" and "frontend-id" for a backend), which the toolstack wrote, and
 * watches the other end's `state`. Its own state changes go through a transaction that first
 * checks the directory still exists, so a device the toolstack has just removed is not
 * recreated by a late state write (as xenbus_switch_state does).
 *
 * Round trips. A request to xenstored costs a DomU two vCPU wake-ups (the store event channel to
 * Dom0's vCPU, its reply back) and a turn of each side's event loop, so a handshake's cost is its
 * number of sequential round trips, not its number of requests. Requests whose answers do not
 * depend on each other are therefore sent together (xs_wire's req_id lets several be in flight;
 * xenstored answers them in order): the two keys naming the other end, and a state write with the
 * commit of its transaction (if the write fails, the commit commits nothing and the write's error
 * is thrown). A watch and the read its first callback needs go together too (watchOtherend,
 * watchForDevices): the read, sent right behind the WATCH, sees what the watch found. Linux issues
 * them one after the other, where a round trip costs microseconds.
 */
import {
  XS_KEY_BACKEND, XS_KEY_BACKEND_ID, XS_KEY_FRONTEND, XS_KEY_FRONTEND_ID, XS_KEY_STATE, XenbusState,
  xenbusStateName, type XenbusStateValue,
} from '../../public/io/xenbus.ts';
import { XsError, type XenbusClient, type XsWatch } from './client.ts';
import { TRC_GUEST_XENBUS_STATE } from '../../public/trace.ts';

export type XenbusRole = 'frontend' | 'backend';

export class XenbusDevice {
  /** Our state as last written (Linux's dev->state). */
  state: XenbusStateValue = XenbusState.Initialising;
  /** The other end's directory and domain. */
  otherend = '';
  otherendId = -1;
  private watch: XsWatch | null = null;
  /**
   * The read of the other end's state sent right behind the WATCH by the latest watchOtherend (set
   * before that call first awaits): a read sent after it sees nodes at least as new as that state.
   */
  firstOtherendState: Promise<XenbusStateValue> | null = null;
  /** Every state we wrote, in order: for tests and for a reader following a handshake. */
  readonly history: XenbusStateValue[] = [];

  constructor(readonly xs: XenbusClient, readonly nodename: string, readonly role: XenbusRole) {}

  /** read_otherend_details: false if the toolstack has not (or no longer) described the other end. */
  async readOtherend(): Promise<boolean> {
    const [pathKey, idKey] = this.role === 'frontend' ? [XS_KEY_BACKEND, XS_KEY_BACKEND_ID] : [XS_KEY_FRONTEND, XS_KEY_FRONTEND_ID];
    const [path, id] = await Promise.all([this.xs.tryRead(`${this.nodename}/${pathKey}`), this.xs.tryRead(`${this.nodename}/${idKey}`)]);
    if (path === null || id === null || !/^[0-9]+$/.test(id)) return false;
    this.otherend = path;
    this.otherendId = Number(id);
    return true;
  }

  /**
   * xenbus_read_driver_state: a missing or garbled state reads as Unknown, and so does one we may
   * not read (Linux: any error is Unknown). A driver domain meets that when a frontend is gone:
   * its directory's parent is the guest's home, which the driver domain may not read, so xenstored
   * answers EACCES rather than ENOENT.
   */
  async readState(dir: string): Promise<XenbusStateValue> {
    const s = await this.xs.tryRead(`${dir}/${XS_KEY_STATE}`).catch((e: unknown) => {
      if (e instanceof XsError && e.errno === 'EACCES') return null;
      throw e;
    });
    const n = s === null ? NaN : Number(s);
    return Number.isInteger(n) && n >= XenbusState.Unknown && n <= XenbusState.Reconfigured ? (n as XenbusStateValue) : XenbusState.Unknown;
  }

  otherendState(): Promise<XenbusStateValue> {
    return this.readState(this.otherend);
  }

  /**
   * xenbus_switch_state: write our new state, unless the directory is gone. Returns false then
   * (the device is being removed and the caller should stop).
   */
  async switchState(state: XenbusStateValue): Promise<boolean> {
    if (state === this.state && this.history.length > 0) return true;
    const present = await this.xs.transactionWrites(async (t) => {
      if ((await this.xs.tryRead(`${this.nodename}/${XS_KEY_STATE}`, t)) === null) return { writes: Promise.resolve(false) };
      return { writes: this.xs.write(`${this.nodename}/${XS_KEY_STATE}`, String(state), t).then(() => true) };
    });
    if (present) this.stateWritten(state);
    return present;
  }

  /** Our state is now `state` (written by switchState, or within a transaction of the driver's). */
  stateWritten(state: XenbusStateValue): void {
    this.state = state;
    this.history.push(state);
    const devid = Number(this.nodename.slice(this.nodename.lastIndexOf('/') + 1)) | 0;
    this.xs.tracer?.xentrace(TRC_GUEST_XENBUS_STATE, this.otherendId, devid, state, this.role === 'backend' ? 1 : 0);
  }

  /**
   * xenbus_watch_otherend: `cb` gets the other end's state now and on every change. A watch fires
   * once when it is set, and the state that first callback needs is read by a request sent right
   * behind the WATCH: xenstored answers a connection in order, so that read sees the node as the
   * watch found it (a later change fires the watch again), and the watch and the first state cost
   * one round trip, not two (see "Round trips").
   */
  async watchOtherend(cb: (state: XenbusStateValue) => Promise<void>): Promise<void> {
    let first: Promise<XenbusStateValue> | null = null;
    const set = this.xs.watch(`${this.otherend}/${XS_KEY_STATE}`, async () => {
      const read = first ?? this.otherendState();
      first = null;
      return cb(await read);
    });
    first = this.otherendState();
    first.catch(() => undefined); // a failure is thrown where it is awaited, in the callback
    this.firstOtherendState = first;
    this.watch = await set;
  }

  async unwatchOtherend(): Promise<void> {
    const w = this.watch;
    this.watch = null;
    await w?.unwatch().catch(() => undefined);
  }

  toString(): string {
    return `${this.nodename} (${xenbusStateName(this.state)})`;
  }
}

/**
 * Watch `dir` for device directories `depth` levels down (1: device/<type>/<devid>, 2:
 * backend/<type>/<fe>/<devid>) and call `found` once for each new one: xenbus_probe's
 * watch-and-enumerate (xenbus_probe_devices on every event of the bus watch). `present`: devices
 * the caller already knows it has (a resumed kernel's, from its memory, as Linux's
 * xenbus_dev_resume goes over the devices it has): `found` is called for them at once, their
 * requests going out beside the WATCH's, and the listing that follows finds them known.
 */
export async function watchForDevices(
  xs: XenbusClient, dir: string, depth: 1 | 2, found: (nodename: string) => Promise<void>, present: readonly string[] = [],
): Promise<XsWatch> {
  const known = new Set<string>(present);
  for (const p of present) void found(p).catch((e: unknown) => xs.onWatchError(e, dir));
  const list = async (path: string) => (await xs.directory(path).catch(() => [] as string[]));
  // The first event's listing of `dir` goes out right behind the WATCH (as in watchOtherend): one
  // round trip for the watch and the devices present, not two.
  let first: Promise<string[]> | null = null;
  const set = xs.watch(dir, async () => {
    let paths = [dir];
    for (let d = 0; d < depth; d++) {
      const next: string[] = [];
      for (const p of paths) {
        const listed = d === 0 && first !== null ? first : list(p);
        if (d === 0) first = null;
        for (const c of await listed) next.push(`${p}/${c}`);
      }
      paths = next;
    }
    for (const p of paths) {
      if (known.has(p)) continue;
      known.add(p);
      await found(p);
    }
    // A directory that went away may come back later as a new device.
    for (const k of known) if (!paths.includes(k)) known.delete(k);
  });
  first = list(dir);
  return set;
}
