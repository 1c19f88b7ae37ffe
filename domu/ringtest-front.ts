/*
 * ringtest frontend: drives the generic ring from a DomU, as a split-device frontend does.
 *
 * Xen/Linux: the shape of xen-blkfront's data path (drivers/block/xen-blkfront.c:
 * blkif_queue_request, flush_requests, blkif_interrupt), reduced to one page per request.
 * The device is described in shared/public/io/ringtest.ts.
 *
 * Set-up, in the order a frontend does it: allocate and grant the ring pages, initialise the
 * ring, grant one data page per ring slot (read-only: the backend only reads them), allocate an
 * unbound port for the backend and bind our handler to it. The caller passes `connect` to the
 * backend (through XenStore, in a real device).
 *
 * Data path: keep up to `depth` requests in flight; publish them with one push, notifying only
 * if the backend asked (req_event); then reap responses, polling briefly before arming
 * rsp_event and sleeping on the event channel (see shared/wait.ts). Every response is
 * checked: the producer index (no more responses than requests), the id (in range, in flight),
 * the status and, for checked requests, the checksum the backend computed.
 */
import { checksum, fillPattern } from '../shared/checksum.ts';
import type { Kernel } from '../shared/kernel/kernel.ts';
import { FrontRing } from '../shared/public/io/ring.ts';
import { spinUntil } from '../shared/wait.ts';
import {
  RINGTEST_OP_CHECK, RINGTEST_RSP_OKAY, ringtest_request, ringtest_response, type RingtestConnect,
} from '../shared/public/io/ringtest.ts';
import { PAGE_SIZE } from '../shared/public/xen.ts';

export interface RingtestFrontOptions {
  ringPages?: number;
  /** Initial ring index (ring.h starts at 0; tests start near 2^32 to cross the wrap). */
  start?: number;
  /** Microseconds to poll for responses before sleeping. */
  spinUs?: number;
}

export interface RingtestRun {
  requests: number;
  /** Requests sent first and not counted (JIT warm-up), before `requests`. */
  warmup?: number;
  /** Request sizes: a fixed size, or a function of the request number. */
  len: number | ((n: number) => number);
  depth: number;
  /** Fill, checksum and have the backend check every payload. */
  check: boolean;
}

export interface RingtestFrontStats {
  requests: number;
  bytes: number;
  notifications: number; // event-channel sends we made
  interrupts: number;    // events we received
  sleeps: number;        // times we armed rsp_event and slept
  armed: number;         // times we armed rsp_event (the backend may notify once per arming)
}

export class RingtestFront {
  readonly ring: FrontRing;
  readonly connect: RingtestConnect;
  readonly stats: RingtestFrontStats = { requests: 0, bytes: 0, notifications: 0, interrupts: 0, sleeps: 0, armed: 0 };
  private readonly data: Uint8Array[] = [];
  private readonly busy: Uint8Array;      // per id: 1 while in flight
  private readonly expected: Int32Array;  // per id: the checksum its response must carry
  private readonly freeIds: number[] = [];
  private readonly req = ringtest_request.create();
  private readonly rsp = ringtest_response.create();
  private readonly spinUs: number;
  /** What an unchecked request sends: the producer's 4 KiB copy, like a bare ring's. */
  private readonly source = new Uint8Array(PAGE_SIZE).fill(0xa5);
  private irqPending = false;
  private wake: (() => void) | null = null;

  constructor(private readonly k: Kernel, backend: number, opts: RingtestFrontOptions = {}) {
    const ringGfns = k.pages.allocMany(opts.ringPages ?? 1);
    this.ring = new FrontRing(ringGfns.map((g) => k.memory.pageWords(g, true)), ringtest_request.size, ringtest_response.size, opts.start ?? 0);
    const ringRefs = ringGfns.map((g) => k.gnttab.grant(backend, g, false));
    const dataRefs: number[] = [];
    for (let id = 0; id < this.ring.size; id++) {
      const gfn = k.pages.alloc();
      this.data.push(k.memory.page(gfn, true));
      dataRefs.push(k.gnttab.grant(backend, gfn, true));
    }
    this.busy = new Uint8Array(this.ring.size);
    this.expected = new Int32Array(this.ring.size);
    for (let id = this.ring.size - 1; id >= 0; id--) this.freeIds.push(id);
    this.spinUs = opts.spinUs ?? 50;
    const port = k.events.allocUnbound(backend, () => this.interrupt());
    this.connect = { frontend: -1, ringRefs, port, dataRefs };
  }

