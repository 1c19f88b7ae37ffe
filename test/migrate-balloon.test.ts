/*
 * Live migration of a ballooned-down guest (dom0/toolstack/migration/migrate.ts with
 * ./balloon-state.ts): the balloon target travels with the config, as it does in a save file
 * (libxl keeps target_memkb in the domain's config), so the target host gives the guest the size
 * it had: memory/target, max_mem and `xl list` agree with the source's, the holes stay holes, and
 * the guest's balloon resumes at its target with its data verified.
 */
import test from 'ava';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { XlClient } from '../cli/client.ts';
import type { RunningHost } from '../cli/host.ts';
import { twoHosts } from './helpers/two-hosts.ts';
import { xsOpen } from '../dom0/lib/libxenstore.ts';
import type { MigrateResult } from '../dom0/toolstack/migration/migrate.ts';
import type { CreateResult, ListedDomain } from '../dom0/toolstack/protocol.ts';
import { MAX_GUEST_PAGES } from '../hypervisor/state.ts';
import { consoleMatch } from '../scenarios/lib/console.ts';

const PAGES = 32 * 256;
const H = twoHosts(test, 'rv-mig-balloon-', 96);

function holes(rh: RunningHost, domid: number): number {
  let n = 0;
  for (let g = 0; g < PAGES; g++) if (rh.host.hv.p2m[domid * MAX_GUEST_PAGES + g] === 0) n++;
  return n;
}
const listed = async (x: XlClient, name: string) => (await x.call<ListedDomain[]>({ verb: 'list' })).find((d) => d.name === name);

test.serial('a ballooned-down guest moves with its balloon target: the target host sets the same size', async (t) => {
  const d = join(H.dir, 'mb1');
  mkdirSync(d);
  writeFileSync(join(d, 'vm.cfg'), 'name = "mb1"\nmemory = 32\non_crash = "preserve"\nworkload = "mem-touch"\nworkload_args = [ "wss=2" ]\n');
  const first = await H.xa.call<CreateResult>({ verb: 'create', path: d });
  await consoleMatch(H.a.runDir, 'mb1', /mem-touch: pass 1 done/);
  await H.xa.call({ verb: 'mem-set', domain: 'mb1', size: '20m' });
  await consoleMatch(H.a.runDir, 'mb1', /xen:balloon: at target: 20480 KiB/);
  const holesBefore = holes(H.a, first.domid);
  const memBefore = (await listed(H.xa, 'mb1'))!.memMiB;
  t.true(holesBefore >= 12 * 256, `the balloon made ${holesBefore} holes`);

  const { port } = await H.xb.call<{ port: number }>({ verb: 'migrate-receive', port: 0, paused: true });
  await H.xa.call<MigrateResult>({ verb: 'migrate', domain: 'mb1', host: '127.0.0.1', port });
  const there = await listed(H.xb, 'mb1');
  t.truthy(there, 'the guest is on the target');
  t.is(holes(H.b, there!.domid), holesBefore, 'the same holes');
  t.is(there!.memMiB, memBefore, 'xl list shows the same size on the target');
  const xs = await xsOpen(H.b.xenstoredSocket);
  try {
    t.is(await xs.read(`/local/domain/${there!.domid}/memory/target`), '20480', 'memory/target as the source had it');
  } finally {
    xs.close();
  }

  await H.xb.call({ verb: 'unpause', domain: 'mb1' });
  await consoleMatch(H.b.runDir, 'mb1', new RegExp(`xen:balloon: resumed with ${holesBefore} pages in the balloon \\(20480 KiB\\)`));
  const resumed = await consoleMatch(H.b.runDir, 'mb1', /mem-touch: resumed at pass (\d+)/);
  await consoleMatch(H.b.runDir, 'mb1', new RegExp(`mem-touch: pass ${Number(resumed[1])} done`));
  // The guest's balloon stays at the target it resumed with: nothing asks it to deflate.
  t.false((await listed(H.xb, 'mb1'))!.shutdown, 'running, not crashed');
  await H.xb.call({ verb: 'destroy', domain: 'mb1' });
});
