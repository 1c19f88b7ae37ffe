/*
 * The pool's verbs on the command line.
 *
 *   pool-join POOLFILE [--name NAME]   this host (--run-dir) joins the pool (xe pool-join)
 *   pool-eject POOLFILE NAME           a member leaves (xe pool-eject)
 *   pool-list POOLFILE                 every guest of the pool with its host, and each host's memory
 *                                      (also `list --pool POOLFILE`)
 *   pool-balance POOLFILE [--period MS]  run the balancer in the foreground: when a member starts
 *                                      paging, move a guest to the member with the most free
 *                                      memory; each decision printed with its reason; Ctrl-C stops
 *
 * See ./pool-file.ts for the file and ./balancer.ts for the policy.
 */
import type { Command } from 'commander';
import { basename, resolve } from 'node:path';
import type { HostInfo } from '../../dom0/toolstack/protocol.ts';
import { CliError, XlClient } from '../client.ts';
import { PoolBalancer } from './balancer.ts';
import { PoolFileError, ejectFromPool, joinPool, readPool } from './pool-file.ts';
import { formatPoolList, viewPool } from './pool-view.ts';

export interface PoolCliContext {
  program: Command;
  runDir(cmd: Command): string;
  out(s: string): void;
}

/** Pool file errors are the user's to fix: say which file and what, and exit 1. */
async function poolCall<T>(f: () => Promise<T> | T): Promise<T> {
  try {
    return await f();
  } catch (e) {
    if (e instanceof PoolFileError) throw new CliError('failed', e.message);
    throw e;
  }
}

export async function poolListText(file: string): Promise<string> {
  return poolCall(async () => {
    const p = readPool(resolve(file));
    return formatPoolList(p, await viewPool(p));
  });
}

export function registerPoolVerbs(ctx: PoolCliContext): void {
  const { program, out } = ctx;
  program.command('pool-join').description('make this host (--run-dir) a member of a pool: the pool file lists the hosts that know each other (xe pool-join)')
    .argument('<poolfile>', 'the pool file (made if missing; its first member is the master)')
    .option('--name <name>', 'this host\'s name in the pool (default: its run directory\'s name)')
    .action(async (file: string, opts: { name?: string }, cmd: Command) => {
      const dir = ctx.runDir(cmd);
      const c = await XlClient.open(dir); // only a host that answers joins
      const info = await c.call<HostInfo>({ verb: 'info' }).finally(() => c.close());
      const p = await poolCall(() => joinPool(resolve(file), { name: opts.name ?? basename(dir), runDir: dir }));
      out(`${opts.name ?? basename(dir)} (${info.total_memory} MiB) joined pool ${p.pool}: ${p.members.map((m) => m.name + (m.name === p.master ? ' (master)' : '')).join(', ')}\n`);
    });
  program.command('pool-eject').description('remove a host from a pool (xe pool-eject); its guests stay where they are')
    .argument('<poolfile>', 'the pool file')
    .argument('<name>', 'the member to remove')
    .action(async (file: string, name: string) => {
      const p = await poolCall(() => ejectFromPool(resolve(file), name));
      out(`${name} left pool ${p.pool}${p.members.length ? `; master: ${p.master}` : '; the pool has no members now'}\n`);
    });
  program.command('pool-list').description('every guest of the pool with its host, and each host\'s free memory and paging (xe vm-list across the pool)')
    .argument('<poolfile>', 'the pool file')
    .action(async (file: string) => {
      out(await poolListText(file));
    });
  program.command('pool-balance').description('run the pool\'s policy in the foreground: a member that starts paging has a guest live-migrated to the member with the most free memory; Ctrl-C stops')
    .argument('<poolfile>', 'the pool file')
    .option('--period <ms>', 'how often the members are looked at', '500')
    .action(async (file: string, opts: { period: string }) => {
      const path = resolve(file);
      await poolCall(() => readPool(path));
      const b = new PoolBalancer(path, { periodMs: Math.max(50, Number(opts.period) || 500), log: (l) => out(`${new Date().toISOString()} ${l}\n`) });
      b.start();
      out(`balancing pool ${readPool(path).pool}: a member is short of memory when its hypervisor pages out (Ctrl-C stops)\n`);
      await new Promise<void>((r) => process.once('SIGINT', () => r()));
      await b.stop();
    });
}
