/*
 * The end of `npm start -- live-migration`: the two hosts form a pool, and the pool moves a VM on
 * its own when one of them runs short of memory, as the lecture says ("virtual machines can be
 * automatically live migrated to other hosts when certain resources become scarce").
 *
 * Xen/XAPI: `xe pool-join`, `xe vm-list` across a pool, and Workload Balancing in automatic mode
 * (cli/pool/: the pool file, the pool's list, the balancer and its reasons).
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { XlClient } from '../cli/client.ts';
import type { RunningHost } from '../cli/host.ts';
import type { ListedDomain } from '../dom0/toolstack/protocol.ts';
import { memTouchResumed } from './lib/console-wait.ts';
import { PoolBalancer } from '../cli/pool/balancer.ts';
import { joinPool, readPool } from '../cli/pool/pool-file.ts';
import { formatPoolList, viewPool } from '../cli/pool/pool-view.ts';

/** A running guest's CPU time, or null if it is gone or stopped. */
async function cpuOf(x: XlClient, name: string): Promise<number | null> {
  const d = (await x.call<ListedDomain[]>({ verb: 'list' })).find((e) => e.name === name);
  return d === undefined || d.shutdown || d.dying ? null : d.cpuSeconds;
}

export async function poolPart(say: (line: string) => void, a: RunningHost, b: RunningHost, dir: string, step: number): Promise<void> {
  const poolFile = join(dir, 'pool.json');
  joinPool(poolFile, { name: 'host-a', runDir: a.runDir });
  joinPool(poolFile, { name: 'host-b', runDir: b.runDir });
  say('');
  say(`${step}. A and B join a pool (ringvisor pool-join ${poolFile}): a small file naming the hosts that know each`);
  say('   other, A first and so the master, as in a XenServer pool. The pool balancer looks at every member\'s');
  say('   memory (xl info) and, when a member\'s hypervisor starts paging guest memory out to disk (its last');
  say('   resort when frames run short), live-migrates that member\'s largest guest that fits to the member with');
  say('   the most free memory, as XenServer\'s Workload Balancing does in automatic mode.');

  const xb = await XlClient.open(b.runDir);
  // B's pager keeps 16 MiB free: it starts while a move still has frames to work with.
  await xb.call({ verb: 'mem-paging', run: true, low_water_pages: 4096 });
  const decisions: string[] = [];
  const balancer = new PoolBalancer(poolFile, { periodMs: 100, log: (l) => decisions.push(l) });
  await balancer.tick(); // the baseline look
  balancer.start();
  try {
    for (const [name, wss] of [['alpha', 24], ['beta', 26]] as const) {
      const d = join(dir, name);
      mkdirSync(d);
      writeFileSync(join(d, 'vm.cfg'), `name = "${name}"\nmemory = 32\nworkload = "mem-touch"\nworkload_args = [ "wss=${wss}" ]\n`);
      await xb.call({ verb: 'create', path: d });
    }
    say('');
    say(`${step + 1}. On B (64 MiB for guests), "alpha" and "beta", 32 MiB each, start writing working sets of 24 and 26 MiB.`);
    say('   Populate-on-demand gives them frames as they touch pages, until B falls below its pager\'s mark');
    say('   (mem-paging, 16 MiB free) and the pager starts writing guest pages out. The pool sees it:');
    while (!balancer.decisions.some((d) => d.outcome !== undefined)) await new Promise((r) => setTimeout(r, 50));
    await balancer.stop();
    for (const l of decisions) say(`     ${l}`);
    const moved = balancer.decisions.find((d) => d.outcome !== undefined)!;
    const stayer = moved.vm === 'alpha' ? 'beta' : 'alpha';
    const views = await viewPool(readPool(poolFile));
    say('   ringvisor list --pool:');
    for (const l of formatPoolList(readPool(poolFile), views).trimEnd().split('\n')) say(`     ${l}`);
    if (moved.outcome!.startsWith('moved')) {
      const on = moved.to === 'host-a' ? a : b;
      const m = await memTouchResumed(on.runDir, moved.vm!);
      say(`   On A, ${moved.vm} resumed its pass ${m.pass} and finished it, checking every page it had written on B;`);
      // mem-touch reports its first passes and then every hundredth; a page that came back wrong
      // throws, which crashes the guest (and on_crash destroys it). Running on is the proof.
      const t0 = await cpuOf(xb, stayer);
      let t1 = t0;
      while (t1 !== null && t0 !== null && t1 <= t0) t1 = await new Promise((r) => setTimeout(r, 100)).then(() => cpuOf(xb, stayer));
      say(`   ${stayer} stayed on B and runs on, verifying (CPU time ${t0?.toFixed(1)} s, then ${t1?.toFixed(1)} s; a page that came back`);
      say('   wrong would have crashed it). No VM was lost, none is listed twice.');
    } else {
      say(`   The move did not complete (${moved.outcome}); ${moved.vm} runs on at B, as xl's rules say.`);
    }
  } finally {
    await balancer.stop();
    xb.close();
  }
}
