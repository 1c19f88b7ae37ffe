/*
 * The save and restore verbs of the command line (xl save, xl restore).
 *
 * Xen: tools/xl/xl_saverestore.c. `save DOMAIN FILE` suspends the guest (control/shutdown =
 * "suspend"), writes it to FILE and destroys it; `restore FILE` builds a new domain from FILE (the
 * config it names, with its disks and vifs) and resumes the guest in it; -p leaves it paused.
 * The work is the toolstack's (dom0/toolstack/migration/save-restore.ts).
 */
import type { Command } from 'commander';
import { resolve } from 'node:path';
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
}
