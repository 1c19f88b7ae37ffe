/*
 * The memory verbs of the command line: mem-set and mem-max, and the switches of the sharing
 * scanner (mem-sharing), the pager (mem-paging) and the policy that drives them (mem-policy).
 *
 * Xen: tools/xl/xl_mem.c (main_memset, main_memmax). Sizes as xl takes them: a number with an
 * optional unit b, k, m, g or t, KiB when none ("256m"). The toolstack's side is
 * dom0/toolstack/mem.ts; `list` shows each domain's current size, `info` the host's free memory
 * and the sharing and paging counters.
 */
import { type Command, InvalidArgumentError } from 'commander';
import type { XlClient } from './client.ts';

interface Wiring {
  withClient<T>(cmd: Command, f: (c: XlClient) => Promise<T>): Promise<T>;
  out(s: string): void;
}

const onOff = (v: string): boolean => {
  if (v === 'on' || v === '1') return true;
  if (v === 'off' || v === '0') return false;
  throw new InvalidArgumentError('expected on or off');
};
const count = (v: string): number => {
  if (!/^[0-9]+$/.test(v)) throw new InvalidArgumentError('expected a whole number');
  return Number(v);
};

export function registerMemVerbs(program: Command, w: Wiring): void {
  program.command('mem-sharing').description('the page-sharing scanner: on/off and KSM\'s knobs; prints its settings (KSM /sys/kernel/mm/ksm)')
    .argument('[run]', 'on or off (default: leave it)', onOff)
    .option('--pages <n>', 'pages to scan per pass (KSM pages_to_scan, default 100)', count)
    .option('--sleep <ms>', 'milliseconds between passes (KSM sleep_millisecs, default 20)', count)
    .action(async (run: boolean | undefined, o: { pages?: number; sleep?: number }, cmd: Command) => {
      const s = await w.withClient(cmd, (c) => c.call({ verb: 'mem-sharing', run, pages_to_scan: o.pages, sleep_millisecs: o.sleep }));
      w.out(`${JSON.stringify(s)}\n`);
    });
  program.command('mem-paging').description('the hypervisor pager: on/off and its low-water mark; prints its settings (xenpaging)')
    .argument('[run]', 'on or off (default: leave it)', onOff)
    .option('--low-water <pages>', 'keep at least this many frames free by paging out', count)
    .action(async (run: boolean | undefined, o: { lowWater?: number }, cmd: Command) => {
      const s = await w.withClient(cmd, (c) => c.call({ verb: 'mem-paging', run, low_water_pages: o.lowWater }));
      w.out(`${JSON.stringify(s)}\n`);
    });
  program.command('mem-policy').description('the toolstack\'s memory policy: sharing first, then balloon targets, paging last (ESX\'s soft and hard states); prints its state')
    .argument('[run]', 'on or off (default: leave it)', onOff)
    .option('--soft <pages>', 'free frames below which balloon targets are lowered', count)
    .option('--hard <pages>', 'free frames the pager keeps (the last resort)', count)
    .option('--headroom <pages>', 'untouched pages a guest keeps when its target is lowered', count)
    .option('--interval <ms>', 'how often the policy looks', count)
    .action(async (run: boolean | undefined, o: { soft?: number; hard?: number; headroom?: number; interval?: number }, cmd: Command) => {
      const s = await w.withClient(cmd, (c) => c.call({ verb: 'mem-policy', run, soft_pages: o.soft, hard_pages: o.hard, headroom_pages: o.headroom, interval_ms: o.interval }));
      w.out(`${JSON.stringify(s)}\n`);
    });

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
