/*
 * `npm start -- live-migration` (also `migrate`): a guest moves, running, from one host to another
 * on this machine, narrated: what a resumable guest is, the receiver, each precopy round with the
 * pages log-dirty caught being written, the stop-and-copy, the renames, the downtime as the
 * toolstack counts it and as a client on a third host saw it (../lib/outage-peer.ts: the guest
 * serves udp-rr beside its workload, the client asks back to back), and the guest carrying on at
 * the other end with its working set verified; then xl save and restore of the same guest; then
 * the two hosts as a pool that moves a VM on its own when one runs short of memory (./live-migration-pool.ts).
 *
 * Xen: xl migrate / xl migrate-receive, libxc's precopy over XEN_DOMCTL_shadow_op, Linux's
 * xen_suspend and resume path; Clark et al., "Live Migration of Virtual Machines" (NSDI 2005).
 */
import { mkdirSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { XlClient } from '../cli/client.ts';
import type { RunningHost } from '../cli/host.ts';
import type { MigrateResult } from '../dom0/toolstack/migration/migrate.ts';
import { consoleSays, memTouchResumed } from './lib/console-wait.ts';
import { OutagePeer, RR_PORT, startUplinkedHost, vifFor } from './lib/outage-peer.ts';
import { poolPart } from './live-migration-pool.ts';

export async function liveMigration(say: (line: string) => void): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'ringvisor-live-migration-'));
  const rounds: string[] = [];
  const renames: string[] = [];
  const hostLog = (host: string) => (l: string) => {
    if (/xl migrate: round/.test(l)) rounds.push(l.replace(/^.*xl migrate: /, ''));
    const m = /xl: domain \d+ renamed from (\S+) to (\S+)/.exec(l);
    if (m && renames.length < 4) renames.push(`on ${host}: ${m[1]} -> ${m[2]}`); // the first move's; the pool's come later
  };
  let a: RunningHost | null = null;
  let b: RunningHost | null = null;
  let c: RunningHost | null = null;
  try {
    const ua = await startUplinkedHost({ runDir: join(dir, 'host-a'), memoryMiB: 128, log: hostLog('A') });
    const ub = await startUplinkedHost({ runDir: join(dir, 'host-b'), memoryMiB: 128, log: hostLog('B') }, [ua.port]);
    const uc = await startUplinkedHost({ runDir: join(dir, 'host-c'), memoryMiB: 112 }, [ua.port, ub.port]);
    [a, b, c] = [ua.host, ub.host, uc.host];
    const xa = await XlClient.open(a.runDir);
    const xb = await XlClient.open(b.runDir);
    say('1. Two hosts on this machine, A and B, each a hypervisor with its Dom0 and toolstack. In a Xen');
    say('   pool they would be two machines on one network with shared storage; here the VM\'s directory');
    say('   (its config and disk image) is the shared storage, and the stream goes over loopback TCP. A third');
    say('   host, C, stands for a client\'s machine. Each host\'s bridge, xenbr0, has an uplink through its network');
    say(`   card, and the three cards' wires (UDP on 127.0.0.1: A ${ua.port}, B ${ub.port}, C ${uc.port}) make one Ethernet segment.`);

    const vmDir = join(dir, 'wanderer');
    mkdirSync(vmDir);
    const vif = vifFor(10);
    writeFileSync(join(vmDir, 'vm.cfg'), 'name = "wanderer"\nmemory = 64\ncreate_images = [ "disk.img=8" ]\n' +
      `disk = [ 'disk.img,raw,xvda,rw' ]\n${vif.line}\nworkload = "mem-touch"\nworkload_args = [ "wss=8", "serve=${RR_PORT}" ]\n`);
    await xa.call({ verb: 'create', path: vmDir });
    await consoleSays(a.runDir, 'wanderer', /mem-touch: pass 1 done/);
    say('');
    say('2. On A, "wanderer" (64 MiB, a PV disk, a vif) runs mem-touch: it rewrites an 8 MiB working set page by');
    say('   page and checks every page against what it wrote the pass before. Its progress (pass, page, seed) is');
    say('   in a page of its own memory, its resume record: this kernel keeps what it needs to continue in');
    say('   guest memory, because a page copy is all that will reach the other host. Beside it, it serves');
    say(`   udp-rr on ${vif.ip}:${RR_PORT} (serve=${RR_PORT}): each request comes back as it was sent.`);
    const peer = await OutagePeer.start(c, dir, { name: 'client', vif: 11, target: vif.ip });
    say(`   On C, a guest, "client", asks it (udp-probe): one request in flight, the next as soon as the answer`);
    say(`   is in, each answer checked (its sequence number and checksum); ${peer.counts().answered} answered so far, ${peer.counts().bad} bad.`);

    const { port } = await xb.call<{ port: number }>({ verb: 'migrate-receive', port: 0 });
    say('');
    say(`3. On B, the receiver listens (xl migrate-receive) on 127.0.0.1:${port}. It will say`);
    say('   "xl migration receiver ready, send binary domain data." when A connects.');

    const r = await xa.call<MigrateResult>({ verb: 'migrate', domain: 'wanderer', host: '127.0.0.1', port });
    say('');
    say('4. A migrates it (xl migrate wanderer 127.0.0.1:PORT), live. Log-dirty mode is on: the hypervisor\'s');
    say('   write gate marks every page the guest writes. Round 1 goes over all of memory; each later round over');
    say('   the pages written while the round before was on the wire. Every round leaves out the pages written');
    say('   again before their turn, which the next round sends (legacy libxc\'s to_skip; libxc stops below 50,');
    say('   or after 5 rounds):');
    for (const l of rounds) say(`     ${l}`);
    say(`   Stop-and-copy: A asks the guest to suspend (control/shutdown = "suspend"); it freezes mem-touch`);
    say('   between two pages, closes its disk, writes its resume record and makes SCHEDOP_shutdown(suspend).');
    say(`   A sends the last ${r.finalPages} dirty pages, the vCPU context (the record's gfn) and END; B builds the`);
    say('   domain, fills its memory, and unpauses it when A clears it ("domain is yours, you are cleared to unpause").');
    say(`   In all: ${r.pagesSent} pages (${(r.bytesSent / 1048576).toFixed(1)} MiB) for a ${64} MiB guest, ${r.totalMs.toFixed(0)} ms;`);
    say(`   downtime ${r.downtimeMs.toFixed(0)} ms, from the suspend request to B's "unpaused" (this machine, maybe loaded).`);
    say('   The names on the way, as xl gives them: B\'s copy is wanderer--incoming until A clears it to unpause,');
    say('   A\'s is wanderer--migratedaway from B\'s "ready" until A destroys it; the hosts logged (each in its own order):');
    for (const l of renames) say(`     ${l}`);
    const outage = await peer.outageAround(r);
    if (outage === null) {
      say('   The client on C heard nothing from it again within 10 s.');
    } else {
      const after = await peer.answeredBeyond(outage.after.seq + 100);
      say(`   The client on C saw ${outage.ms.toFixed(0)} ms without answers: its last answer (request ${outage.before.seq}) came`);
      say(`   ${Math.abs(outage.lastBeforeSuspendMs).toFixed(0)} ms ${outage.lastBeforeSuspendMs >= 0 ? 'before' : 'after'} the suspend request, the first from B (request ${outage.after.seq}) ` +
        `${Math.abs(outage.firstAfterUnpauseMs).toFixed(0)} ms ${outage.firstAfterUnpauseMs >= 0 ? 'after' : 'before'} A heard "unpaused":`);
      say('   beyond the toolstack\'s downtime, a client also waits for the guest to quiesce before it stops, and after');
      say('   it runs again for netfront to reconnect to B\'s netback and its gratuitous ARP to tell the bridges where');
      say(`   it went (resolution: one round trip at the start, the client's ${peer.retryMs} ms re-asking at the end).`);
      say(`   It has had ${after.answered} answers in all, ${after.bad} bad: the same server, found on B.`);
    }
    await peer.stop();
    say('   Clark et al. (NSDI 2005) measured 60 ms for a Quake 3 server and 210 ms for SPECweb on Xen, as their');
    say('   clients saw it.');

    const m = await memTouchResumed(b.runDir, 'wanderer');
    say('');
    say('5. On B, a fresh vCPU thread booted the same kernel in resume mode. It found its record, took back');
    say('   the pages it had reserved, reconnected its disk to B\'s blkback through the xenbus handshake, and:');
    say(`     ${m.line}`);
    say(`   It has since finished pass ${m.finished}, checking every page written on A: nothing was lost on the way.`);
    const onA = (await xa.call<{ name: string }[]>({ verb: 'list' })).some((d) => d.name === 'wanderer');
    say(`   A destroyed its copy (still listed on A: ${onA ? 'yes' : 'no'}).`);

    const file = join(dir, 'wanderer.save');
    await xb.call({ verb: 'save', domain: 'wanderer', file });
    const restored = await xb.call<{ domid: number }>({ verb: 'restore', file });
    await memTouchResumed(b.runDir, 'wanderer');
    say('');
    say(`6. A VM is files: xl save wrote it to ${file} (${(statSync(file).size / 1048576).toFixed(1)} MiB: xl's header and`);
    say(`   config, then libxc's records), and xl restore brought it back as domain ${restored.domid}, carrying on again.`);
    await xb.call({ verb: 'destroy', domain: 'wanderer' });
    await poolPart(say, a, b, dir, 7);
    xa.close();
    xb.close();
  } finally {
    await a?.close();
    await b?.close();
    await c?.close();
    rmSync(dir, { recursive: true, force: true });
  }
}
