/*
 * A pool of three hosts on this machine (cli/pool/): joined through a pool file, listed as one,
 * and balanced: when host A's hypervisor starts paging because its two guests outgrow its memory,
 * the pool live-migrates one of them to the member with the most free memory (B, not C), logs why,
 * and loses nothing: both guests' mem-touch verify every page of every pass, on A and on B, and
 * each guest is listed exactly once in the pool.
 */
import test from 'ava';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { XlClient } from '../cli/client.ts';
import { startHost, type RunningHost } from '../cli/host.ts';
import { PoolBalancer } from '../cli/pool/balancer.ts';
import { PoolFileError, ejectFromPool, joinPool, readPool } from '../cli/pool/pool-file.ts';
import { formatPoolList, viewPool } from '../cli/pool/pool-view.ts';
import { rv } from './helpers/cli.ts';
import type { ListedDomain } from '../dom0/toolstack/protocol.ts';

let dir = '';
const hosts: Record<string, RunningHost> = {};

test.before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'rv-pool-'));
  // A: 48 MiB for guests (Dom0 has 64); B: 96; C: 64.
  for (const [name, mib] of [['host-a', 112], ['host-b', 160], ['host-c', 128]] as const) {
    hosts[name] = await startHost({ runDir: join(dir, name), memoryMiB: mib, log: () => undefined });
  }
});
test.after.always(async () => {
  for (const h of Object.values(hosts)) await h.close();
  rmSync(dir, { recursive: true, force: true });
});

async function consoleSays(rh: RunningHost, domain: string, re: RegExp): Promise<RegExpMatchArray> {
  const c = await XlClient.open(rh.runDir);
  let seen = '';
  let done!: (m: RegExpMatchArray) => void;
  const matched = new Promise<RegExpMatchArray>((r) => { done = r; });
  await c.console(domain, (bytes) => { seen += Buffer.from(bytes).toString(); const m = seen.match(re); if (m) done(m); }, () => undefined);
  const m = await matched;
  c.close();
  return m;
}

test.serial('the pool file: join, refuse a second join, eject; a broken file is refused with the reason', (t) => {
  const file = join(dir, 'scratch.json');
  joinPool(file, { name: 'x', runDir: join(dir, 'host-a') });
  const p = joinPool(file, { name: 'y', runDir: join(dir, 'host-b') });
  t.is(p.master, 'x', 'the first to join is the master');
  t.throws(() => joinPool(file, { name: 'z', runDir: join(dir, 'host-a') }), { instanceOf: PoolFileError, message: /already in pool pool0 as x/ });
  t.is(ejectFromPool(file, 'x').master, 'y', 'the master left: the next member is master');
  writeFileSync(file, '{ "pool": "p", "master": "q", "members": [ { "name": "q" } ] }');
  t.throws(() => readPool(file), { message: /members\[0\] \(q\): "runDir" must be/ });
  writeFileSync(file, 'not json');
  t.throws(() => readPool(file), { message: /scratch\.json: not JSON/ });
});

