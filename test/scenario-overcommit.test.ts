/*
 * `npm start -- overcommit`: four 96 MiB guests on a 256 MiB host, narrated: populate on demand,
 * sharing, balloon targets, paging, the ESX-style table, and every guest's data verified.
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
  t.regex(text, /sharing: \d+ shared frames \(Xen nr_shared_mfns, KSM pages_shared\) mapped \d+ times: \d+ frames saved \(sharing_freed_memory/);
  t.regex(text, /paging: \d+ pages written to paging files, \d+ read back on access/);
  for (const g of ['vm1', 'vm2', 'vm3', 'vm4']) t.regex(text, new RegExp(`${g}: mem-image: OK, every page read back as written`));
  t.regex(text, /5\. Every guest verified its data: 384 MiB promised on 256 MiB, nothing lost\./);
  t.regex(text, /Destroyed: the host has (\d+\.\d) MiB free again \(it had \1\)/);
});
