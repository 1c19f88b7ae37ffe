/*
 * `ringvisor trace -w FILE [-e CLASSES] [-d SECONDS]`: record a running host's trace and write it
 * as Trace Event JSON for ui.perfetto.dev (xentrace, with xenalyze's pairing done at once).
 *
 * Xen: tools/xentrace/xentrace.c (-e event mask, writes to a file). The recording is done by the
 * toolstack in Dom0 (dom0/toolstack/trace.ts), which writes the file, as xentrace does.
 */
import { resolve } from 'node:path';
import type { Command } from 'commander';
import type { XlClient } from './client.ts';
import { parseClasses } from '../tools/trace/record.ts';

export function addTraceVerb(program: Command, withClient: <T>(cmd: Command, f: (c: XlClient) => Promise<T>) => Promise<T>,
  out: (s: string) => void): void {
  program.command('trace').description('record what the host does for a while, as Trace Event JSON for ui.perfetto.dev (xentrace)')
    .requiredOption('-w, --write <file>', 'where to write the JSON')
    .option('-e, --events <classes>', 'classes: gen,sched,hvm,mem,pv,guest,all or a mask like 0x0008f000', 'all')
    .option('-d, --duration <seconds>', 'how long to record', '5')
    .action(async (o: { write: string; events: string; duration: string }, cmd: Command) => {
      const mask = parseClasses(o.events);
      const seconds = Number(o.duration);
      if (!(seconds > 0)) throw new Error(`-d: "${o.duration}" is not a positive number of seconds`);
      const path = resolve(o.write);
      const n = await withClient(cmd, (c) => c.call<number>({ verb: 'trace', mask, seconds, path }));
      out(`${n} records in ${path} (open it in https://ui.perfetto.dev)`);
    });
}
