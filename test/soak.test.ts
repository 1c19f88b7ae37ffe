/*
 * The soak in CI: 100 guests (PV and HVM in turn, each running disk-check on its own disk)
 * created and destroyed on one host, in four slices of 25 (each slice one test, so each stays
 * well inside ava's timeout), checked after each slice against the host's baseline: frames,
 * grants, grant and foreign mappings, ports, domains, vCPU threads and XenStore nodes exactly;
 * the process's file descriptors and threads exactly; its RSS within RSS_TOLERANCE_MIB of the
 * warm baseline. `npm run soak` runs the same for 1,000 (scenarios/soak/).
 */
import test from 'ava';
import { Soak } from '../scenarios/soak/soak.ts';

const SLICES = 4;
const PER_SLICE = 25;
/** No gc() under ava, so RSS drifts with the collector's timing: a bound, not an equality. */
const RSS_TOLERANCE_MIB = 96;

let soak: Soak;
const lines: string[] = [];

test.before(async () => {
  soak = await Soak.start({ cycles: SLICES * PER_SLICE, checkEvery: PER_SLICE, rssToleranceMiB: RSS_TOLERANCE_MIB, progress: (l) => lines.push(l) });
});
test.after.always(async () => {
  await soak?.close();
});

for (let s = 1; s <= SLICES; s++) {
  test.serial(`soak: guests ${(s - 1) * PER_SLICE + 1}-${s * PER_SLICE} created, used and destroyed; the host is back to its baseline`, async (t) => {
    const problems = await soak.run(PER_SLICE);
    t.log(lines.at(-1));
    t.deepEqual(problems, []);
    t.is(soak.cyclesDone, s * PER_SLICE);
  });
}
