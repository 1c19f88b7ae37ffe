/*
 * The soaks' leak check itself (scenarios/soak/soak.ts): that it can fail. What the control
 * thread retains after a full collection (heap, external memory, ArrayBuffers) beyond the
 * tolerance is reported; RSS only when a bound is asked for; and the full collection runs under
 * ava, where node has no --expose-gc.
 */
import test from 'ava';
import { RETAINED_TOLERANCE_MIB, compare, fullGc, type Snapshot } from '../scenarios/soak/soak.ts';

const base: Snapshot = {
  usage: { domains: 1, framesUsed: 100, grantsActive: 0, grantMappings: 0, portsBound: 4, threadsAlive: 1 },
  foreignMaps: 0, xsNodes: 10, xsPaths: [], fds: 20, threads: 14,
  rssMiB: 200, heapMiB: 12, externalMiB: 3, arrayBuffersMiB: 945,
};

test('retained memory past the tolerance is a problem; within it, none', (t) => {
  t.deepEqual(compare({ ...base, heapMiB: base.heapMiB + RETAINED_TOLERANCE_MIB }, base, base), []);
  for (const [k, what] of [['heapMiB', /JavaScript heap 12 → 21 MiB/], ['externalMiB', /external memory 3 → 12 MiB/], ['arrayBuffersMiB', /ArrayBuffers 945 → 954 MiB/]] as const) {
    const problems = compare({ ...base, [k]: base[k] + RETAINED_TOLERANCE_MIB + 1 }, base, base);
    t.is(problems.length, 1, k);
    t.regex(problems[0]!, what);
  }
});

test('RSS is bounded only when a tolerance is given', (t) => {
  const grown = { ...base, rssMiB: base.rssMiB + 150 };
  t.deepEqual(compare(grown, base, base), []);
  t.deepEqual(compare(grown, base, base, 96), ['RSS 200 → 350 MiB (tolerance 96 MiB)']);
});

test('the full collection runs without --expose-gc: garbage is gone from the heap afterwards', (t) => {
  t.is((globalThis as { gc?: unknown }).gc, undefined, 'ava runs node without --expose-gc');
  fullGc();
  const before = process.memoryUsage().heapUsed;
  let junk: object[] | null = [];
  for (let i = 0; i < 400_000; i++) junk.push({ i, s: `x${i}` });
  t.true(process.memoryUsage().heapUsed > before + 8 * 2 ** 20, 'the garbage was on the heap');
  junk = null;
  fullGc();
  t.true(process.memoryUsage().heapUsed < before + 2 * 2 ** 20, 'and a full collection took it away');
});
