/*
 * ringtest backend: serves the generic ring from Dom0, as a split-device backend does.
 *
 * Xen/Linux: the shape of xen-blkback's request loop (drivers/block/xen-blkback/blkback.c:
 * xen_blkif_schedule, do_block_io_op, __do_block_io_op, make_response), reduced to one page
 * per request. The device is described in shared/public/io/ringtest.ts.
 *
 * It trusts nothing the frontend wrote: it checks the producer index before consuming
 * (a frontend more than a ring ahead stops this device, with a log line, and nothing else),
 * copies each request into private memory before reading a field, checks length and grant
 * reference on the copy, and builds every response whole from zero.
 *
 * The payload arrives one of two ways, chosen at connect time:
 *   'copy'  GNTTABOP_copy from the frontend's granted page into a page of our own, per request
 *           (what netback does, and blkback without persistent grants, in spirit);
 *   'map'   every data grant is mapped once, read-only, at connect, and each request is a copy
 *           out of the mapping (what blkback's persistent grants do).
 */
import { checksum } from '../../shared/checksum.ts';
import type { Kernel } from '../../shared/kernel/kernel.ts';
import {
  GNTCOPY_source_gref, GNTMAP_host_map, GNTMAP_readonly, GNTST_okay, newGnttabCopy, type GnttabMapGrantRef,
} from '../../shared/public/grant_table.ts';
import { BackRing, RingOverflow } from '../../shared/public/io/ring.ts';
import { spinUntil } from '../../shared/wait.ts';
import type { GuestPage } from '../../shared/public/memory.ts';
import {
  RINGTEST_OP_CHECK, RINGTEST_RSP_BADSUM, RINGTEST_RSP_ERROR, RINGTEST_RSP_OKAY, ringtest_request, ringtest_response,
  type RingtestConnect,
} from '../../shared/public/io/ringtest.ts';
import { DOMID_SELF, PAGE_SIZE } from '../../shared/public/xen.ts';
import { guestLog } from '../../backends/lib/guest-log.ts';

export interface RingtestBackOptions {
  mode?: 'copy' | 'map';
  /** Microseconds to poll for requests before arming req_event and sleeping. */
  spinUs?: number;
  log?: (line: string) => void;
}

export interface RingtestBackStats {
  requests: number;
  errors: number;
  notifications: number; // event-channel sends we made
  interrupts: number;    // events we received
  sleeps: number;        // times we armed req_event and went back to sleep
  armed: number;         // times we armed req_event (the frontend may notify once per arming)
}

interface Mapping { gfn: number; handle: number }

export class RingtestBack {
  readonly stats: RingtestBackStats = { requests: 0, errors: 0, notifications: 0, interrupts: 0, sleeps: 0, armed: 0 };
  readonly mode: 'copy' | 'map';
  private ring: BackRing | null = null;
  private port = -1;
  private dead = false;
  private readonly maps: Mapping[] = [];
  /** The data grants, mapped once; checked once per request (a GuestPage, guest-memory.ts). */
  private readonly persistent = new Map<number, GuestPage>();
  private readonly req = ringtest_request.create();
  private readonly rsp = ringtest_response.create();
  private readonly copyOp = newGnttabCopy();
  private readonly copyOps = [this.copyOp];
  private readonly bounce: Uint8Array;
  private readonly bounceGfn: number;
  private readonly payload = new Uint8Array(PAGE_SIZE);
  private sum = 0;
  private readonly spinUs: number;
  private readonly log: (line: string) => void;

  constructor(private readonly k: Kernel, readonly c: RingtestConnect, opts: RingtestBackOptions = {}) {
    this.mode = opts.mode ?? 'map';
    this.spinUs = opts.spinUs ?? 50;
    // Every line here is one the frontend can cause: rate-limited per guest (backends/lib/guest-log.ts).
    this.log = opts.log ?? ((l) => guestLog(k).line(c.frontend, l));
    this.bounceGfn = k.pages.alloc();
    this.bounce = k.memory.page(this.bounceGfn, true);
    const ringPages = c.ringRefs.map((ref) => k.memory.pageWords(this.map(ref, false), true));
    this.ring = new BackRing(ringPages, ringtest_request.size, ringtest_response.size);
    if (this.mode === 'map') {
      for (const ref of c.dataRefs) this.persistent.set(ref, k.memory.map(this.map(ref, true), false));
    } else {
      this.copyOp.flags = GNTCOPY_source_gref;
      this.copyOp.source.domid = c.frontend;
      this.copyOp.dest.domid = DOMID_SELF;
      this.copyOp.dest.gfn = this.bounceGfn;
    }
    this.port = k.events.bindInterdomain(c.frontend, c.port, () => {
      this.stats.interrupts++;
      this.service();
    });
  }

