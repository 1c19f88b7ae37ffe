/*
 * The two baselines the ring suite compares ringvisor's ring against, one thread per side:
 *
 *   bare-ring   a single-producer/single-consumer request ring and response ring on a plain
 *               SharedArrayBuffer, with no hypervisor: no grants, no event channels, no
 *               domains. Slots carry the 4 KiB payload inline. It waits the way the ring does
 *               (poll for a bounded time, then sleep on a futex word the other side wakes), so
 *               the difference is what Xen's mechanism adds, not a different waiting policy.
 *   ringbuf.js  Paul Adenot's published wait-free SPSC ring (npm ringbuf.js), two of them
 *               (requests of 1024 32-bit words, responses of one word). It has no way to sleep,
 *               so both sides spin.
 *
 * Either way the producer keeps `depth` requests in flight, copies 4 KiB into the ring per
 * request, and the consumer copies 4 KiB out: the same two copies the ringtest device makes.
 */
import { workerData, parentPort } from 'node:worker_threads';
import { RingBuffer } from 'ringbuf.js';
import { spinUntil } from '../../shared/wait.ts';
import { BARE, type BaselineJob, type BaselineResult } from './baselines.ts';

const job = (workerData as { boot: BaselineJob }).boot;
const PAYLOAD = 4096;

const { REQ_PROD, RSP_PROD, RSP_CONS, CONS_SLEEPING, PROD_SLEEPING } = BARE;

function bare(): BaselineResult {
  const h = new Int32Array(job.sab, 0, 16);
  const slots = job.slots;
  const data = Array.from({ length: slots }, (_, i) => new Uint8Array(job.sab, 4096 + i * PAYLOAD, PAYLOAD));
  const rsp = new Int32Array(job.sab, 4096 + slots * PAYLOAD, slots);
  const mask = slots - 1;
  const buf = new Uint8Array(PAYLOAD).fill(0xa5);
  let notifications = 0;
  /** Poll, then sleep on `flag` until the peer clears it; `ready` is re-checked after arming. */
  const wait = (ready: () => boolean, flag: number) => {
    if (spinUntil(ready, job.spinUs)) return;
    for (;;) {
      Atomics.store(h, flag, 1); // armed: the peer's next publish wakes us
      if (ready()) break;
      Atomics.wait(h, flag, 1);
    }
    Atomics.store(h, flag, 0);
  };
  const wake = (flag: number) => {
    if (Atomics.compareExchange(h, flag, 1, 0) === 1) {
      notifications++;
      Atomics.notify(h, flag, 1);
    }
  };
  const total = job.warmup + job.requests;
  let t0 = 0;
  if (job.role === 'bare-producer') {
    let sent = 0, done = 0;
    const hasRsp = () => Atomics.load(h, RSP_PROD) !== done;
    while (done < total) {
      if (done >= job.warmup && t0 === 0) { t0 = performance.now(); notifications = 0; }
      while (sent - done < job.depth && sent < total) {
        data[sent & mask].set(buf);
        sent++;
      }
      Atomics.store(h, REQ_PROD, sent);
      wake(CONS_SLEEPING);
      wait(hasRsp, PROD_SLEEPING);
      const prod = Atomics.load(h, RSP_PROD);
      while (done !== prod) {
        if (rsp[done & mask] !== done) throw new Error(`bare-ring: response ${rsp[done & mask]} where ${done} was due`);
        done++;
      }
      Atomics.store(h, RSP_CONS, done);
    }
    return { requests: job.requests, ms: performance.now() - t0, notifications };
  }
  let cons = 0;
  const hasReq = () => Atomics.load(h, REQ_PROD) !== cons;
  while (cons < total) {
    wait(hasReq, CONS_SLEEPING);
    const prod = Atomics.load(h, REQ_PROD);
    while (cons !== prod) {
      buf.set(data[cons & mask]);
      rsp[cons & mask] = cons;
      cons++;
    }
    Atomics.store(h, RSP_PROD, cons);
    wake(PROD_SLEEPING);
  }
  return { requests: job.requests, ms: 0, notifications };
}

function ringbuf(): BaselineResult {
  const req = new RingBuffer(job.sab, Int32Array);
  const rsp = new RingBuffer(job.rsp!, Int32Array);
  const words = PAYLOAD / 4;
  const payload = new Int32Array(words).fill(0x5a5a5a5a);
  const id = new Int32Array(1);
  const total = job.warmup + job.requests;
  if (job.role === 'rb-producer') {
    let sent = 0, done = 0, t0 = 0;
    while (done < total) {
      if (done >= job.warmup && t0 === 0) t0 = performance.now();
      while (sent - done < job.depth && sent < total && req.available_write() >= words) {
        req.push(payload);
        sent++;
      }
      while (rsp.available_read() >= 1) {
        rsp.pop(id);
        if (id[0] !== done) throw new Error(`ringbuf.js: response ${id[0]} where ${done} was due`);
        done++;
      }
    }
    return { requests: job.requests, ms: performance.now() - t0, notifications: 0 };
  }
  let cons = 0;
  while (cons < total) {
    if (req.available_read() >= words && rsp.available_write() >= 1) {
      req.pop(payload);
      id[0] = cons++;
      rsp.push(id);
    }
  }
  return { requests: job.requests, ms: 0, notifications: 0 };
}

parentPort!.postMessage(job.role.startsWith('bare') ? bare() : ringbuf());
process.exit(0);
