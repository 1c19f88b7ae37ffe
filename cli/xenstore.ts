/*
 * `ringvisor xenstore-read / -write / -ls / -list / -exists / -rm / -chmod / -watch`: Xen's
 * xenstore tools, run against the host's xenstored.
 *
 * Xen: tools/xenstore/xenstore_client.c (Xen 4.17; Debian's xenstore-utils), one mode per verb,
 * with the same options, output and exit status, so a script written for Xen's tools reads the
 * same lines here:
 *  - values print escaped (sanitise_value: \n, \t, \\, \000, \x7f...), and xenstore-write
 *    unescapes its arguments (unsanitise_value), both in dom0/lib/xs-lib.ts; -R skips both;
 *  - xenstore-ls indents one space per level and cuts a value that would pass the line's width
 *    (the terminal's width − 2, or 80 when stdout is not a terminal) with `\...`; -f prints
 *    whole paths and never cuts; -p adds each node's permissions, after a dotted run to column 60;
 *  - several reads, writes, or any rm / list / exists / chmod run in one transaction, retried on
 *    EAGAIN, whose output is printed once it ends; a failure prints what was read before it.
 * The tools talk to xenstored's socket directly, as Xen's do (dom0/lib/libxenstore.ts).
 *
 * Differences: a usage error exits 2 (ringvisor's convention for every verb), where Xen's tools
 * exit 1; error lines start "ringvisor xenstore-…:" rather than "xenstore-…:". `-s` is accepted
 * and ignored, as by Xen's tools.
 */
import { Command, CommanderError, InvalidArgumentError } from 'commander';
import { xenstoredSocketPath, xsDirectory, xsOpen } from '../dom0/lib/libxenstore.ts';
import { sanitiseValue, unsanitiseValue } from '../dom0/lib/xs-lib.ts';
import { XsError, type XenbusClient } from '../shared/kernel/xenbus/client.ts';
import {
  XBT_NULL, XENSTORE_ABS_PATH_MAX, XS_PERM_BOTH, XS_PERM_NONE, XS_PERM_READ, XS_PERM_WRITE, permToString, type XsPermission,
} from '../shared/public/io/xs_wire.ts';
import { CliError, noHostMessage } from './client.ts';

export interface XenstoreCli {
  stdout: NodeJS.WritableStream & { isTTY?: boolean; columns?: number };
  stderr: NodeJS.WritableStream;
  runDir(cmd: Command): string;
  setCode(code: number): void;
}

const EXIT_FAILED = 1;
const EXIT_USAGE = 2;
const encoder = new TextEncoder();

/** " = \"...\"": what xenstore-ls reserves on a line beyond the name and value. */
const TAG_LEN = 8;
/** Column the -p padding reaches (desired_width). */
const DESIRED_WIDTH = 60;
const STRING_MAX = XENSTORE_ABS_PATH_MAX + 1024;

/** strerror for the errors xenstored sends. */
const STRERROR: Readonly<Record<string, string>> = {
  ENOENT: 'No such file or directory', EACCES: 'Permission denied', EINVAL: 'Invalid argument',
  E2BIG: 'Argument list too long', EIO: 'Input/output error', ENOSPC: 'No space left on device',
  EPERM: 'Operation not permitted', EEXIST: 'File exists', EAGAIN: 'Resource temporarily unavailable',
};
const errnoText = (e: unknown) => (e instanceof XsError ? STRERROR[e.errno] ?? e.errno : (e as Error).message);

/** printf's "%.*s": a negative precision prints the whole string. */
const upTo = (s: string, n: number) => (n < 0 ? s : s.slice(0, n));

/** Connect to the host's xenstored; no host is a clear error. */
async function withStore(cli: XenstoreCli, cmd: Command, f: (xs: XenbusClient) => Promise<number>): Promise<void> {
  const path = xenstoredSocketPath(cli.runDir(cmd));
  let xs: XenbusClient;
  try {
    xs = await xsOpen(path);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ECONNREFUSED') throw new CliError('no-host', noHostMessage(path));
    throw e;
  }
  try {
    cli.setCode(await f(xs));
  } finally {
    xs.close();
  }
}

