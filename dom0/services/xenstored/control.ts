/*
 * XS_CONTROL: the administrator's commands to xenstored, as `xenstore-control` sends them.
 *
 * Xen: tools/xenstored/control.c (do_control and its cmds[] table, quota_show_current,
 * quota_set, quota_get, do_control_check / _log / _logfile / _memreport / _print / _help) and
 * domain_get_quota in tools/xenstored/domain.c, Xen 4.17. The request is the command's name and
 * its arguments, each NUL-terminated; only Dom0 may send it (EACCES otherwise, in dispatch.ts).
 * An unknown command or wrong arguments is EINVAL, which makes xenstore-control print "Command
 * not supported" and the `help` list. Replies are C's, byte for byte where they are text:
 *
 *   check                  walk the store, repair what is inconsistent, log what it found; "OK"
 *   log on|off             open or close the trace file (./trace.ts); "OK"
 *   logfile <file>         name the trace file and (re)open it; "OK"
 *   memreport [<file>]     append a report of xenstored's memory to <file> or the trace file
 *                          (neither: EBADF, which the wire cannot carry, so EINVAL as in C); "OK"
 *   print <string>         write "control: <string>" to the log; "OK"
 *   quota                  the hard quotas, one "%-17s: %8d %s" line each
 *   quota set <name> <n>   change one (n ≥ 1, read as atoi reads it); "OK"
 *   quota <domid>          a domain's usage, one "%-16s: %8d" line each; ENOENT if xenstored
 *                          knows no such domain
 *   quota-soft [set ...]   the same for the soft quota (memory: a warning in the log)
 *   help                   "<command>\t<parameters>" per command
 *
 * Not here: live-update, which replaces the running xenstored binary in place; C leaves it out
 * of builds without live-update support too (NO_LIVE_UPDATE), and then it is EINVAL like any
 * unknown command.
 *
 * memreport cannot print C's talloc tree (there is none): it reports what ringvisor's xenstored
 * holds, by the same accounting `quota <domid>` uses.
 */
import { appendFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { nodeSize } from './node.ts';
import { fail, type Quotas } from './quota.ts';
import type { Connection } from './connection.ts';
import type { XenstoredCore } from './core.ts';

interface QuotaEntry {
  name: string;
  key: keyof Quotas;
  descr: string;
}

/** hard_quotas[], in C's order, with C's names and descriptions. */
const HARD_QUOTAS: readonly QuotaEntry[] = [
  { name: 'nodes', key: 'nodes', descr: 'Nodes per domain' },
  { name: 'watches', key: 'watches', descr: 'Watches per domain' },
  { name: 'transactions', key: 'transactions', descr: 'Transactions per domain' },
  { name: 'outstanding', key: 'outstanding', descr: 'Outstanding requests per domain' },
  { name: 'transaction-nodes', key: 'transactionNodes', descr: 'Max. number of accessed nodes per transaction' },
  { name: 'memory', key: 'memory', descr: 'Total Xenstore memory per domain (error level)' },
  { name: 'node-size', key: 'nodeSize', descr: 'Max. size of a node' },
  { name: 'path-max', key: 'pathMax', descr: 'Max. length of a node path' },
  { name: 'permissions', key: 'permsPerNode', descr: 'Max. number of permissions per node' },
];

/** soft_quotas[]. */
const SOFT_QUOTAS: readonly QuotaEntry[] = [
  { name: 'memory', key: 'memorySoft', descr: 'Total Xenstore memory per domain (warning level)' },
];

type Command = (xs: XenstoredCore, args: string[]) => string;

const OK = 'OK';

/** C's atoi: optional blanks and sign, then digits up to the first non-digit; none is 0. */
export function atoi(s: string): number {
  const m = /^[ \t\n\v\f\r]*([+-]?\d+)/.exec(s);
  if (m === null) return 0;
  const n = Number(m[1]);
  return Math.trunc(Math.max(-2147483648, Math.min(2147483647, n)));
}

function quotaShow(xs: XenstoredCore, table: readonly QuotaEntry[]): string {
  let out = 'Quota settings:\n';
  for (const q of table) out += `${q.name.padEnd(17)}: ${String(xs.quota[q.key]).padStart(8)} ${q.descr}\n`;
  return out;
}

function quotaSet(xs: XenstoredCore, args: string[], table: readonly QuotaEntry[]): string {
  if (args.length !== 2) fail('EINVAL', 'quota set <name> <value>');
  const val = atoi(args[1]);
  if (val < 1) fail('EINVAL', `quota value ${args[1]}`);
  const q = table.find((e) => e.name === args[0]) ?? fail('EINVAL', `no quota ${args[0]}`);
  xs.quota[q.key] = val;
  return OK;
}

/** What one domain costs xenstored, by C's accounting (domain_memory_add). */
export interface DomainUsage {
  nodes: number;
  watches: number;
  transactions: number;
  outstanding: number;
  /** Node records and their paths, watch paths and tokens, queued output. */
  memory: number;
}

/**
 * The connections that are a domain's own: a guest's ring, or Dom0's kernel (the socket's tools
 * are not counted against Dom0, as C counts them against no domain).
 */
function domainConnections(xs: XenstoredCore, domid: number): Connection[] {
  if (domid !== 0) {
    const c = xs.domains.get(domid);
    return c === undefined ? [] : [c];
  }
  return [...xs.connections].filter((c) => c.kind === 'local');
}

/** domain_get_quota's figures; null if xenstored knows no such domain (find_domain_struct). */
export function domainUsage(xs: XenstoredCore, domid: number): DomainUsage | null {
  if (domid < 0 || (domid !== 0 && !xs.domains.has(domid) && xs.store.owned(domid) === 0)) return null;
  const u: DomainUsage = { nodes: xs.store.owned(domid), watches: 0, transactions: 0, outstanding: 0, memory: 0 };
  if (u.nodes > 0) {
    for (const n of xs.store.walk('/')) if (n.perms[0].id === domid) u.memory += nodeSize(n) + n.name.length;
  }
  for (const c of domainConnections(xs, domid)) {
    u.watches += c.watches.size;
    u.transactions += c.transactions.size;
    u.outstanding += c.outstanding;
    u.memory += c.queuedBytes;
    for (const w of c.watches.values()) u.memory += w.node.length + w.token.length;
  }
  return u;
}

function quotaGet(xs: XenstoredCore, args: string[]): string {
  if (args.length !== 1) fail('EINVAL', 'quota <domid>');
  const domid = atoi(args[0]);
  const u = domainUsage(xs, domid) ?? fail('ENOENT', `no domain ${domid}`);
  const row = (k: string, v: number) => `${k.padEnd(16)}: ${String(v).padStart(8)}\n`;
  return `Domain ${domid}:\n${row('nodes', u.nodes)}${row('watches', u.watches)}${row('transactions', u.transactions)}` +
    `${row('outstanding', u.outstanding)}${row('memory', u.memory)}`;
}

function memreport(xs: XenstoredCore): string {
  let nodes = 0;
  let nodeBytes = 0;
  for (const n of xs.store.walk('/')) {
    nodes++;
    nodeBytes += nodeSize(n) + n.name.length;
  }
  const lines = [
    `xenstored memory report, ${new Date().toISOString()}`,
    `store: ${nodes} nodes, ${nodeBytes} bytes (records and paths), generation ${xs.store.generation}`,
    `watches: ${xs.watchIndex.size} in all`,
  ];
  for (const c of xs.connections) {
    let watchBytes = 0;
    for (const w of c.watches.values()) watchBytes += w.node.length + w.token.length;
    lines.push(`  ${c.describe()}: ${c.watches.size} watches (${watchBytes} bytes), ${c.transactions.size} transactions, ` +
      `${c.queuedOutput} messages queued (${c.queuedBytes} bytes), ${c.outstanding} replies outstanding`);
  }
  return `${lines.join('\n')}\n`;
}

const cmds: readonly { name: string; pars: string; fn: Command }[] = [
  {
    name: 'check', pars: '', fn: (xs, a) => {
      if (a.length !== 0) fail('EINVAL');
      xs.checkStore();
      return OK;
    },
  },
  {
    name: 'log', pars: 'on|off', fn: (xs, a) => {
      if (a.length !== 1) fail('EINVAL');
      if (a[0] === 'on') xs.trace.reopen();
      else if (a[0] === 'off') xs.trace.close();
      else fail('EINVAL', `log ${a[0]}`);
      return OK;
    },
  },
  {
    name: 'logfile', pars: '<file>', fn: (xs, a) => {
      if (a.length !== 1) fail('EINVAL');
      xs.trace.close();
      xs.trace.file = a[0];
      xs.trace.reopen();
      return OK;
    },
  },
  {
    name: 'memreport', pars: '[<file>]', fn: (xs, a) => {
      if (a.length > 1) fail('EINVAL');
      const file = a.length === 1 ? a[0] : xs.trace.file;
      // EBADF in C; xsd_errors has no EBADF, so send_error turns it into EINVAL.
      if (file === null) fail('EINVAL', 'EBADF: no file and no trace file');
      try {
        appendFileSync(resolve(file), memreport(xs), { mode: 0o600 });
      } catch (e) {
        fail('EINVAL', `EBADF: ${(e as Error).message}`);
      }
      return OK;
    },
  },
  {
    name: 'print', pars: '<string>', fn: (xs, a) => {
      if (a.length !== 1) fail('EINVAL');
      xs.log(`xenstored: control: ${a[0]}`);
      return OK;
    },
  },
  {
    name: 'quota', pars: '[set <name> <val>|<domid>]', fn: (xs, a) => {
      if (a.length === 0) return quotaShow(xs, HARD_QUOTAS);
      if (a[0] === 'set') return quotaSet(xs, a.slice(1), HARD_QUOTAS);
      return quotaGet(xs, a);
    },
  },
  {
    name: 'quota-soft', pars: '[set <name> <val>]', fn: (xs, a) => {
      if (a.length === 0) return quotaShow(xs, SOFT_QUOTAS);
      if (a[0] === 'set') return quotaSet(xs, a.slice(1), SOFT_QUOTAS);
      fail('EINVAL');
    },
  },
  {
    name: 'help', pars: '', fn: (_xs, a) => {
      if (a.length !== 0) fail('EINVAL');
      return cmds.map((c) => `${c.name}\t${c.pars}\n`).join('');
    },
  },
];

/** do_control: the reply text (sent NUL-terminated), or a refusal thrown. */
export function doControl(xs: XenstoredCore, strings: string[]): string {
  if (strings.length === 0) fail('EINVAL', 'no command');
  const cmd = cmds.find((c) => c.name === strings[0]) ?? fail('EINVAL', `unknown control command ${strings[0].slice(0, 32)}`);
  return cmd.fn(xs, strings.slice(1));
}
