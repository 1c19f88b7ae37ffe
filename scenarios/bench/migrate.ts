/*
 * The migrate suite: live migration of a guest between two hosts on this machine (loopback TCP),
 * with a writable working set of 0, 16 and 64 MiB (mem-touch) on a 256 MiB guest (--quick: a
 * 64 MiB guest with 0, 4 and 16 MiB). Each row: total time, downtime (the suspend request to the
 * target's "unpaused" report), precopy rounds, and pages sent in all, medians over the repeats.
 *
 * Xen: what Clark et al. measured (NSDI 2005, "Live Migration of Virtual Machines": 60 ms of
 * downtime for a Quake 3 server, 210 ms for SPECweb; XEN-FACTS.md Part 2 section 4.5); their
 * downtime is seen by a client, ours is the toolstack's (a udp-rr peer's view is not measured yet).
 * The guest's suspend here includes closing its frontends' xenbus connections and the target's
 * domain build, which Xen's downtime includes too (the guest's resume and reconnection).
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { XlClient } from '../../cli/client.ts';
import { startHost } from '../../cli/host.ts';
import type { MigrateResult } from '../../dom0/toolstack/migration/migrate.ts';
import { median, type BenchRow, type SuiteOptions } from './types.ts';

export async function benchMigrate(opts: SuiteOptions): Promise<BenchRow[]> {
  const say = opts.progress ?? (() => {});
  const guestMiB = opts.quick ? 64 : 256;
  const sets = opts.quick ? [0, 4, 16] : [0, 16, 64];
  const repeats = opts.quick ? 1 : 3;
  const dir = mkdtempSync(join(tmpdir(), 'rv-bench-mig-'));
  const a = await startHost({ runDir: join(dir, 'a'), memoryMiB: guestMiB + 64, log: () => undefined });
  const b = await startHost({ runDir: join(dir, 'b'), memoryMiB: guestMiB + 64, log: () => undefined });
  const xa = await XlClient.open(a.runDir);
  const xb = await XlClient.open(b.runDir);
  const rows: BenchRow[] = [];
  try {
    for (const wss of sets) {
      const runs: MigrateResult[] = [];
      for (let i = 0; i < repeats; i++) {
        const name = `mig-${wss}-${i}`;
        const d = join(dir, name);
        mkdirSync(d);
        writeFileSync(join(d, 'vm.cfg'), `name = "${name}"\nmemory = ${guestMiB}\n` +
          (wss === 0 ? 'workload = "idle"\n' : `workload = "mem-touch"\nworkload_args = [ "wss=${wss}" ]\n`));
        await xa.call({ verb: 'create', path: d });
        await consoleSays(a.runDir, name, wss === 0 ? /workload idle/ : /mem-touch: pass 1 done/);
        // Alternate directions so neither host is always the source.
        const [from, to] = i % 2 === 0 ? [xa, xb] : [xb, xa];
        if (i % 2 === 1) { // bring it to b first, untimed
          const { port } = await xb.call<{ port: number }>({ verb: 'migrate-receive', port: 0 });
          await xa.call({ verb: 'migrate', domain: name, host: '127.0.0.1', port });
        }
        const { port } = await to.call<{ port: number }>({ verb: 'migrate-receive', port: 0 });
        const r = await from.call<MigrateResult>({ verb: 'migrate', domain: name, host: '127.0.0.1', port });
        say(`migrate: ${guestMiB} MiB guest, working set ${wss} MiB: ${r.rounds} rounds, ${r.pagesSent} pages, ` +
          `downtime ${r.downtimeMs.toFixed(1)} ms, total ${r.totalMs.toFixed(0)} ms; blackout: ` +
          r.blackout.map((p) => `${p.phase} ${p.ms.toFixed(1)}`).join(' | ') + `; rounds ms ${r.roundMs.map((m) => m.toFixed(0)).join(', ')}`);
        runs.push(r);
        await to.call({ verb: 'destroy', domain: name });
      }
      const total = median(runs.map((r) => r.totalMs));
      const bytes = median(runs.map((r) => r.bytesSent));
      rows.push({
        suite: 'migrate', path: 'precopy', wait: 'irq', workload: `guest ${guestMiB} MiB, wss ${wss} MiB`, blockSize: 4096, queueDepth: 1,
        reqPerSec: median(runs.map((r) => r.pagesSent)) / (total / 1000), MBps: bytes / 1048576 / (total / 1000),
        counters: {
          totalMs: total, downtimeMs: median(runs.map((r) => r.downtimeMs)), rounds: median(runs.map((r) => r.rounds)),
          pagesSent: median(runs.map((r) => r.pagesSent)), finalPages: median(runs.map((r) => r.finalPages)),
        },
        medianUs: median(runs.map((r) => r.downtimeMs)) * 1000, repeats,
      });
    }
  } finally {
    xa.close();
    xb.close();
    await a.close();
    await b.close();
    rmSync(dir, { recursive: true, force: true });
  }
  return rows;
}

async function consoleSays(runDir: string, domain: string, re: RegExp): Promise<void> {
  const c = await XlClient.open(runDir);
  let seen = '';
  let done!: () => void;
  const matched = new Promise<void>((r) => { done = r; });
  await c.console(domain, (bytes) => { seen += Buffer.from(bytes).toString(); if (re.test(seen)) done(); }, () => undefined);
  await matched;
  c.close();
}

/** One line beside the table: the downtime and total per working set. */
export function migrateSummary(rows: readonly BenchRow[]): string | null {
  const m = rows.filter((r) => r.suite === 'migrate');
  if (m.length === 0) return null;
  return ['live migration (loopback, this machine): downtime / total / rounds / pages sent', ...m.map((r) =>
    `  ${r.workload}: ${r.counters.downtimeMs.toFixed(1)} ms / ${r.counters.totalMs.toFixed(0)} ms / ${r.counters.rounds} / ${r.counters.pagesSent}`),
  '  (Clark et al., NSDI 2005: 60 ms downtime for a Quake 3 server, 210 ms for SPECweb, seen by clients on 2005 hardware)'].join('\n');
}
