// The generic ring between two domains' threads: a million checksummed requests, through the
// 2^32 wrap, with grants, event channels and notification hold-off; nothing leaks afterwards.
import test from 'ava';
import { runRingtest, type RingtestRound } from '../scenarios/ring/harness.ts';

/** Notification hold-off as a counting argument: each notification needs a prior arming. */
function checkHoldOff(t: { true: (v: boolean, m?: string) => void }, r: RingtestRound) {
  t.true(r.front.notifications <= r.back.armed + 1, `frontend sent ${r.front.notifications} notifications, backend armed ${r.back.armed} times`);
  t.true(r.back.notifications <= r.front.armed + 1, `backend sent ${r.back.notifications} notifications, frontend armed ${r.front.armed} times`);
}

/** At depth 32 the first push alone carries 32 requests, so hold-off must save notifications. */
function checkBatching(t: { true: (v: boolean, m?: string) => void }, r: RingtestRound) {
  t.true(r.front.notifications < r.front.requests, 'fewer notifications than requests');
}

test('1,000,000 checksummed requests and responses across the 2^32 index wrap, persistent maps', async (t) => {
  const requests = 1_000_000;
  const res = await runRingtest({
    requests, depth: 32, len: 'mixed', check: true,
    front: { start: 0x1_0000_0000 - requests / 2 }, back: { mode: 'map' },
  });
  const [r] = res.rounds;
  t.is(r.front.requests, requests);
  t.is(r.back.requests, requests);
  t.is(r.back.errors, 0);
  checkHoldOff(t, r);
  checkBatching(t, r);
  t.is(r.counters.domU.notifications, r.front.notifications, 'every frontend notification is one EVTCHNOP_send');
  t.is(r.counters.dom0.grant_maps, 1 + 128, 'the ring page and 128 data pages, mapped once');
  t.is(r.deferredGrants, 0, 'the backend unmapped everything before the frontend ended access');
  t.deepEqual(res.usageAfter, res.usageBefore);
  t.log(`notifications per request: front ${(r.front.notifications / requests).toFixed(4)}, back ${(r.back.notifications / requests).toFixed(4)}`);
});

test('grant-copy backend: every payload crosses by GNTTABOP_copy, checksums hold', async (t) => {
  const requests = 100_000;
  const res = await runRingtest({ requests, depth: 32, len: 'mixed', check: true, back: { mode: 'copy' } });
  const [r] = res.rounds;
  t.is(r.back.requests, requests);
  t.is(r.back.errors, 0);
  t.is(r.counters.dom0.grant_copies, requests);
  t.is(r.counters.dom0.grant_copy_bytes, r.front.bytes);
  checkHoldOff(t, r);
  checkBatching(t, r);
  t.deepEqual(res.usageAfter, res.usageBefore);
});

test('no wake-up is lost: with polling off, every request sleeps and wakes both sides', async (t) => {
  const requests = 5_000;
  const res = await runRingtest({
    requests, depth: 1, len: 512, check: true, front: { spinUs: 0 }, back: { spinUs: 0 }, rounds: 2,
  });
  for (const r of res.rounds) {
    t.is(r.back.requests, requests);
    t.true(r.front.sleeps > requests / 2, `frontend slept ${r.front.sleeps} times`);
    t.true(r.back.interrupts > requests / 2, `backend woke ${r.back.interrupts} times`);
    checkHoldOff(t, r);
  }
  t.deepEqual(res.usageAfter, res.usageBefore, 'two DomUs came and went: nothing left behind');
});

test('a multi-page ring (4 pages, 512 slots) carries the same traffic', async (t) => {
  const res = await runRingtest({ requests: 50_000, depth: 256, len: 'mixed', check: true, front: { ringPages: 4 } });
  const [r] = res.rounds;
  t.is(r.back.requests, 50_000);
  t.is(r.counters.dom0.grant_maps, 4 + 512, "4 ring pages and one data page per slot");
  t.deepEqual(res.usageAfter, res.usageBefore);
});