type Output = (string | Uint8Array)[];

/**
 * main()'s transaction around perform(): commit if the body succeeded (abort if not), start over
 * on EAGAIN with the output so far discarded, and print the output once it is over.
 */
async function perform(cli: XenstoreCli, xs: XenbusClient, transaction: boolean, body: (t: number, out: Output) => Promise<number>): Promise<number> {
  for (;;) {
    const out: Output = [];
    const t = transaction ? await xs.transactionStart() : XBT_NULL;
    const ret = await body(t, out);
    if (transaction) {
      try {
        await xs.transactionEnd(t, ret === 0);
      } catch (e) {
        if (ret === 0 && e instanceof XsError && e.errno === 'EAGAIN') continue;
        throw new CliError('failed', 'couldn\'t end transaction');
      }
    }
    for (const chunk of out) cli.stdout.write(chunk);
    return ret;
  }
}

/** A refusal from xenstored becomes `message` on stderr and exit 1; anything else propagates. */
async function orWarn<T>(cli: XenstoreCli, verb: string, message: string, f: () => Promise<T>): Promise<T | null> {
  try {
    return await f();
  } catch (e) {
    if (!(e instanceof XsError)) throw e;
    cli.stderr.write(`ringvisor ${verb}: ${message}\n`);
    return null;
  }
}

const ignoredS = (c: Command) => c.option('-s', 'accepted and ignored, as by Xen\'s tools');