  /** Map one of the frontend's grants into a hole of our physmap; returns the gfn. */
  private map(ref: number, readonly: boolean): number {
    const gfn = this.k.pages.allocHole();
    const op: GnttabMapGrantRef = { host_addr: gfn, flags: GNTMAP_host_map | (readonly ? GNTMAP_readonly : 0), ref, dom: this.c.frontend, status: 0, handle: -1 };
    this.k.hypercall.gnttab_map_grant_ref(op);
    if (op.status !== GNTST_okay) {
      this.k.pages.releaseHole(gfn);
      throw new Error(`ringtest backend: cannot map grant ${ref} of d${this.c.frontend}: status ${op.status}`);
    }
    this.maps.push({ gfn, handle: op.handle });
    return gfn;
  }

  private readonly hasRequests = (): boolean => this.ring !== null && this.ring.unconsumedRequests() !== 0;

  /** The request loop: run from the event handler until the ring is idle past the poll budget. */
  service(): void {
    const ring = this.ring;
    if (ring === null || this.dead) return;
    for (;;) {
      const req_prod = ring.reqProd();
      if (ring.requestOverflow(req_prod)) {
        return this.fail(`frontend d${this.c.frontend} published req_prod ${req_prod}, more than ${ring.size} ahead of rsp_prod ${ring.rsp_prod_pvt}`);
      }
      while (ring.unconsumedRequests(req_prod) !== 0) {
        ring.takeRequest(this.req.words);
        this.respond(this.handle());
      }
      if (ring.pushResponses()) {
        this.stats.notifications++;
        this.k.events.notify(this.port);
      }
      if (spinUntil(this.hasRequests, this.spinUs)) continue;
      if (ring.finalCheckForRequests()) continue;
      this.stats.sleeps++;
      this.stats.armed = ring.armed;
      return;
    }
  }

  /** Execute the private copy of one request; returns a status. */
  private handle(): number {
    const r = this.req;
    const len = r.len;
    this.sum = 0;
    this.stats.requests++;
    if (len === 0 || len > PAGE_SIZE) return this.bad(`length ${len}`);
    let src: Uint8Array;
    if (this.mode === 'map') {
      const page = this.persistent.get(r.gref)?.bytes();
      if (page === undefined) return this.bad(`grant ref ${r.gref} is not one of this device's`);
      if (len === PAGE_SIZE) this.payload.set(page);
      else this.payload.set(page.subarray(0, len));
      src = this.payload;
    } else {
      const op = this.copyOp;
      op.source.ref = r.gref;
      op.source.offset = 0;
      op.dest.offset = 0;
      op.len = len;
      this.k.hypercall.gnttab_copy(this.copyOps, 1);
      if (op.status !== GNTST_okay) return this.bad(`grant copy of ref ${r.gref} failed with status ${op.status}`);
      src = this.bounce;
    }
    if (r.op === RINGTEST_OP_CHECK) {
      this.sum = checksum(src, len);
      if (this.sum !== r.csum) return RINGTEST_RSP_BADSUM;
    }
    return RINGTEST_RSP_OKAY;
  }

  private bad(what: string): number {
    this.stats.errors++;
    this.log(`ringtest backend: d${this.c.frontend} request id ${this.req.id}: ${what}`);
    return RINGTEST_RSP_ERROR;
  }

  /** make_response: built whole, so no byte of an old response or of our memory leaks out. */
  private respond(status: number): void {
    this.rsp.clear();
    this.rsp.id = this.req.id;
    this.rsp.status = status;
    this.rsp.csum = this.sum;
    this.ring!.putResponse(this.rsp.words);
  }

  /** A corrupt ring stops this device and only this device. */
  private fail(why: string): void {
    this.dead = true;
    this.stats.errors++;
    this.log(`ringtest backend: ring stopped: ${why}`);
    this.k.events.unbind(this.port);
  }

  get stopped(): boolean {
    return this.dead;
  }

  /** Disconnect: close the port, unmap every grant, give back the holes and the bounce page. */
  disconnect(): void {
    if (this.port > 0) this.k.events.close(this.port);
    this.port = -1;
    if (this.ring) this.stats.armed = this.ring.armed;
    this.ring = null;
    this.persistent.clear();
    for (const m of this.maps) {
      const op = { host_addr: m.gfn, handle: m.handle, status: 0 };
      this.k.hypercall.gnttab_unmap_grant_ref(op);
      if (op.status !== GNTST_okay) this.log(`ringtest backend: unmap of handle ${m.handle} failed: ${op.status}`);
      this.k.pages.releaseHole(m.gfn);
    }
    this.maps.length = 0;
    this.k.pages.release(this.bounceGfn);
  }
}

export { RingOverflow };
