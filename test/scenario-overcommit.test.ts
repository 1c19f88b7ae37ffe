/*
 * `npm start -- overcommit`: four 96 MiB guests on a 256 MiB host, narrated: populate on demand,
 * sharing, balloon targets, paging (the toolstack's policy taking them in that order), the ESX-style table, and every guest's data verified.
 * Checked for its key lines, not its numbers.
 */
import test from 'ava';
import { SCENARIOS } from '../scenarios/registry.ts';
import { overcommit } from '../scenarios/overcommit.ts';

test('overcommit narrates 1.5× on a live host and ends with every guest\'s data verified', async (t) => {
  t.is(SCENARIOS.find((s) => s.name === 'overcommit')?.run, overcommit);
  const lines: string[] = [];
  await overcommit((l) => lines.push(l));
  const text = lines.join('\n');
  t.regex(text, /384 MiB promised on 256 MiB, 1\.5× overcommitted/);
  t.regex(text, /All four booted \(populate on demand/);
  t.regex(text, /guest granted shared ballooned swapped \| host free/);
  // The policy's steps, in ESX's order: sharing when overcommitted, then balloon targets (soft), then the pager (hard).
  const step = (re: RegExp) => lines.findIndex((l) => re.test(l));
  // How many guests it has seen then depends on when its look falls: the guests are created one
  // after another, and on a loaded machine a look can land after the third (288 MiB is already
  // more than the host has for them). The order is what is checked.
  const over = step(/policy: overcommitted: \d+\.\d MiB promised to [1-4] guests?, .* sharing on; the pager armed/);
  const soft = step(/policy: soft: .* below .*: balloon targets lowered by the pages never touched/);
  t.true(over >= 0 && soft > over, 'sharing is turned on before any balloon target is lowered');
  const hard = step(/policy: hard: .* the pager wrote \d+ pages to paging files/);
  if (hard >= 0) t.true(hard > soft, 'the pager is reported only after the balloon step');
  t.regex(text, /sharing: \d+ shared frames \(Xen nr_shared_mfns, KSM pages_shared\) mapped \d+ times: \d+ frames saved \(sharing_freed_memory/);
  t.regex(text, /paging: \d+ pages written to paging files, \d+ read back on access/);
  for (const g of ['vm1', 'vm2', 'vm3', 'vm4']) t.regex(text, new RegExp(`${g}: mem-image: OK, every page read back as written`));
  t.regex(text, /5\. Every guest verified its data: 384 MiB promised on 256 MiB, nothing lost\./);
  t.regex(text, /Destroyed: the host has (\d+\.\d) MiB free again \(it had \1\)/);
});