export function addXenstoreVerbs(program: Command, cli: XenstoreCli): void {
  ignoredS(program.command('xenstore-read').description('print the value of each path, escaped as Xen\'s tools print it (xenstore-read)'))
    .argument('<path...>', 'XenStore paths')
    .option('-p, --prefix', 'print "path: " before each value')
    .option('-R, --raw', 'print the bytes as they are: no escaping, no newline')
    .action((paths: string[], o: { prefix?: boolean; raw?: boolean }, cmd: Command) => withStore(cli, cmd, (xs) =>
      perform(cli, xs, paths.length > 1, async (t, out) => {
        for (const p of paths) {
          const v = await orWarn(cli, 'xenstore-read', `couldn't read path ${p}`, () => xs.readBytes(p, t));
          if (v === null) return EXIT_FAILED;
          if (o.prefix) out.push(`${p}: `);
          out.push(o.raw ? v : `${sanitiseValue(v)}\n`);
        }
        return 0;
      })));

  ignoredS(program.command('xenstore-write').description('write values, unescaping \\n \\t \\xNN \\NNN as Xen\'s tools do (xenstore-write)'))
    .argument('<path>', 'XenStore path').argument('<value>', 'its new value').argument('[more...]', 'further PATH VALUE pairs')
    .option('-R, --raw', 'store the argument as it is, backslashes included')
    .action((path: string, value: string, more: string[], o: { raw?: boolean }, cmd: Command) => {
      if (more.length % 2 !== 0) throw new CommanderError(EXIT_USAGE, 'ringvisor.usage', 'error: xenstore-write takes PATH VALUE pairs');
      const pairs = [path, value, ...more];
      return withStore(cli, cmd, (xs) => perform(cli, xs, pairs.length > 2, async (t) => {
        for (let i = 0; i < pairs.length; i += 2) {
          const bytes = o.raw ? encoder.encode(pairs[i + 1]) : unsanitiseValue(pairs[i + 1]!);
          if (await orWarn(cli, 'xenstore-write', `could not write path ${pairs[i]}`, () => xs.write(pairs[i]!, bytes, t)) === null) return EXIT_FAILED;
        }
        return 0;
      }));
    });

  ignoredS(program.command('xenstore-ls').description('print a subtree, one space of indent per level, long values cut at the line\'s width (xenstore-ls)'))
    .argument('[path...]', 'where to start', ['/'])
    .option('-f, --flat', 'whole paths, values never cut')
    .option('-p, --prefix', 'each node\'s permissions too')
    .action((paths: string[], o: { flat?: boolean; prefix?: boolean }, cmd: Command) => withStore(cli, cmd, async (xs) => {
      const tty = cli.stdout.isTTY === true;
      const maxWidth = o.flat ? Math.floor(0x7fffffff / 2) : tty ? (cli.stdout.columns ?? 0) - 2 : 80;
      const desired = o.flat ? 0 : DESIRED_WIDTH;
      for (const p of paths) await doLs(cli, xs, p, 0, { perms: o.prefix === true, flat: o.flat === true, maxWidth, desired });
      return 0;
    }));

  ignoredS(program.command('xenstore-list').description('print the names of each path\'s children (xenstore-list)'))
    .argument('<path...>', 'XenStore paths')
    .option('-p, --prefix', 'print each child as a whole path')
    .action((paths: string[], o: { prefix?: boolean }, cmd: Command) => withStore(cli, cmd, (xs) =>
      perform(cli, xs, true, async (t, out) => {
        for (const p of paths) {
          const names = await orWarn(cli, 'xenstore-list', `could not list path ${p}`, () => xsDirectory(xs, p, t));
          if (names === null) return EXIT_FAILED;
          for (const n of names) out.push(`${o.prefix ? `${p}/` : ''}${n}\n`);
        }
        return 0;
      })));

  ignoredS(program.command('xenstore-exists').description('exit 0 if every path exists, 1 if one does not (xenstore-exists)'))
    .argument('<path...>', 'XenStore paths')
    .action((paths: string[], _o: unknown, cmd: Command) => withStore(cli, cmd, (xs) =>
      perform(cli, xs, true, async (t) => {
        for (const p of paths) {
          try {
            await xs.readBytes(p, t);
          } catch (e) {
            if (e instanceof XsError) return EXIT_FAILED;
            throw e;
          }
        }
        return 0;
      })));

  ignoredS(program.command('xenstore-rm').description('remove each path and everything below it (xenstore-rm)'))
    .argument('<path...>', 'XenStore paths')
    .option('-t, --tidy', 'then remove each parent left with no value and no children, upwards')
    .action((paths: string[], o: { tidy?: boolean }, cmd: Command) => withStore(cli, cmd, (xs) =>
      perform(cli, xs, true, async (t) => {
        for (const p of paths) {
          for (let path = p; ;) {
            if (await orWarn(cli, 'xenstore-rm', `could not remove path ${path}`, () => xs.rm(path, t)) === null) return EXIT_FAILED;
            const slash = path.lastIndexOf('/');
            if (!o.tidy || slash < 0) break;
            const parent = path.slice(0, slash);
            const v = await xs.readBytes(parent, t).catch(() => null);
            if (v === null || v.length !== 0) break;
            const children = await xsDirectory(xs, parent, t).catch(() => null);
            if (children === null || children.length !== 0) break;
            path = parent;
          }
        }
        return 0;
      })));

  ignoredS(program.command('xenstore-chmod').description('set a node\'s permissions: owner first, then one per domain, e.g. n0 r5 (xenstore-chmod)'))
    .argument('<path>', 'XenStore path')
    .argument('<mode...>', 'n|r|w|b followed by a domid; the first names the owner and everyone else\'s access')
    .option('-u, --upto', 'the same permissions on every parent')
    .option('-r, --recurse', 'the same permissions on every child, recursively')
    .action((path: string, modes: string[], o: { upto?: boolean; recurse?: boolean }, cmd: Command) => {
      const perms = modes.map(parseMode);
      return withStore(cli, cmd, (xs) => perform(cli, xs, true, async (t) => {
        await doChmod(xs, t, path, perms, o.upto === true, o.recurse === true);
        return 0;
      }));
    });

  ignoredS(program.command('xenstore-watch').description('print the path of each change at or below the paths (xenstore-watch)'))
    .argument('<path...>', 'XenStore paths')
    .option('-n, --number <NR>', 'exit after NR events (the first comes when the watch is set)', nonNegative)
    .action((paths: string[], o: { number?: number }, cmd: Command) => withStore(cli, cmd, async (xs) => {
      let left = o.number ?? -1;
      let done: (() => void) | null = null;
      const finished = new Promise<void>((r) => { done = r; });
      const onEvent = (p: string) => {
        if (left === 0) return;
        cli.stdout.write(`${p}\n`);
        if (--left === 0) done!();
      };
      for (const p of paths) {
        if (await orWarn(cli, 'xenstore-watch', `Unable to add watch on ${p}`, () => xs.watch(p, onEvent, p)) === null) return EXIT_FAILED;
      }
      if (left !== 0) await finished;
      return 0;
    }));
}

