/*
 * `npm start -- live-migration` (also `migrate`): a guest moves, running, from one host to another
 * on this machine, narrated: what a resumable guest is, the receiver, each precopy round with the
 * pages log-dirty caught being written, the stop-and-copy, the downtime, and the guest carrying on
 * at the other end with its working set verified; then xl save and restore of the same guest; then
 * the two hosts as a pool that moves a VM on its own when one runs short of memory (./live-migration-pool.ts).
 *
 * Xen: xl migrate / xl migrate-receive, libxc's precopy over XEN_DOMCTL_shadow_op, Linux's
 * xen_suspend and resume path; Clark et al., "Live Migration of Virtual Machines" (NSDI 2005).
 */
import { mkdirSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { XlClient } from '../cli/client.ts';
import { startHost, type RunningHost } from '../cli/host.ts';
import type { MigrateResult } from '../dom0/toolstack/migration/migrate.ts';
import { poolPart } from './live-migration-pool.ts';
import { consoleMatch } from './lib/console.ts';
import { SCENARIO_BOUND_S } from './lib/hang.ts';

export async function liveMigration(say: (line: string) => void): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'ringvisor-live-migration-'));
  const rounds: string[] = [];
  const hostLog = (l: string) => { if (/xl migrate: round/.test(l)) rounds.push(l.replace(/^.*xl migrate: /, '')); };
  let a: RunningHost | null = null;
  let b: RunningHost | null = null;
  try {
    a = await startHost({ runDir: join(dir, 'host-a'), memoryMiB: 128, log: hostLog });
    b = await startHost({ runDir: join(dir, 'host-b'), memoryMiB: 128, log: hostLog });
    const xa = await XlClient.open(a.runDir);
    const xb = await XlClient.open(b.runDir);
    say('1. Two hosts on this machine, A and B, each a hypervisor with its Dom0 and toolstack. In a Xen');
    say('   pool they would be two machines on one network with shared storage; here the VM\'s directory');
    say('   (its config and disk image) is the shared storage, and the stream goes over loopback TCP.');

    const vmDir = join(dir, 'wanderer');
    mkdirSync(vmDir);
    writeFileSync(join(vmDir, 'vm.cfg'), 'name = "wanderer"\nmemory = 64\ncreate_images = [ "disk.img=8" ]\n' +
      'disk = [ \'disk.img,raw,xvda,rw\' ]\nworkload = "mem-touch"\nworkload_args = [ "wss=8" ]\n');
    await xa.call({ verb: 'create', path: vmDir });
    await consoleSays(a.runDir, 'wanderer', /mem-touch: pass 1 done/);
    say('');
    say('2. On A, "wanderer" (64 MiB, a PV disk) runs mem-touch: it rewrites an 8 MiB working set page by page');
    say('   and checks every page against what it wrote the pass before. Its progress (pass, page, seed) is');
    say('   in a page of its own memory, its resume record: this kernel keeps what it needs to continue in');
    say('   guest memory, because a page copy is all that will reach the other host.');

    const { port } = await xb.call<{ port: number }>({ verb: 'migrate-receive', port: 0 });
    say('');
    say(`3. On B, the receiver listens (xl migrate-receive) on 127.0.0.1:${port}. It will say`);
    say('   "xl migration receiver ready, send binary domain data." when A connects.');

    const r = await xa.call<MigrateResult>({ verb: 'migrate', domain: 'wanderer', host: '127.0.0.1', port });
    say('');
    say('4. A migrates it (xl migrate wanderer 127.0.0.1:PORT), live. Log-dirty mode is on: the hypervisor\'s');
    say('   write gate marks every page the guest writes. Round 1 sends all of memory; each later round sends');
    say('   the pages written while the round before was on the wire (libxc stops below 50, or after 5 rounds):');
    for (const l of rounds) say(`     ${l}`);
    say(`   Stop-and-copy: A asks the guest to suspend (control/shutdown = "suspend"); it freezes mem-touch`);
    say('   between two pages, closes its disk, writes its resume record and makes SCHEDOP_shutdown(suspend).');
    say(`   A sends the last ${r.finalPages} dirty pages, the vCPU context (the record's gfn) and END; B builds the`);
    say('   domain, fills its memory, and unpauses it when A clears it ("domain is yours, you are cleared to unpause").');
    say(`   In all: ${r.pagesSent} pages (${(r.bytesSent / 1048576).toFixed(1)} MiB) for a ${64} MiB guest, ${r.totalMs.toFixed(0)} ms;`);
    say(`   downtime ${r.downtimeMs.toFixed(0)} ms, from the suspend request to B's "unpaused" (this machine, maybe loaded).`);
    say('   Clark et al. (NSDI 2005) measured 60 ms for a Quake 3 server and 210 ms for SPECweb on Xen.');

    const m = await consoleSays(b.runDir, 'wanderer', /mem-touch: resumed at pass (\d+), page (\d+)[^\n]*/);
    await consoleSays(b.runDir, 'wanderer', new RegExp(`mem-touch: pass ${m[1]} done`));
    say('');
    say('5. On B, a fresh vCPU thread booted the same kernel in resume mode. It found its record, took back');
    say('   the pages it had reserved, reconnected its disk to B\'s blkback through the xenbus handshake, and:');
    say(`     ${m[0]}`);
    say(`   It has since finished pass ${m[1]}, checking every page written on A: nothing was lost on the way.`);
    const onA = (await xa.call<{ name: string }[]>({ verb: 'list' })).some((d) => d.name === 'wanderer');
    say(`   A destroyed its copy (still listed on A: ${onA ? 'yes' : 'no'}).`);

    const file = join(dir, 'wanderer.save');
    await xb.call({ verb: 'save', domain: 'wanderer', file });
    const restored = await xb.call<{ domid: number }>({ verb: 'restore', file });
    await consoleSays(b.runDir, 'wanderer', /mem-touch: resumed at pass \d+[\s\S]*mem-touch: pass \d+ done/);
    say('');
    say(`6. A VM is files: xl save wrote it to ${file} (${(statSync(file).size / 1048576).toFixed(1)} MiB: xl's header and`);
    say(`   config, then libxc's records), and xl restore brought it back as domain ${restored.domid}, carrying on again.`);
    await xb.call({ verb: 'destroy', domain: 'wanderer' });
    await poolPart(say, a, b, dir, 7, consoleSays);
    xa.close();
    xb.close();
  } finally {
    await a?.close();
    await b?.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

async function consoleSays(runDir: string, domain: string, re: RegExp): Promise<RegExpMatchArray> {
  return await consoleMatch(runDir, domain, re, { seconds: SCENARIO_BOUND_S });
}
