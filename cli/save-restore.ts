/*
 * The save and restore verbs of the command line (xl save, xl restore).
 *
 * Xen: tools/xl/xl_saverestore.c. `save DOMAIN FILE` suspends the guest (control/shutdown =
 * "suspend"), writes it to FILE and destroys it; `restore FILE` builds a new domain from FILE (the
 * config it names, with its disks and vifs) and resumes the guest in it; -p leaves it paused.
 * `migrate-receive` listens for one incoming guest (a TCP port; xl runs it over ssh instead) and
 * `migrate DOMAIN HOST:PORT` moves a running guest there with precopy rounds, then reports rounds,
 * pages and downtime. The work is the toolstack's (dom0/toolstack/migration/).
 */
import type { Command } from 'commander';
import { resolve } from 'node:path';
import type { MigrateResult } from '../dom0/toolstack/migration/migrate.ts';
import { CliError } from './client.ts';
import type { NetworkCliContext } from './network.ts';

export function registerSaveRestoreVerbs(ctx: NetworkCliContext): void {
  const { domainVerb, program, withClient, out } = ctx;
  domainVerb('save', 'suspend a guest and write it to a file, then destroy it (xl save)')
    .argument('<file>', 'the save file to write')
    .action(async (domain: string, file: string, _o: unknown, cmd: Command) => {
      const r = await withClient(cmd, (c) => c.call<{ domid: number; name: string; pages: number; bytes: number }>({ verb: 'save', domain, file: resolve(file) }));
      out(`Saved ${r.name} (domain ${r.domid}) to ${file}: ${r.pages} pages, ${r.bytes} bytes\n`);
    });
  program.command('restore').description('build a domain from a save file and resume the guest in it (xl restore)')
    .argument('<file>', 'a file `save` wrote')
    .option('-p, --paused', 'leave it paused (xl restore -p)')
    .action(async (file: string, opts: { paused?: boolean }, cmd: Command) => {
      const r = await withClient(cmd, (c) => c.call<{ domid: number; name: string; pages: number }>({ verb: 'restore', file: resolve(file), paused: opts.paused }));
      out(`Restored ${r.name} as domain ${r.domid} (${r.pages} pages)${opts.paused ? ', paused' : ''}\n`);
    });

  program.command('migrate-receive').description('listen for one guest migrated from another host (xl migrate-receive)')
    .option('--port <n>', 'TCP port (default 0: one the system picks, printed)', '0')
    .option('--address <a>', 'address to listen on', '127.0.0.1')
    .option('-p, --paused', 'leave the guest paused when it arrives')
    .action(async (opts: { port: string; address: string; paused?: boolean }, cmd: Command) => {
      const r = await withClient(cmd, (c) => c.call<{ port: number; address: string }>({ verb: 'migrate-receive', port: Number(opts.port), address: opts.address, paused: opts.paused }));
      out(`migration receiver listening on ${r.address}:${r.port}\n`);
    });
  domainVerb('migrate', 'move a running guest to another host, live: precopy rounds, then a short stop-and-copy (xl migrate)')
    .argument('<host:port>', 'where `migrate-receive` listens')
    .option('--max-iters <n>', 'precopy rounds at most (libxc: 5)', '5')
    .option('--dirty-threshold <n>', 'stop-and-copy once fewer pages than this are dirty (libxc: 50)', '50')
    .option('--no-live', 'no precopy: suspend first, then send every page once (libxc\'s non-live save)')
    .action(async (domain: string, target: string, opts: { maxIters: string; dirtyThreshold: string; live: boolean }, cmd: Command) => {
      const m = /^(.+):(\d+)$/.exec(target);
      if (!m) throw new CliError('failed', `migrate: ${target} (expected HOST:PORT, as migrate-receive printed it)`);
      const r = await withClient(cmd, (c) => c.call<MigrateResult>({
        verb: 'migrate', domain, host: m[1], port: Number(m[2]), maxIterations: Number(opts.maxIters), dirtyThreshold: Number(opts.dirtyThreshold), live: opts.live,
      }));
      out(`migrated ${r.name}: ${r.rounds} precopy round(s) of ${r.pagesPerRound.join(', ')} pages, stop-and-copy ${r.finalPages} pages, ` +
        `${r.pagesSent} pages (${(r.bytesSent / 1048576).toFixed(1)} MiB) in all; downtime ${r.downtimeMs.toFixed(1)} ms, total ${r.totalMs.toFixed(0)} ms\n`);
    });
}