interface LsOptions { perms: boolean; flat: boolean; maxWidth: number; desired: number }

/** do_ls. */
async function doLs(cli: XenstoreCli, xs: XenbusClient, path: string, depth: number, o: LsOptions): Promise<void> {
  let names: string[];
  try {
    names = await xsDirectory(xs, path);
  } catch (e) {
    if (!(e instanceof XsError)) throw e;
    if (depth > 0 && e.errno === 'ENOENT') return; // a node gone while we walk: move on, as Xen does
    throw new CliError('failed', `ringvisor xenstore-ls: xs_directory (${path}): ${errnoText(e)}`);
  }
  for (const name of names) {
    const full = `${path}${path.endsWith('/') ? '' : '/'}${name}`;
    let line = '';
    let width = 0;
    if (o.flat) {
      line = full;
    } else {
      const shown = upTo(name, o.maxWidth - TAG_LEN - depth);
      line = ' '.repeat(depth) + shown;
      width = depth + shown.length;
    }
    const value = full.length < STRING_MAX ? await xs.readBytes(full).catch(() => null) : null;
    if (value === null) {
      line += ':\n';
    } else if (o.maxWidth < width + value.length + TAG_LEN) {
      line += ` = "${upTo(sanitiseValue(value), o.maxWidth - TAG_LEN - width)}\\..."`;
    } else {
      const shown = ` = "${sanitiseValue(value)}"`;
      line += shown;
      width += shown.length;
      if (o.perms) {
        line += ' ';
        for (width++; width < Math.min(o.desired, o.maxWidth); width++) line += width & 1 ? '.' : ' ';
      }
    }
    if (o.perms) {
      try {
        line += `  (${(await xs.getPerms(full)).map(permToString).join(',')})`;
      } catch (e) {
        cli.stderr.write(`ringvisor xenstore-ls: \ncould not access permissions for ${name}: ${errnoText(e)}\n`);
      }
    }
    cli.stdout.write(`${line}\n`);
    await doLs(cli, xs, full, depth + 1, o);
  }
}

const MODE_LETTER: Readonly<Record<string, number>> = { n: XS_PERM_NONE, r: XS_PERM_READ, w: XS_PERM_WRITE, b: XS_PERM_BOTH };

/** xenstore-chmod's mode: a letter, then the domid as atoi reads it. */
function parseMode(m: string): XsPermission {
  const perms = MODE_LETTER[m[0] ?? ''];
  if (perms === undefined) throw new CliError('failed', `ringvisor xenstore-chmod: Invalid permission specification: '${m[0] ?? ''}'`);
  const digits = /^\s*[+-]?\d+/.exec(m.slice(1));
  return { id: digits ? Number(digits[0]) >>> 0 : 0, perms };
}

/** do_chmod: the node, then (-u) each parent, then (-r) each child, recursively. */
async function doChmod(xs: XenbusClient, t: number, path: string, perms: XsPermission[], upto: boolean, recurse: boolean): Promise<void> {
  if (path === '') return;
  try {
    await xs.setPerms(path, perms, t);
  } catch (e) {
    if (e instanceof XsError) throw new CliError('failed', `ringvisor xenstore-chmod: Error occurred setting permissions on '${path}': ${errnoText(e)}`);
    throw e;
  }
  if (upto) {
    const slash = path.lastIndexOf('/');
    if (slash < 0) throw new CliError('failed', `ringvisor xenstore-chmod: Unable to locate path separator '/' in '${path}'`);
    await doChmod(xs, t, path.slice(0, slash), perms, true, false);
  }
  if (recurse) {
    const children = await xsDirectory(xs, path, t).catch(() => [] as string[]);
    for (const c of children) await doChmod(xs, t, `${path}/${c}`, perms, false, true);
  }
}

function nonNegative(v: string): number {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 0) throw new InvalidArgumentError('expected a whole number');
  return n;
}