  /** blkif_interrupt's role: note the event and wake the waiting submitter. */
  private interrupt(): void {
    this.stats.interrupts++;
    this.irqPending = true;
    const w = this.wake;
    this.wake = null;
    w?.();
  }

  private waitForInterrupt(): Promise<void> {
    if (this.irqPending) {
      this.irqPending = false;
      return Promise.resolve();
    }
    return new Promise((resolve) => {
      this.wake = () => { this.irqPending = false; resolve(); };
    });
  }

  /** Send `run.requests` requests, at most `run.depth` in flight, checking every response. */
  async run(run: RingtestRun): Promise<RingtestFrontStats> {
    const depth = Math.min(run.depth, this.ring.size);
    const lenOf = typeof run.len === 'number' ? (() => run.len as number) : run.len;
    let sent = 0;
    let done = 0;
    while (done < run.requests) {
      while (sent - done < depth && sent < run.requests) {
        this.queue(sent, lenOf(sent), run.check);
        sent++;
      }
      if (this.ring.pushRequests()) {
        this.stats.notifications++;
        this.k.events.notify(this.connect.port);
      }
      if (!spinUntil(this.hasResponses, this.spinUs) && !this.ring.finalCheckForResponses()) {
        this.stats.sleeps++;
        await this.waitForInterrupt();
      }
      done += this.reap();
    }
    this.stats.armed = this.ring.armed;
    return this.stats;
  }

  private readonly hasResponses = (): boolean => this.ring.unconsumedResponses() !== 0;

  private queue(n: number, len: number, check: boolean): void {
    if (!(len > 0 && len <= PAGE_SIZE)) throw new RangeError(`ringtest request ${n}: length ${len} is not 1..${PAGE_SIZE}`);
    const id = this.freeIds.pop()!;
    const page = this.data[id];
    const r = this.req;
    r.id = id;
    r.len = len;
    r.gref = this.connect.dataRefs[id];
    if (check) {
      fillPattern(page, n * 2654435761, len);
      r.op = RINGTEST_OP_CHECK;
      r.csum = checksum(page, len);
    } else {
      page.set(len === PAGE_SIZE ? this.source : this.source.subarray(0, len));
      r.op = 0;
      r.csum = 0;
    }
    this.busy[id] = 1;
    this.expected[id] = r.csum | 0;
    this.ring.putRequest(r.words);
    this.stats.requests++;
    this.stats.bytes += len;
  }

  /** Take every published response, checking each one. */
  private reap(): number {
    if (this.ring.responseOverflow()) {
      throw new Error(`ringtest: illegal number of responses (rsp_prod ${this.ring.unconsumedResponses()} ahead of rsp_cons)`);
    }
    let n = 0;
    while (this.ring.unconsumedResponses() !== 0) {
      this.ring.takeResponse(this.rsp.words);
      const id = this.rsp.id;
      if (id >= this.busy.length || this.busy[id] === 0) throw new Error(`ringtest: response for id ${id}, which is not in flight`);
      if (this.rsp.status !== RINGTEST_RSP_OKAY) throw new Error(`ringtest: request ${id} failed with status ${this.rsp.status}`);
      if ((this.rsp.csum | 0) !== this.expected[id]) {
        throw new Error(`ringtest: checksum mismatch on id ${id}: sent ${(this.expected[id] >>> 0).toString(16)}, backend saw ${this.rsp.csum.toString(16)}`);
      }
      this.busy[id] = 0;
      this.freeIds.push(id);
      n++;
    }
    return n;
  }
}
