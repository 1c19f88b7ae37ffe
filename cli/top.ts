/*
 * `ringvisor top`: every domain's CPU, memory and I/O, refreshed, as xentop shows them.
 *
 * Xen: tools/xentop/xentop.c (docs/man/xentop.1.pod). The same columns in the same order, each
 * from the same source: NAME, STATE (d s b c p r, '-' where not), CPU(sec), CPU(%) over the last
 * interval (0 on the first sample, as xentop), MEM(k) and MAXMEM(k) with their share of the host,
 * VCPUS, NETS/NETTX(k)/NETRX(k) from the vifs Dom0 serves, VBDS and VBD_OO/RD/WR/RSECT/WSECT from
 * blkback's statistics (backends/lib/devstats.ts, Linux's sysfs counters). SSID (the XSM label) is
 * left out: ringvisor has no XSM. Then ringvisor's own columns, per second over the interval:
 * event-channel notifications sent, hypercalls, grant operations (maps + unmaps + copies) and
 * trapped accesses (the emulated path's cost), so the mechanism behind the I/O is beside it.
 *
 * Options as xentop's: -b batch (no screen control, for scripts), -i N iterations, -d SECONDS
 * between samples (default 3), -x one line per block device, -n one per network device. And
 * ringvisor's -c: under each domain every hypervisor counter per second, every other figure the
 * hypervisor reports for it, and every device's counters, by name, whatever they are: a counter,
 * a figure or a device kind added later shows here without a change to this file.
 */
import type { DomainInfo } from '../shared/public/hypercall.ts';
import type { DeviceRow } from '../backends/lib/devstats.ts';
import type { TopSample } from '../dom0/toolstack/protocol.ts';

export interface TopOptions { batch: boolean; iterations: number; delaySeconds: number; vbds: boolean; nets: boolean; counters?: boolean }

const COLUMNS: [title: string, width: number][] = [
  ['NAME', 10], ['STATE', 6], ['CPU(sec)', 10], ['CPU(%)', 6], ['MEM(k)', 10], ['MEM(%)', 6], ['MAXMEM(k)', 10],
  ['MAXMEM(%)', 9], ['VCPUS', 5], ['NETS', 4], ['NETTX(k)', 8], ['NETRX(k)', 8], ['VBDS', 4], ['VBD_OO', 8],
  ['VBD_RD', 8], ['VBD_WR', 8], ['VBD_RSECT', 10], ['VBD_WSECT', 10],
  ['NOTIFY/s', 9], ['HCALL/s', 9], ['GNTOP/s', 9], ['TRAPS/s', 9],
];

export function header(): string {
  return COLUMNS.map(([t, w]) => t.padStart(w)).join(' ');
}

/** xentop's six state letters. */
function stateLetters(d: DomainInfo): string {
  return [
    d.state === 'dying' ? 'd' : '-',
    d.state === 'shutdown' && d.shutdown_reason !== 'crash' ? 's' : '-',
    d.blocked ? 'b' : '-',
    d.state === 'shutdown' && d.shutdown_reason === 'crash' ? 'c' : '-',
    d.state === 'paused' ? 'p' : '-',
    d.running ? 'r' : '-',
  ].join('');
}

const sum = (rows: DeviceRow[], key: string) => rows.reduce((a, r) => a + (r.stats[key] ?? 0), 0);
const grantOps = (c: Record<string, number>) => (c.grant_maps ?? 0) + (c.grant_unmaps ?? 0) + (c.grant_copies ?? 0);

