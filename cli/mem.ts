/*
 * The memory verbs of the command line: mem-set and mem-max.
 *
 * Xen: tools/xl/xl_mem.c (main_memset, main_memmax). Sizes as xl takes them: a number with an
 * optional unit b, k, m, g or t, KiB when none ("256m"). The toolstack's side is
 * dom0/toolstack/mem.ts; `list` shows each domain's current size, `info` the host's free memory
 * and the sharing and paging counters.
 */
import type { Command } from 'commander';
import type { XlClient } from './client.ts';

interface Wiring {
  withClient<T>(cmd: Command, f: (c: XlClient) => Promise<T>): Promise<T>;
  out(s: string): void;
}

export function registerMemVerbs(program: Command, w: Wiring): void {
  program.command('mem-set').description('set a domain\'s balloon target; its balloon driver follows (xl mem-set)')
    .argument('<domain>', 'domain name or id').argument('<size>', 'the target: a number with unit b, k, m, g or t (KiB if none), e.g. 256m')
    .action(async (domain: string, size: string, _o: unknown, cmd: Command) => {
      await w.withClient(cmd, (c) => c.call({ verb: 'mem-set', domain, size }));
    });
  program.command('mem-max').description('set the most memory a domain may have (xl mem-max)')
    .argument('<domain>', 'domain name or id').argument('<size>', 'the maximum, as for mem-set')
    .action(async (domain: string, size: string, _o: unknown, cmd: Command) => {
      await w.withClient(cmd, (c) => c.call({ verb: 'mem-max', domain, size }));
    });
}
