/*
 * Properties of the generic ring's index arithmetic (shared/public/io/ring.ts, Xen's io/ring.h)
 * across the 2^32 wrap.
 *
 * ring.h's indices are free-running u32 counters, so every comparison is a difference modulo
 * 2^32 and a ring that has carried four billion requests must behave exactly as a new one. The
 * oracle here is written differently from the code under test, on purpose: BigInt counters that
 * never wrap, reduced modulo 2^32 only where they meet the shared page. Random sequences of
 * produce / consume / respond / take / sleep steps, from random start indices near and across
 * 2^32, on rings of 1 to 4 pages whose slots may straddle pages, must keep:
 *   - FIFO order and the exact payload words of every request and response;
 *   - free-slot and unconsumed counts equal to the oracle's;
 *   - no lost wake-up: once a consumer has armed its event index and found nothing (the final
 *     check), the producer's next publish must say "notify";
 *   - a hostile req_prod: refused (RING_REQUEST_PROD_OVERFLOW) exactly when it is more than a
 *     ring ahead of the responses, and never able to make the backend take more than it can answer.
 */
import fc from 'fast-check';
import { BackRing, FrontRing, ringSize, sring } from '../../shared/public/io/ring.ts';
import type { FuzzGroup } from './property.ts';

const TWO32 = 1n << 32n;
const u32 = (x: bigint) => Number(((x % TWO32) + TWO32) % TWO32);

type Step =
  | { do: 'produce'; n: number; push: boolean }
  | { do: 'consume'; n: number }
  | { do: 'respond'; n: number; push: boolean }
  | { do: 'take'; n: number }
  | { do: 'back-sleep' }
  | { do: 'front-sleep' };

/** Batch sizes: mostly a few (where off-by-one mistakes live), sometimes a ring's worth. */
const batch = fc.oneof({ weight: 3, arbitrary: fc.nat(4) }, { weight: 1, arbitrary: fc.nat(40) });
const step: fc.Arbitrary<Step> = fc.oneof(
  fc.record({ do: fc.constant('produce' as const), n: batch, push: fc.boolean() }),
  fc.record({ do: fc.constant('consume' as const), n: batch }),
  fc.record({ do: fc.constant('respond' as const), n: batch, push: fc.boolean() }),
  fc.record({ do: fc.constant('take' as const), n: batch }),
  fc.constant({ do: 'back-sleep' as const }),
  fc.constant({ do: 'front-sleep' as const }),
);

/** Ring geometry: pages, and request/response slot sizes in whole words (blkif's 112/16 among them). */
const geometry = fc.record({
  pages: fc.integer({ min: 1, max: 4 }),
  reqWords: fc.oneof(fc.constant(28), fc.integer({ min: 2, max: 200 })),
  rspWords: fc.oneof(fc.constant(4), fc.integer({ min: 2, max: 200 })),
});

/** Start indices: anywhere, or a few rings' worth before the wrap so every run crosses it. */
const start = fc.oneof(fc.nat({ max: 0xffffffff }), fc.integer({ min: 0, max: 4096 }).map((k) => (2 ** 32 - k) >>> 0));

const pagesOf = (n: number) => Array.from({ length: n }, () => new Int32Array(new SharedArrayBuffer(4096)));

/** A slot's payload: the request's sequence number, its complement, and a filler derived from both. */
function fill(words: Int32Array, seq: bigint, salt: number): void {
  const s = u32(seq);
  for (let i = 0; i < words.length; i++) words[i] = Math.imul(s + i, 0x9e3779b1) ^ salt;
  words[0] = s | 0;
  words[words.length - 1] = ~s;
}

