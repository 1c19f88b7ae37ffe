/*
 * The fuzz properties (test/fuzz/), each run for a bounded number of cases (FuzzCase.ciRuns) so
 * that `npm test` stays quick; `npm run fuzz -- --seconds N --seed S` runs the same ones for
 * longer. fast-check picks a fresh seed each run and prints it, with the shrunk counterexample,
 * when a property fails: `npm run fuzz -- --seed S --only "<title>"` replays it.
 */
import test from 'ava';
import fc from 'fast-check';
import { FUZZ_GROUPS } from './fuzz/groups.ts';

for (const group of FUZZ_GROUPS) {
  let ctx: unknown;
  if (group.setup) {
    test.before(async () => { ctx = await group.setup!(); });
    test.after.always(async () => { if (ctx !== undefined) await group.teardown?.(ctx as never); });
  }
  for (const p of group.properties) {
    test.serial(`${p.name} (${p.ciRuns} cases)`, async (t) => {
      await fc.assert(p.property(ctx as never), { numRuns: p.ciRuns, includeErrorInReport: true });
      t.pass();
    });
  }
}