/** One row per domain of `now`; `prev` (the sample before, or null) gives CPU(%) and the rates. */
export function rows(now: TopSample, prev: TopSample | null): string[] {
  const dt = prev ? (now.time - prev.time) / 1000 : 0;
  const totalK = now.total_pages * 4;
  return now.domains.map((d) => {
    const before = prev?.domains.find((p) => p.domid === d.domid && p.name === d.name) ?? null;
    const rate = (f: (c: Record<string, number>) => number) => (before && dt > 0 ? (f(d.counters) - f(before.counters)) / dt : 0);
    const cpuPct = before && dt > 0 ? ((d.cpu_time_ms - before.cpu_time_ms) / 10) / dt : 0;
    const vbds = now.devices.filter((r) => r.frontend === d.domid && r.kind === 'vbd');
    const vifs = now.devices.filter((r) => r.frontend === d.domid && r.kind === 'vif');
    const memK = (d.tot_pages + (d.shr_pages ?? 0) + (d.paged_pages ?? 0)) * 4; // as xl list's Mem
    const maxK = d.max_pages * 4;
    const cells: string[] = [
      d.name.slice(0, 10), stateLetters(d), (d.cpu_time_ms / 1000).toFixed(0), cpuPct.toFixed(1),
      String(memK), ((memK / totalK) * 100).toFixed(1), String(maxK), ((maxK / totalK) * 100).toFixed(1),
      String(d.vcpus), String(vifs.length),
      // A vif's tx is the guest's transmit, which netback receives: xentop reports the guest's view.
      String(Math.floor(sum(vifs, 'tx_bytes') / 1024)), String(Math.floor(sum(vifs, 'rx_bytes') / 1024)),
      String(vbds.length), String(sum(vbds, 'oo_req')), String(sum(vbds, 'rd_req')), String(sum(vbds, 'wr_req')),
      String(sum(vbds, 'rd_sect')), String(sum(vbds, 'wr_sect')),
      rate((c) => c.notifications ?? 0).toFixed(0), rate((c) => c.hypercalls ?? 0).toFixed(0),
      rate(grantOps).toFixed(0), rate((c) => c.traps ?? 0).toFixed(0),
    ];
    return cells.map((c, i) => c.padStart(COLUMNS[i][1])).join(' ');
  });
}

/** A device a driver domain serves says which (Dom0's say nothing, as in xentop). */
function servedBy(now: TopSample, r: DeviceRow): string {
  if (r.backend === undefined || r.backend === 0) return '';
  const dd = now.domains.find((d) => d.domid === r.backend);
  return ` by ${dd ? `${dd.name}, ` : ''}d${r.backend}`;
}

/** xentop -x / -n: one line per device under its domain. */
export function deviceLines(now: TopSample, domid: number, opts: TopOptions): string[] {
  const out: string[] = [];
  for (const r of now.devices.filter((x) => x.frontend === domid)) {
    const s = r.stats;
    if (r.kind === 'vbd' && opts.vbds) {
      out.push(`VBD BlkBack ${String(r.devid).padStart(5)} [${r.name}${servedBy(now, r)}]  OO: ${String(s.oo_req ?? 0).padStart(8)}   RD: ${String(s.rd_req ?? 0).padStart(8)}   WR: ${String(s.wr_req ?? 0).padStart(8)}  RSECT: ${String(s.rd_sect ?? 0).padStart(10)}  WSECT: ${String(s.wr_sect ?? 0).padStart(10)}`);
    } else if (r.kind === 'vif' && opts.nets) {
      out.push(`Net${r.devid} RX: ${String(s.rx_bytes ?? 0).padStart(8)}bytes ${String(s.rx_packets ?? 0).padStart(8)}pkts ${String(s.rx_errors ?? 0).padStart(8)}err ${String(s.rx_dropped ?? 0).padStart(8)}drop  TX: ${String(s.tx_bytes ?? 0).padStart(8)}bytes ${String(s.tx_packets ?? 0).padStart(8)}pkts ${String(s.tx_errors ?? 0).padStart(8)}err ${String(s.tx_dropped ?? 0).padStart(8)}drop`);
    }
  }
  return out;
}

/** DomainInfo figures the table's columns already show. */
const IN_COLUMNS = new Set(['domid', 'vcpus', 'tot_pages', 'max_pages', 'cpu_time_ms']);
/** physinfo figures the summary already shows. */
const IN_SUMMARY = new Set(['nr_cpus', 'total_pages', 'free_pages', 'nr_domains', 'max_domains']);

