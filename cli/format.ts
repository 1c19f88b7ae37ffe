/*
 * How the command line prints what the toolstack answers: the layouts xl and the xenstore tools
 * use, so a reader who knows Xen's output reads ringvisor's the same way.
 *
 * Xen: tools/xl/xl_info.c (list_domains: "%-40s %5d %5lu %5d     %c%c%c%c%c%c  %8.1f", the state
 * letters r b p s, the shutdown-reason letter from "-rscwS", d; output_physinfo's
 * "name                   : value" lines) and tools/xl/xl_block.c (main_blocklist's columns).
 * The xenstore tools' layouts are in ./xenstore.ts.
 */
import { hostname, machine, release } from 'node:os';
import type { BlockListRow, HostInfo, ListedDomain } from '../dom0/toolstack/protocol.ts';

/** SHUTDOWN_* codes in order, and xl's letter for each ("-rscwS"). */
const REASON_LETTER: Readonly<Record<string, string>> = { poweroff: '-', reboot: 'r', suspend: 's', crash: 'c', watchdog: 'w' };

export function formatList(domains: readonly ListedDomain[]): string {
  const lines = ['Name                                        ID   Mem VCPUs\tState\tTime(s)'];
  for (const d of domains) {
    const state = (d.running ? 'r' : '-') + (d.blocked ? 'b' : '-') + (d.paused ? 'p' : '-') + (d.shutdown ? 's' : '-')
      + (d.shutdown ? REASON_LETTER[d.shutdownReason ?? 'poweroff'] ?? '?' : '-') + (d.dying ? 'd' : '-');
    lines.push(`${d.name.padEnd(40)} ${String(d.domid).padStart(5)} ${String(d.memMiB).padStart(5)} ` +
      `${String(d.vcpus).padStart(5)}     ${state}  ${d.cpuSeconds.toFixed(1).padStart(8)}`);
  }
  return `${lines.join('\n')}\n`;
}

export function formatInfo(i: HostInfo): string {
  const rows: [string, string | number][] = [
    ['host', hostname()], ['release', release()], ['machine', machine()],
    ['nr_cpus', i.nr_cpus], ['max_cpu_id', i.nr_cpus - 1], ['total_memory', i.total_memory], ['free_memory', i.free_memory],
    ['nr_domains', i.nr_domains], ['max_domains', i.max_domains],
    ['xen_version', i.xen_version], ['xen_caps', i.xen_caps], ['xen_pagesize', 4096],
    ['run_dir', i.run_dir], ['xenstored_socket', i.xenstored_socket], ['xl_socket', i.xl_socket],
  ];
  for (const p of i.pcpus ?? []) rows.push([`pcpu${p.cpu}`, `${p.curr.padEnd(8)} load ${(p.load * 100).toFixed(1)}% since boot`]);
  if ((i.pcpus ?? []).length === 0) rows.push(['pcpus', 'none: no scheduler, the host OS decides']);
  for (const [k, v] of Object.entries(i.mm ?? {})) rows.push([k, v]);
  if (i.mem_policy) {
    const m = i.mem_policy;
    rows.push(['mem_policy', m.state === 'off' ? 'off' : `${m.state} (soft mark ${m.settings.soft_pages} pages, hard mark ${m.settings.hard_pages})`]);
    for (const [d, kib] of Object.entries(m.targets)) rows.push([`mem_policy_target_d${d}`, `${kib} KiB`]);
    for (const e of m.events.slice(-8)) rows.push(['mem_policy_event', e]);
  }
  return rows.map(([k, v]) => `${k.padEnd(23)}: ${v}\n`).join('');
}

export function formatBlockList(rows: readonly BlockListRow[]): string {
  const lines = ['Vdev  BE  handle state evt-ch ring-ref BE-path'];
  for (const r of rows) {
    lines.push(`${String(r.vdev).padEnd(5)} ${String(r.backendId).padEnd(3)} ${String(r.handle).padEnd(6)} ` +
      `${String(r.state).padEnd(5)} ${String(r.evtch).padEnd(6)} ${String(r.ringRef).padEnd(8)} ${r.backendPath.padEnd(30)}`);
  }
  return `${lines.join('\n')}\n`;
}
