/*
 * Where a live migration's SUSPEND phase goes: the first phase of the blackout, from the sender's
 * suspend request to xl seeing the domain stopped (dom0/toolstack/migration/migrate.ts), split by
 * the guest's own account of it (domu/kernel.ts suspend(): its console line "suspend: ... times:").
 *
 * Not a Xen component: a measuring tool. Two hosts in this process, one guest (memory, a vif, a
 * disk, mem-touch with a working set) moved back and forth N times; for each move it prints
 *
 *   notify    the sender's request (its notify, or control/shutdown) → the kernel's handler
 *   asked     the kernel's handler → its suspend() starting (main() picking the request up)
 *   freeze    the workload stopping between two pages (freeze_processes)
 *   quiesce   the frontends (dpm_suspend_start), with the xenstore requests and round trips it made
 *   record    the resume record written
 *   stop      the record written → xl sees the domain stopped: the console drained, the
 *             hypercall, the hypervisor stopping the vCPUs, VIRQ_DOM_EXC, the death watch's scan
 *   total     the blackout's first phase as the sender timed it
 *
 * Usage: npx tsx tools/suspend-phase.ts [--moves 6] [--wss 16] [--memory 64] [--no-disk] [--no-vif]
 * Times depend on the machine's load (say what `uptime` said); the xenstore counts do not.
 */
import { mkdtempSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { XlClient } from '../cli/client.ts';
import { startHost } from '../cli/host.ts';
import { CONSOLE_LOG } from '../dom0/toolstack/config/vm-layout.ts';
import type { MigrateResult } from '../dom0/toolstack/migration/migrate.ts';
import { consoleMatch } from '../scenarios/lib/console.ts';

const TIMES = /suspend: resume record at gfn \d+; SCHEDOP_shutdown\(SHUTDOWN_suspend\); times: asked ([\d.]+) freeze ([\d.]+) quiesce ([\d.]+) record ([\d.]+) at ([\d.]+) ms; xenstore (\d+) requests in (\d+) round trips, (\d+) watch events/g;

function arg(name: string, dflt: number): number {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? Number(process.argv[i + 1]) : dflt;
}

const moves = arg('moves', 6);
const wss = arg('wss', 16);
const memory = arg('memory', 64);
const disk = !process.argv.includes('--no-disk');
const vif = !process.argv.includes('--no-vif');

const dir = mkdtempSync(join(tmpdir(), 'rv-suspend-phase-'));
const a = await startHost({ runDir: join(dir, 'a'), memoryMiB: memory + 48, log: () => undefined });
const b = await startHost({ runDir: join(dir, 'b'), memoryMiB: memory + 48, log: () => undefined });
const xa = await XlClient.open(a.runDir);
const xb = await XlClient.open(b.runDir);
try {
  const d = join(dir, 'vm');
  mkdirSync(d);
  writeFileSync(join(d, 'vm.cfg'), `name = "sp"\nmemory = ${memory}\n` +
    (disk ? `create_images = [ "disk.img=4" ]\ndisk = [ 'disk.img,raw,xvda,rw' ]\n` : '') +
    (vif ? `vif = [ 'mac=00:16:3e:00:09:01,ip=10.0.9.1' ]\n` : '') +
    `workload = "mem-touch"\nworkload_args = [ "wss=${wss}" ]\n`);
  await xa.call({ verb: 'create', path: d });
  await consoleMatch(a.runDir, 'sp', /mem-touch: pass 1 done/);
  console.log(`${memory} MiB guest, mem-touch wss ${wss} MiB${disk ? ', a disk' : ''}${vif ? ', a vif' : ''}; ${moves} moves; load: ${readFileSync('/proc/loadavg', 'utf8').trim()}`);
  console.log('move  total = notify + asked + freeze + quiesce + record + stop (ms)   xenstore at quiesce');
  const rows: number[][] = [];
  for (let i = 0; i < moves; i++) {
    const [from, to] = i % 2 === 0 ? [xa, xb] : [xb, xa];
    const { port } = await to.call<{ port: number }>({ verb: 'migrate-receive', port: 0 });
    const r = await from.call<MigrateResult>({ verb: 'migrate', domain: 'sp', host: '127.0.0.1', port });
    const lines = [...readFileSync(join(d, CONSOLE_LOG), 'utf8').matchAll(TIMES)];
    const m = lines[i];
    if (m === undefined) throw new Error(`move ${i + 1}: no suspend line with times in the console log`);
    const [asked, freeze, quiesce, record, at] = [1, 2, 3, 4, 5].map((j) => Number(m[j]));
    const total = r.blackout[0].ms;
    const stopped = r.suspendedAt + total;
    const stop = stopped - at;
    const toGuest = at - (asked + freeze + quiesce + record) - r.suspendedAt;
    const row = [total, toGuest, asked, freeze, quiesce, record, stop];
    rows.push(row);
    console.log(`${String(i + 1).padStart(4)}  ${row.map((x) => x.toFixed(2).padStart(6)).join('  ')}   ${m[6]} requests, ${m[7]} round trips, ${m[8]} watch events`);
    // The resumed kernel's boot path done (its disk and vif back), and its workload going again.
    await consoleMatch(i % 2 === 0 ? b.runDir : a.runDir, 'sp', /resume: [\s\S]*disks: [\s\S]*mem-touch: pass \d+ done/);
    await new Promise((res) => setTimeout(res, 200)); // between moves, not inside one
  }
  const med = (k: number) => rows.map((r) => r[k]).sort((p, q) => p - q)[rows.length >> 1];
  console.log(`median ${[0, 1, 2, 3, 4, 5, 6].map((k) => med(k).toFixed(2).padStart(6)).join('  ')}`);
  console.log(`load after: ${readFileSync('/proc/loadavg', 'utf8').trim()}`);
} finally {
  xa.close();
  xb.close();
  await a.close();
  await b.close();
  rmSync(dir, { recursive: true, force: true });
}
