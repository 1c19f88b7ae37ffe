// libxl's bound on a guest's suspend (dom0/toolstack/migration/suspend-request.ts): a guest that
// never shuts down with reason suspend fails the save or migration with libxl's words, and a
// request it has not acknowledged is taken back; a guest that suspends in time is not touched.
import test from 'ava';
import { waitSuspended, type SuspendRequest } from '../dom0/toolstack/migration/suspend-request.ts';

function fakeRequest(): SuspendRequest & { cancelled: number } {
  const r = {
    via: 'control/shutdown',
    cancelled: 0,
    request: () => Promise.resolve(),
    close: () => undefined,
    forget: () => Promise.resolve(),
    cancel: () => { r.cancelled++; return Promise.resolve(); },
  };
  return r;
}

test('a guest that never suspends: timed out, the request taken back', async (t) => {
  const sr = fakeRequest();
  const never = new Promise<void>(() => undefined);
  await t.throwsAsync(waitSuspended(sr, never, 'vm1', 50), { message: /^vm1: guest did not suspend, timed out \(0\.05 s after the request through control\/shutdown\)$/ });
  t.is(sr.cancelled, 1);
});

test('a guest that suspends in time: no timeout, nothing taken back', async (t) => {
  const sr = fakeRequest();
  await waitSuspended(sr, new Promise<void>((r) => setTimeout(r, 10)), 'vm1', 10_000);
  t.is(sr.cancelled, 0);
});

test('the toolstack failing to watch the guest is its error, not a timeout', async (t) => {
  const sr = fakeRequest();
  await t.throwsAsync(waitSuspended(sr, Promise.reject(new Error('xenstored gone')), 'vm1', 10_000), { message: 'xenstored gone' });
  t.is(sr.cancelled, 0);
});
