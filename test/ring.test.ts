// The generic ring (io/ring.h semantics), checked in one thread where every index can be seen.
import test from 'ava';
import { BackRing, FrontRing, RingOverflow, ringSize, sring } from '../shared/public/io/ring.ts';

const pages = (n: number) => Array.from({ length: n }, () => new Int32Array(new SharedArrayBuffer(4096)));
const words = (bytes: number, fill: number) => new Int32Array(bytes / 4).fill(fill);

test('slot counts match Xen: blkif 32/64/512 slots, netif 256, rounded down to a power of two', (t) => {
  t.is(ringSize(1, 112), 32);
  t.is(ringSize(2, 112), 64);
  t.is(ringSize(16, 112), 512);
  t.is(ringSize(1, 12), 256);
  t.is(ringSize(1, 8), 256);
  t.is(ringSize(1, 16), 128);
  t.throws(() => ringSize(1, 5000), { instanceOf: RangeError });
});

test('the frontend initialises the header: producers at 0, event indices at 1, the rest zero', (t) => {
  const p = pages(1);
  p[0].fill(-1);
  const f = new FrontRing(p, 16, 16);
  t.deepEqual([...p[0].subarray(0, sring.HEADER_WORDS)], [0, 1, 0, 1, ...new Array(12).fill(0)]);
  t.is(f.freeRequests(), 128);
});

test('push-and-check-notify: notify only when the consumer\'s event index was passed', (t) => {
  const p = pages(1);
  const f = new FrontRing(p, 16, 16);
  const b = new BackRing(p, 16, 16);
  f.putRequest(words(16, 1));
  t.true(f.pushRequests(), 'req_event starts at 1: the first request notifies');
  f.putRequest(words(16, 2));
  t.false(f.pushRequests(), 'the backend has not re-armed: no second notification');
  const r = words(16, 0);
  t.is(b.unconsumedRequests(), 2);
  b.takeRequest(r);
  b.takeRequest(r);
  t.false(b.finalCheckForRequests(), 'drained: arms req_event = req_cons + 1');
  t.is(p[0][sring.req_event], 3);
  f.putRequest(words(16, 3));
  f.putRequest(words(16, 4));
  t.true(f.pushRequests(), 'a batch that passes the event index notifies once');
  t.true(b.finalCheckForRequests(), 'final check sees what was published');
});

test('final check closes the race: a request published before arming is found, not slept through', (t) => {
  const p = pages(1);
  const f = new FrontRing(p, 16, 16);
  const b = new BackRing(p, 16, 16);
  f.putRequest(words(16, 7));
  p[0][sring.req_event] = 100; // pretend the backend's event index is far ahead: no notify
  t.false(f.pushRequests());
  t.true(b.finalCheckForRequests(), 'the consumer looks again after arming and finds it');
});

test('responses: hold-off on the frontend side works the same way', (t) => {
  const p = pages(1);
  const f = new FrontRing(p, 16, 16);
  const b = new BackRing(p, 16, 16);
  f.putRequest(words(16, 1));
  f.pushRequests();
  b.takeRequest(words(16, 0));
  b.putResponse(words(16, 9));
  t.true(b.pushResponses(), 'rsp_event starts at 1');
  const rsp = words(16, 0);
  f.takeResponse(rsp);
  t.is(rsp[0], 9);
  t.false(f.finalCheckForResponses());
  t.is(p[0][sring.rsp_event], 2);
});

test('indices wrap at 2^32 without special cases, and every request and response survives', (t) => {
  const p = pages(1);
  const start = 0xffff_ff00;
  const f = new FrontRing(p, 16, 16, start);
  const b = new BackRing(p, 16, 16);
  t.is(b.req_cons, start);
  const req = words(16, 0);
  const rsp = words(16, 0);
  let next = 0;
  let got = 0;
  for (let round = 0; round < 40; round++) {
    while (f.freeRequests() > 0) {
      req[0] = next++;
      f.putRequest(req);
    }
    f.pushRequests();
    t.false(b.requestOverflow());
    while (b.unconsumedRequests() > 0) {
      b.takeRequest(req);
      rsp[0] = req[0] * 3;
      b.putResponse(rsp);
    }
    b.pushResponses();
    t.false(f.responseOverflow());
    while (f.unconsumedResponses() > 0) {
      f.takeResponse(rsp);
      t.is(rsp[0], got * 3);
      got++;
    }
  }
  t.is(got, next);
  t.true(f.req_prod_pvt < start, 'the producer index wrapped past 2^32');
});

test('a producer index more than a ring ahead is an overflow, and never consumed past the ring', (t) => {
  const p = pages(1);
  new FrontRing(p, 16, 16);
  const b = new BackRing(p, 16, 16);
  p[0][sring.req_prod] = 129;
  t.true(b.requestOverflow());
  t.is(b.unconsumedRequests(), 128, 'even a lying producer cannot make us take more than a ring');
  p[0][sring.req_prod] = -5; // "behind" is far ahead in u32 arithmetic
  t.true(b.requestOverflow());
  p[0][sring.req_prod] = 128;
  t.false(b.requestOverflow());
  t.throws(() => new BackRing((() => { const q = pages(1); new FrontRing(q, 16, 16); q[0][sring.req_prod] = 500; return q; })(), 16, 16), { instanceOf: RingOverflow });
});

test('the frontend detects a backend publishing more responses than requests', (t) => {
  const p = pages(1);
  const f = new FrontRing(p, 16, 16);
  p[0][sring.rsp_prod] = 129;
  t.true(f.responseOverflow());
});

test('a multi-page ring: slots that straddle a page boundary come back intact', (t) => {
  // 40-byte slots: slot 100 occupies bytes 4064..4103, across the boundary of pages 0 and 1.
  const p = pages(2);
  const f = new FrontRing(p, 40, 16);
  const b = new BackRing(p, 40, 16);
  t.is(f.size, 128);
  const req = words(40, 0);
  for (let i = 0; i < 128; i++) {
    for (let k = 0; k < 10; k++) req[k] = i * 1000 + k;
    f.putRequest(req);
  }
  f.pushRequests();
  t.is(p[0][1023], 100 * 1000 + 7, 'word 7 of slot 100 is the last word of page 0');
  t.is(p[1][0], 100 * 1000 + 8, 'word 8 of slot 100 is the first word of page 1');
  const out = words(40, 0);
  for (let i = 0; i < 128; i++) {
    b.takeRequest(out);
    for (let k = 0; k < 10; k++) if (out[k] !== i * 1000 + k) return t.fail(`slot ${i} word ${k}: ${out[k]}`);
  }
  t.is(ringSize(2, 112), 64, 'blkif on two pages: no slot straddles, 64 slots');
});
