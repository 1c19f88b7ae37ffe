// The writable working set during a precopy (dom0/toolstack/migration/precopy-hot.ts): a page
// dirtied in two rounds running is carried, not sent, until it cools or the stop-and-copy; none is
// ever lost. Checked as a migration would be: a guest writes versions of its pages between the
// rounds, the target keeps the last version it was sent, and after the stop-and-copy every page
// there must be the source's.
import test from 'ava';
import fc from 'fast-check';
import { HotPages } from '../dom0/toolstack/migration/precopy-hot.ts';

test('a page dirtied in two rounds running is held back, and the stop-and-copy sends it', (t) => {
  const h = new HotPages(16);
  t.deepEqual(h.next([1, 2, 3], 100), [1, 2, 3], 'after round 1 nothing is hot yet');
  t.deepEqual(h.next([2, 3, 4], 100), [4], '2 and 3 were dirtied in rounds 1 and 2: carried');
  t.is(h.carriedCount, 2);
  t.deepEqual(h.next([3, 5], 100), [2, 5], '2 cooled (unwritten through a round as long as the one it was written in): sent; 3 is still hot');
  t.deepEqual(h.final([6]), [3, 6], 'the stop-and-copy: the log\'s last list and what is still carried');
  t.is(h.carriedCount, 0);
});

test('a short round does not cool a page written in a long one', (t) => {
  const h = new HotPages(16);
  h.next([1, 2], 100);
  t.deepEqual(h.next([1, 2], 100), [], 'hot: carried');
  t.deepEqual(h.next([7], 10), [7], 'a round of 10 ms without them: not yet cooled');
  t.is(h.carriedCount, 2);
  t.deepEqual(h.next([8], 90), [1, 2, 8], '100 ms without them in all: cooled, sent');
});

/*
 * A precopy against a guest that writes `writes[k]` during round k (round 0: the first, which
 * sends every page): the log returns what was written, the next round sends what HotPages says,
 * the stop-and-copy sends the final list plus whatever was written after the last round. The
 * target holds the version it was last sent; it must end equal to the source.
 */
function precopy(nr: number, writes: number[][], carry: boolean, durations: number[] = writes.map(() => 100)): { target: number[]; source: number[]; sent: number } {
  const source = new Array<number>(nr).fill(0);
  const target = new Array<number>(nr).fill(-1);
  let version = 0;
  const h = new HotPages(nr);
  let toSend = Array.from({ length: nr }, (_, g) => g);
  let sent = 0;
  for (let k = 0; k < writes.length; k++) {
    for (const g of toSend) target[g] = source[g]; // the round sends (the guest is written meanwhile, after)
    sent += toSend.length;
    const dirty = [...new Set(writes[k])].sort((a, b) => a - b);
    version++;
    for (const g of dirty) source[g] = version;
    const last = k === writes.length - 1;
    toSend = last ? h.final(dirty) : carry ? h.next(dirty, durations[k]) : dirty;
  }
  for (const g of toSend) target[g] = source[g]; // the stop-and-copy, the guest stopped
  sent += toSend.length;
  return { target, source, sent };
}

test('whatever the guest writes between the rounds, the target ends with every page the source has', (t) => {
  const nr = 64;
  fc.assert(fc.property(
    fc.array(fc.tuple(fc.array(fc.integer({ min: 0, max: nr - 1 }), { maxLength: 40 }), fc.integer({ min: 1, max: 200 })), { minLength: 1, maxLength: 6 }),
    (rounds) => {
      const r = precopy(nr, rounds.map(([w]) => w), true, rounds.map(([, ms]) => ms));
      return r.target.every((v, g) => v === r.source[g]);
    },
  ));
  t.pass();
});

test('a working set rewritten every round is sent once, by the stop-and-copy, not by every round', (t) => {
  const wws = Array.from({ length: 100 }, (_, i) => 200 + i);
  const writes = [wws, wws, wws, wws, wws]; // five rounds, the same 100 pages written in each
  const carried = precopy(1024, writes, true);
  const every = precopy(1024, writes, false);
  t.true(carried.target.every((v, g) => v === carried.source[g]));
  t.is(every.sent, 1024 + 4 * 100 + 100, 'without carrying: rounds 2-5 resend the working set, the stop-and-copy once more');
  t.is(carried.sent, 1024 + 100 + 100, 'carried: round 2 sends it (not hot yet), rounds 3-5 hold it back, the stop-and-copy sends it');
});
