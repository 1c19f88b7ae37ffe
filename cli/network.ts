/*
 * The network verbs of the command line: network-list, network-attach, network-detach (xl's) and
 * capture (tcpdump -w on a vif or a bridge in Dom0).
 *
 * Xen: tools/xl/xl_nic.c (main_networklist prints "Idx BE Mac Addr. handle state evt-ch
 * tx-/rx-ring-ref BE-path", one row per vif), xl network-attach DOMAIN [KEY=VALUE...] (the words of
 * a vif = [...] entry), xl network-detach DOMAIN DEVID|MAC. `capture PORT -w FILE [-c COUNT]` runs
 * until COUNT frames are written or Ctrl-C, and says how many it wrote (as tcpdump does).
 */
import type { Command } from 'commander';
import { resolve } from 'node:path';
import type { NetworkListRow } from '../dom0/toolstack/nic.ts';
import type { XlClient } from './client.ts';

export interface NetworkCliContext {
  domainVerb(name: string, summary: string): Command;
  program: Command;
  withClient<T>(cmd: Command, f: (c: XlClient) => Promise<T>): Promise<T>;
  out(s: string): void;
}

export function formatNetworkList(rows: readonly NetworkListRow[]): string {
  const lines = [`${'Idx'.padEnd(3)} ${'BE'.padEnd(2)} ${'Mac Addr.'.padEnd(17)} ${'handle'.padEnd(6)} ${'state'.padEnd(5)} ${'evt-ch'.padEnd(6)} ${'tx-'.padStart(5)}/${'rx-ring-ref'.padEnd(5)} BE-path`];
  for (const r of rows) {
    lines.push(`${String(r.devid).padEnd(3)} ${String(r.backendId).padEnd(2)} ${r.mac.padEnd(17)} ${String(r.devid).padEnd(6)} ` +
      `${String(r.state).padEnd(5)} ${String(r.evtch).padEnd(6)} ${String(r.txRingRef).padStart(5)}/${String(r.rxRingRef).padEnd(5)} ${r.backendPath}`);
  }
  return `${lines.join('\n')}\n`;
}

export function registerNetworkVerbs(ctx: NetworkCliContext): void {
  const { domainVerb, program, withClient, out } = ctx;
  domainVerb('network-list', 'a domain\'s virtual NICs: Idx BE Mac Addr. handle state evt-ch tx-/rx-ring-ref BE-path (xl network-list)')
    .action(async (domain: string, _o: unknown, cmd: Command) => {
      out(formatNetworkList(await withClient(cmd, (c) => c.call<NetworkListRow[]>({ verb: 'network-list', domain }))));
    });

  domainVerb('network-attach', 'hot-plug a vif into a running domain: the words of a vif = [...] entry, e.g. bridge=xenbr0 ip=10.0.0.5 (xl network-attach)')
    .argument('[spec...]', 'KEY=VALUE words: mac=, bridge=, ip=, rate=, mtu=, devid=')
    .action(async (domain: string, spec: string[], _o: unknown, cmd: Command) => {
      const row = await withClient(cmd, (c) => c.call<NetworkListRow>({ verb: 'network-attach', domain, spec }));
      out(formatNetworkList([row]));
    });

  domainVerb('network-detach', 'hot-unplug a vif from a running domain (xl network-detach)')
    .argument('<device>', 'the vif\'s devid or MAC')
    .action(async (domain: string, device: string, _o: unknown, cmd: Command) => {
      await withClient(cmd, (c) => c.call({ verb: 'network-detach', domain, device }));
    });

  program.command('capture').description('write a pcap of the frames on a vif or a bridge in Dom0 (tcpdump -i PORT -w FILE)')
    .argument('<port>', 'a vif (vif<domid>.<devid>) or a bridge (xenbr0)')
    .requiredOption('-w, --write <file>', 'the pcap file to write (classic libpcap, LINKTYPE_ETHERNET)')
    .option('-c, --count <n>', 'stop after this many frames (default: at Ctrl-C)', (v) => Number(v))
    .action(async (port: string, opts: { write: string; count?: number }, cmd: Command) => {
      const file = resolve(opts.write);
      const stop = () => { void withClient(cmd, (c) => c.call({ verb: 'capture-stop', port })); };
      process.once('SIGINT', stop);
      try {
        const frames = await withClient(cmd, (c) => c.call<number>({ verb: 'capture', port, file, count: opts.count }));
        out(`${frames} packets captured on ${port} into ${file}\n`);
      } finally {
        process.off('SIGINT', stop);
      }
    });
}
