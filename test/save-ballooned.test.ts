/*
 * xl save / xl restore of a guest with memory it never touched (populate on demand) and memory it
 * ballooned out (issue 14 with issue 15's stream; dom0/toolstack/migration/balloon-state.ts,
 * hypervisor/mm/pfinfo.ts, domu/balloon/balloon.ts's saved list). The save sends only the RAM the
 * guest has: a ballooned hole goes as XTAB and an untouched PoD page as XALLOC, no contents, none
 * of them populated on the way. The restored domain has the same holes, the same balloon target and
 * `xl list` size, no frame for what was never touched, and its guest's balloon knows its pages: the
 * workload verifies its data after the resume, and deflating the balloon afterwards fills the holes.
 */
import test from 'ava';
import { mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { finalHoles } from '../dom0/toolstack/migration/balloon-state.ts';
import { readSaveImage } from '../dom0/toolstack/migration/stream-read.ts';
import type { CreateResult, ListedDomain } from '../dom0/toolstack/protocol.ts';
import { MD, md } from '../hypervisor/mm/mm-state.ts';
import { D, MAX_GUEST_PAGES } from '../hypervisor/state.ts';
import { consoleMatch } from '../scenarios/lib/console.ts';
import { oneHost } from './helpers/one-host.ts';

const PAGES = 32 * 256;
const rig = oneHost(test, 'rv-save-balloon-', 128);

async function consoleSays(domain: string, re: RegExp): Promise<RegExpMatchArray> {
  return await consoleMatch(rig.rh.runDir, domain, re);
}

/** Holes in a domain's RAM (entries with nothing: not RAM, not PoD, not shared or paged). */
function holes(domid: number): number {
  const p2m = rig.rh.host.hv.p2m;
  let n = 0;
  for (let g = 0; g < PAGES; g++) if (p2m[domid * MAX_GUEST_PAGES + g] === 0) n++;
  return n;
}
const held = (domid: number) => rig.rh.host.hv.domains[domid * D.WORDS + D.TOT_PAGES];
const podEntries = (domid: number) => rig.rh.host.hv.mm[md(domid, MD.POD_ENTRIES)];
const listed = async (domid: number) => (await rig.xl.call<ListedDomain[]>({ verb: 'list' })).find((x) => x.domid === domid)!;

test.serial('a ballooned-down PoD guest is saved without its holes and untouched pages, and restored with the same balloon state and its data', async (t) => {
  const d = join(rig.dir, 'sb1');
  mkdirSync(d);
  writeFileSync(join(d, 'vm.cfg'), 'name = "sb1"\nmemory = 32\non_crash = "preserve"\nworkload = "mem-touch"\nworkload_args = [ "wss=2" ]\n');
  const first = await rig.xl.call<CreateResult>({ verb: 'create', path: d });
  await consoleSays('sb1', /mem-touch: pass 1 done/);
  await rig.xl.call({ verb: 'mem-set', domain: 'sb1', size: '20m' });
  await consoleSays('sb1', /xen:balloon: at target: 20480 KiB/);
  const holesBefore = holes(first.domid);
  const podBefore = podEntries(first.domid);
  const memBefore = (await listed(first.domid)).memMiB;
  t.true(holesBefore >= 12 * 256, `the balloon made ${holesBefore} holes`);
  t.true(podBefore > 0, 'pages never touched remain');

  const file = join(rig.dir, 'sb1.save');
  await rig.xl.call({ verb: 'save', domain: 'sb1', file });
  const img = readSaveImage(readFileSync(file));
  const pod = img.batches.reduce((n, b) => n + b.pod.length, 0);
  t.is(finalHoles(img).length, holesBefore, 'every hole named as XTAB');
  // The suspend itself touches a few (the resume record, the balloon's saved list).
  t.true(pod <= podBefore && pod >= podBefore - 16, `${pod} untouched pages named as XALLOC (${podBefore} before the suspend)`);
  t.is(img.pages + pod + finalHoles(img).length, PAGES, 'every gfn named once');
  t.true(statSync(file).size < (PAGES - holesBefore - podBefore + 256) * 4096, 'the file holds only what the guest touched');
  t.is(img.config.targetKiB, 20480, 'the balloon target travels with the config');

  const r = await rig.xl.call<{ domid: number }>({ verb: 'restore', file, paused: true });
  t.is(holes(r.domid), holesBefore, 'the same holes');
  t.true(held(r.domid) <= img.pages + 8, `the restored domain holds ${held(r.domid)} frames for ${img.pages} pages of data: the rest was not populated`);
  t.is((await listed(r.domid)).memMiB, memBefore, 'xl list shows the same size');

  await rig.xl.call({ verb: 'unpause', domain: String(r.domid) });
  await consoleSays('sb1', new RegExp(`xen:balloon: resumed with ${holesBefore} pages in the balloon \\(20480 KiB\\)`));
  const resumed = await consoleSays('sb1', /mem-touch: resumed at pass (\d+)/);
  // A whole pass after the resume: every page written before the save was verified (a mismatch crashes the guest).
  await consoleSays('sb1', new RegExp(`mem-touch: pass ${Number(resumed[1])} done`));
  t.false((await listed(r.domid)).shutdown, 'running, not crashed');

  // The guest's balloon and the hypervisor agree on the holes: deflating fills every one.
  await rig.xl.call({ verb: 'mem-set', domain: 'sb1', size: '32m' });
  await consoleSays('sb1', /xen:balloon: at target: 32768 KiB/);
  t.is(holes(r.domid), 0, 'no hole left after deflating');
  await rig.xl.call({ verb: 'destroy', domain: String(r.domid) });
});