function fifoAndWakeups(g: { pages: number; reqWords: number; rspWords: number }, at: number, steps: Step[]): void {
  const p = pagesOf(g.pages);
  const front = new FrontRing(p, g.reqWords * 4, g.rspWords * 4, at);
  const back = new BackRing(p, g.reqWords * 4, g.rspWords * 4);
  const size = BigInt(ringSize(g.pages, Math.max(g.reqWords, g.rspWords) * 4));
  if (BigInt(front.size) !== size || BigInt(back.size) !== size) throw new Error('both ends must agree on the slot count');
  // The oracle: counters that never wrap.
  const base = BigInt(at);
  let reqPvt = base, reqPub = base, reqCons = base, rspPvt = base, rspPub = base, rspCons = base;
  let backAsleep = false, frontAsleep = false;
  const req = new Int32Array(g.reqWords), rsp = new Int32Array(g.rspWords), got = new Int32Array(Math.max(g.reqWords, g.rspWords));
  const expect = (ok: boolean, what: string) => { if (!ok) throw new Error(what); };

  const publishRequests = () => {
    const before = reqPub;
    const notify = front.pushRequests();
    reqPub = reqPvt;
    if (backAsleep && reqPub !== before) {
      expect(notify, `lost wake-up: backend armed req_event and slept, frontend published ${before}..${reqPub} without notifying`);
      backAsleep = false;
    }
  };
  const publishResponses = () => {
    const before = rspPub;
    const notify = back.pushResponses();
    rspPub = rspPvt;
    if (frontAsleep && rspPub !== before) {
      expect(notify, `lost wake-up: frontend armed rsp_event and slept, backend published ${before}..${rspPub} without notifying`);
      frontAsleep = false;
    }
  };

  for (const s of steps) {
    switch (s.do) {
      case 'produce': {
        const free = size - (reqPvt - rspCons);
        expect(BigInt(front.freeRequests()) === free, `freeRequests ${front.freeRequests()}, oracle ${free}`);
        const n = BigInt(s.n) < free ? BigInt(s.n) : free;
        for (let i = 0n; i < n; i++) { fill(req, reqPvt, 0x5a5a); front.putRequest(req); reqPvt++; }
        expect(front.req_prod_pvt === u32(reqPvt), 'req_prod_pvt wrapped wrong');
        if (s.push) publishRequests();
        break;
      }
      case 'consume': {
        const avail = reqPub - reqCons;
        expect(BigInt(back.unconsumedRequests()) === avail, `unconsumedRequests ${back.unconsumedRequests()}, oracle ${avail}`);
        expect(!back.requestOverflow(), 'an honest req_prod must never look like an overflow');
        const n = BigInt(s.n) < avail ? BigInt(s.n) : avail;
        for (let i = 0n; i < n; i++) {
          back.takeRequest(got.subarray(0, g.reqWords));
          fill(req, reqCons, 0x5a5a);
          for (let w = 0; w < g.reqWords; w++) expect(got[w] === req[w], `request ${reqCons} word ${w} came out as ${got[w]}, not ${req[w]}`);
          reqCons++;
        }
        break;
      }
      case 'respond': {
        const n = BigInt(s.n) < reqCons - rspPvt ? BigInt(s.n) : reqCons - rspPvt;
        for (let i = 0n; i < n; i++) { fill(rsp, rspPvt, 0x3c3c); back.putResponse(rsp); rspPvt++; }
        if (s.push) publishResponses();
        break;
      }
      case 'take': {
        const avail = rspPub - rspCons;
        expect(BigInt(front.unconsumedResponses()) === avail, `unconsumedResponses ${front.unconsumedResponses()}, oracle ${avail}`);
        expect(!front.responseOverflow(), 'an honest rsp_prod must never look like an overflow');
        const n = BigInt(s.n) < avail ? BigInt(s.n) : avail;
        for (let i = 0n; i < n; i++) {
          front.takeResponse(got.subarray(0, g.rspWords));
          fill(rsp, rspCons, 0x3c3c);
          for (let w = 0; w < g.rspWords; w++) expect(got[w] === rsp[w], `response ${rspCons} word ${w} came out wrong`);
          rspCons++;
        }
        break;
      }
      case 'back-sleep':
        // The backend goes to sleep only if the final check finds nothing; otherwise it keeps serving.
        if (!back.finalCheckForRequests()) {
          expect(reqPub === reqCons, 'final check said "nothing" with requests published');
          expect(Atomics.load(p[0], sring.req_event) === (u32(reqCons + 1n) | 0), 'req_event is not req_cons + 1');
          backAsleep = true;
        } else expect(reqPub !== reqCons, 'final check found requests that are not there');
        break;
      case 'front-sleep':
        if (!front.finalCheckForResponses()) {
          expect(rspPub === rspCons, 'final check said "nothing" with responses published');
          frontAsleep = true;
        } else expect(rspPub !== rspCons, 'final check found responses that are not there');
        break;
    }
  }
}

function hostileReqProd(g: { pages: number; reqWords: number }, at: number, answered: number, lie: number): void {
  const p = pagesOf(g.pages);
  const front = new FrontRing(p, g.reqWords * 4, 16, at);
  const back = new BackRing(p, g.reqWords * 4, 16);
  const size = BigInt(back.size);
  const req = new Int32Array(g.reqWords);
  // An honest history first: `answered` requests made, taken and answered.
  const n = answered % Number(size + 1n);
  for (let i = 0; i < n; i++) front.putRequest(req);
  front.pushRequests();
  for (let i = 0; i < n; i++) { back.takeRequest(req); back.putResponse(new Int32Array(4)); }
  back.pushResponses();
  // Then the frontend writes whatever it likes into req_prod.
  Atomics.store(p[0], sring.req_prod, lie | 0);
  const ahead = ((BigInt(lie >>> 0) - BigInt(back.rsp_prod_pvt)) % TWO32 + TWO32) % TWO32;
  if (back.requestOverflow() !== (ahead > size)) throw new Error(`req_prod ${lie >>> 0} with rsp_prod_pvt ${back.rsp_prod_pvt}: overflow ${back.requestOverflow()}, oracle ${ahead > size}`);
  const unconsumed = BigInt(back.unconsumedRequests());
  if (unconsumed > size) throw new Error(`a lying req_prod let the backend see ${unconsumed} requests in a ${size}-slot ring`);
  if (ahead <= size && unconsumed !== ahead) throw new Error(`req_prod ${ahead} ahead: unconsumedRequests says ${unconsumed}`);
}

export const ringIndexProperties: FuzzGroup = {
  name: 'ring indices',
  properties: [
    {
      name: 'ring.h indices across the 2^32 wrap: FIFO payloads, exact counts, no lost wake-up',
      ciRuns: 1000,
      property: () => fc.property(geometry, start, fc.array(step, { maxLength: 120 }), fifoAndWakeups),
    },
    {
      name: 'a hostile req_prod is refused exactly when more than a ring ahead, and never over-consumed',
      ciRuns: 500,
      property: () => fc.property(
        fc.record({ pages: fc.integer({ min: 1, max: 4 }), reqWords: fc.integer({ min: 2, max: 64 }) }),
        start, fc.nat(600), fc.oneof(fc.nat({ max: 0xffffffff }), fc.integer({ min: -600, max: 600 })),
        (g, at, answered, delta) => hostileReqProd(g, at, answered, delta < 0 || delta <= 600 ? (at + answered + delta) >>> 0 : delta),
      ),
    },
  ],
};