/** -c: every counter per second, every other figure, every device's counters, by name. */
export function counterLines(now: TopSample, prev: TopSample | null, domid: number): string[] {
  const d = now.domains.find((x) => x.domid === domid);
  if (!d) return [];
  const dt = prev ? (now.time - prev.time) / 1000 : 0;
  const before = prev?.domains.find((p) => p.domid === d.domid && p.name === d.name) ?? null;
  const rate = (k: string) => (before && dt > 0 ? ((d.counters[k] ?? 0) - (before.counters[k] ?? 0)) / dt : 0);
  const out = [`  counters/s: ${Object.keys(d.counters).sort().map((k) => `${k} ${rate(k).toFixed(0)}`).join('  ')}`];
  const figures = Object.entries(d).filter(([k, v]) => typeof v === 'number' && !IN_COLUMNS.has(k));
  if (figures.length > 0) out.push(`  figures: ${figures.map(([k, v]) => `${k} ${v}`).join('  ')}`);
  for (const r of now.devices.filter((x) => x.frontend === domid)) {
    out.push(`  ${r.kind} ${r.devid} [${r.name}${servedBy(now, r)}]: ${Object.entries(r.stats).map(([k, v]) => `${k} ${v}`).join('  ')}`);
  }
  return out;
}

/** The summary lines above the table, as xentop's (time, domains by state, memory, CPUs). */
export function summary(now: TopSample): string[] {
  const n = (f: (d: DomainInfo) => boolean) => now.domains.filter(f).length;
  const t = new Date(now.time).toTimeString().slice(0, 8);
  return [
    `ringvisor top - ${t}`,
    `${now.domains.length} domains: ${n((d) => d.running)} running, ${n((d) => d.blocked)} blocked, ${n((d) => d.state === 'paused')} paused, ${n((d) => d.state === 'shutdown' && d.shutdown_reason !== 'crash')} shutdown, ${n((d) => d.state === 'shutdown' && d.shutdown_reason === 'crash')} crashed, ${n((d) => d.state === 'dying')} dying`,
    `Mem: ${now.total_pages * 4}k total, ${(now.total_pages - now.free_pages) * 4}k used, ${now.free_pages * 4}k free    CPUs: ${now.nr_cpus}`,
    // Any other figure the hypervisor's physinfo carries (shared or paged pages, ...), by its name.
    ...(() => {
      const more = Object.entries(now.host ?? {}).filter(([k]) => !IN_SUMMARY.has(k));
      return more.length > 0 ? [`Host: ${more.map(([k, v]) => (k.endsWith('_pages') ? `${k.slice(0, -6)} ${v * 4}k` : `${k} ${v}`)).join(', ')}`] : [];
    })(),
  ];
}

/** The whole screen (or batch block) for one sample. */
export function render(now: TopSample, prev: TopSample | null, opts: TopOptions): string {
  const lines = [...summary(now), header()];
  const table = rows(now, prev);
  now.domains.forEach((d, i) => {
    lines.push(table[i], ...deviceLines(now, d.domid, opts), ...(opts.counters ? counterLines(now, prev, d.domid) : []));
  });
  return lines.join('\n') + '\n';
}

/** Anything that answers the toolstack's `top` request (the CLI's XlClient). */
export interface TopSource { call<T>(v: { verb: 'top' }): Promise<T> }

/**
 * The refresh loop. In batch mode each sample is printed after the last; on a terminal the
 * screen is redrawn and `q` quits. The wait between samples is the display's refresh interval.
 */
export async function runTop(src: TopSource, opts: TopOptions, io: { stdout: NodeJS.WriteStream; stdin: NodeJS.ReadStream }): Promise<void> {
  const screen = !opts.batch && io.stdout.isTTY === true;
  let quit = false;
  let wake: (() => void) | null = null;
  const onKey = (b: Buffer) => { if (b.includes(0x71) || b.includes(0x03)) { quit = true; wake?.(); } };
  if (screen && io.stdin.isTTY) { io.stdin.setRawMode(true); io.stdin.on('data', onKey); }
  try {
    let prev: TopSample | null = null;
    for (let i = 0; !quit && (opts.iterations <= 0 || i < opts.iterations); i++) {
      if (i > 0) await new Promise<void>((r) => { wake = r; setTimeout(r, opts.delaySeconds * 1000); });
      if (quit) break;
      const now = await src.call<TopSample>({ verb: 'top' });
      io.stdout.write((screen ? '\x1b[H\x1b[2J' : '') + render(now, prev, opts) + (screen ? '' : '\n'));
      prev = now;
    }
  } finally {
    if (screen && io.stdin.isTTY) { io.stdin.off('data', onKey); io.stdin.setRawMode(false); io.stdin.pause(); }
  }
}