test.serial('a member that starts paging has a guest moved to the member with the most free memory; nothing is lost', async (t) => {
  const poolFile = join(dir, 'pool.json');
  for (const name of ['host-a', 'host-b', 'host-c']) joinPool(poolFile, { name, runDir: hosts[name].runDir });
  const xa = await XlClient.open(hosts['host-a'].runDir);
  // The pager keeps 16 MiB free: it starts paging while a move still has frames to work with (a
  // migration reads, and so populates and pins, every page of the guest it moves).
  await xa.call({ verb: 'mem-paging', run: true, low_water_pages: 4096 });
  const lines: string[] = [];
  const balancer = new PoolBalancer(poolFile, { periodMs: 100, log: (l) => lines.push(l) });
  balancer.start();
  try {
    await balancer.tick(); // the baseline look (nothing pages yet)
    for (const [name, wss] of [['resident', 16], ['hungry', 18]] as const) {
      const d = join(dir, name);
      mkdirSync(d);
      writeFileSync(join(d, 'vm.cfg'), `name = "${name}"\nmemory = 24\nworkload = "mem-touch"\nworkload_args = [ "wss=${wss}" ]\n`);
      await xa.call({ verb: 'create', path: d });
    }
    // The two working sets (34 MiB) and the kernels take A below its pager's 16 MiB mark: it pages, and the pool acts.
    while (!balancer.decisions.some((d) => d.outcome !== undefined)) await new Promise((r) => setTimeout(r, 50));
    const d = balancer.decisions.find((x) => x.outcome !== undefined)!;
    t.log(lines.join('\n'));
    t.is(d.host, 'host-a');
    t.is(d.action, 'move');
    t.is(d.to, 'host-b', 'the member with the most free memory');
    t.regex(d.reason, /host-a is short of memory: its hypervisor paged out \d+ page\(s\) since the last look/);
    t.regex(d.outcome!, /^moved to host-b/);
    await balancer.stop();

    // Nothing lost: each guest once in the pool, and both still verify every page.
    const views = await viewPool(readPool(poolFile));
    const where = views.flatMap((v) => v.domains.filter((x) => x.domid !== 0).map((x) => `${x.name}@${v.member.name}`)).sort();
    t.deepEqual(where, [`${d.vm}@host-b`, `${d.vm === 'hungry' ? 'resident' : 'hungry'}@host-a`].sort());
    await consoleSays(hosts['host-b'], d.vm!, /mem-touch: resumed at pass (\d+)[^\n]*\n[\s\S]*mem-touch: pass \1 done/);
    const stayer = d.vm === 'hungry' ? 'resident' : 'hungry';
    // The one that stayed runs on: mem-touch throws on a page that came back wrong, crashing its
    // guest (on_crash destroys it), and it reports only its first passes and every hundredth, so
    // its CPU time growing while it is still listed is the proof.
    const cpu = async () => (await xa.call<ListedDomain[]>({ verb: 'list' })).find((x) => x.name === stayer);
    const c0 = await cpu();
    t.truthy(c0);
    let c1 = c0;
    while (c1 && !c1.shutdown && c1.cpuSeconds <= c0!.cpuSeconds) c1 = await new Promise((r) => setTimeout(r, 100)).then(cpu);
    t.true(c1 !== undefined && !c1.shutdown, `${stayer} still runs on host-a`);
    const listing = formatPoolList(readPool(poolFile), views);
    t.regex(listing, /host-a \(master\): \d+ MiB free of 112/);
    t.regex(listing, new RegExp(`host-b +${d.vm}`));
  } finally {
    await balancer.stop();
    xa.close();
  }
});

test.serial('the command line: pool-join, list --pool, pool-eject; a missing pool file is an error that names it', async (t) => {
  const file = join(dir, 'cli-pool.json');
  const j1 = await rv(['--run-dir', hosts['host-b'].runDir, 'pool-join', file, '--name', 'bee']);
  t.is(j1.code, 0, j1.stderr);
  t.regex(j1.stdout, /bee \(160 MiB\) joined pool pool0: bee \(master\)/);
  const j2 = await rv(['--run-dir', hosts['host-c'].runDir, 'pool-join', file, '--name', 'sea']);
  t.regex(j2.stdout, /joined pool pool0: bee \(master\), sea/);
  const l = await rv(['list', '--pool', file]);
  t.is(l.code, 0, l.stderr);
  t.regex(l.stdout, /bee \(master\): \d+ MiB free of 160/);
  t.regex(l.stdout, /sea: \d+ MiB free of 128/);
  t.regex((await rv(['pool-eject', file, 'bee'])).stdout, /bee left pool pool0; master: sea/);
  const bad = await rv(['pool-list', join(dir, 'nope.json')]);
  t.is(bad.code, 1);
  t.regex(bad.stderr, /nope\.json: cannot read the pool file/);
});
