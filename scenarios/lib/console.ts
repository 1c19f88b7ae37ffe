/*
 * Waiting for a guest to say something on its console, as a user watching `xl console` would:
 * attach through the host's control socket (cli/client.ts), read the history and then the live
 * output, and stop at the first match; or as one reading its console log file would. Xen: xenconsoled keeps each guest's console; `xl console`
 * attaches to it (tools/xl/xl_console.c).
 *
 * Not a measurement: a line that never comes fails with the regex, the domain, the host's run
 * directory and the console's last lines (./hang.ts), and so does a console that closes (the
 * domain went away) before the line came.
 */
import { existsSync, readFileSync } from 'node:fs';
import { XlClient } from '../../cli/client.ts';
import { HangError, TEST_BOUND_S, bounded, lastLines, until } from './hang.ts';

export interface ConsoleWaitOptions {
  /** Look only at the output from this offset on (history included in the count). */
  from?: number;
  /** The hang detector's bound (./hang.ts); tests keep the default, scenarios may pass more. */
  seconds?: number;
}

/**
 * Resolves with what `look` returns first (not undefined) for the domain's console output so far;
 * `what` names the wait in a failure.
 */
export async function consoleUntil<T>(runDir: string, domain: string, look: (seen: string) => T | undefined, what: string,
  opts: ConsoleWaitOptions = {}): Promise<T> {
  const c = await XlClient.open(runDir);
  let seen = '';
  const where = () => `${what} on ${domain}'s console (host ${runDir})`;
  try {
    const found = new Promise<T>((resolve, reject) => {
      const check = () => {
        const r = look(seen.slice(opts.from ?? 0));
        if (r !== undefined) resolve(r);
      };
      c.console(domain, (b) => { seen += Buffer.from(b).toString(); check(); },
        (why) => reject(new HangError(`${where()}: the console closed first (${why}); it said last:\n${lastLines(seen)}`)))
        .then(check, reject);
    });
    return await bounded(found, () => `${where()}; it said last:\n${lastLines(seen)}`, opts.seconds ?? TEST_BOUND_S);
  } finally {
    c.close();
  }
}

/** Resolves with the first match of `re` in the domain's console output (history included). */
export function consoleMatch(runDir: string, domain: string, re: RegExp, opts: ConsoleWaitOptions = {}): Promise<RegExpMatchArray> {
  return consoleUntil(runDir, domain, (seen) => seen.match(re) ?? undefined, `waiting for ${re}`, opts);
}

/** Resolves with everything the console said up to the first match of `re` (to check more in it). */
export function consoleText(runDir: string, domain: string, re: RegExp, opts: ConsoleWaitOptions = {}): Promise<string> {
  return consoleUntil(runDir, domain, (seen) => (re.test(seen) ? seen : undefined), `waiting for ${re}`, opts);
}

/**
 * Resolves with the first match of `re` in a console log file (xenconsoled's
 * /var/log/xen/console/guest-NAME.log; here a VM directory's console.log), read again every
 * `everyMs` until it matches; a hang fails with the file's last lines.
 */
export async function fileSays(path: string, re: RegExp, opts: { everyMs?: number; seconds?: number } = {}): Promise<RegExpMatchArray> {
  let text = '';
  let m: RegExpMatchArray | null = null;
  await until(() => {
    text = existsSync(path) ? readFileSync(path, 'utf8') : '';
    return (m = text.match(re)) !== null;
  }, `${re} in ${path}`, { everyMs: opts.everyMs ?? 50, seconds: opts.seconds, seen: () => (existsSync(path) ? text : '(no such file yet)') });
  return m!;
}
