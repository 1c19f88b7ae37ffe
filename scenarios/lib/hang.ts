/*
 * A hang detector for harnesses, scenarios and tests: a wait for something a guest or a host
 * should say (a console line, a log line, a harness message, a counter reaching a figure) fails
 * after a generous bound, naming what it waited for and the last lines it saw, instead of waiting
 * forever (a changed log line once hung the whole test suite rather than failing one test).
 *
 * Not a Xen component, and not a measurement: the bound is far above any wait that can succeed
 * on a loaded machine, nothing asserts on how long a wait took, and a wait that succeeds is not
 * slowed (the timer only fires if the thing never comes). RINGVISOR_HANG_S overrides every bound
 * (a slower machine, a debugger).
 */

/** The bound for a test's wait on a console or log line; scenarios and harnesses pass longer ones. */
export const TEST_BOUND_S = 120;

/** A scenario's or a benchmark harness's wait: it may wait for a whole run, on a loaded machine. */
export const SCENARIO_BOUND_S = 300;

/** `seconds`, unless RINGVISOR_HANG_S says otherwise; in milliseconds. */
export function hangBoundMs(seconds: number): number {
  const env = Number(process.env.RINGVISOR_HANG_S);
  return (Number.isFinite(env) && env > 0 ? env : seconds) * 1000;
}

/** A wait that did not end: what it waited for, where, and what it saw last. */
export class HangError extends Error {
  override readonly name = 'HangError';
}

/** The last `n` lines of `text`, indented, for a HangError's message. */
export function lastLines(text: string | readonly string[], n = 20): string {
  const lines = (typeof text === 'string' ? text.split('\n') : [...text]).filter((l) => l.trim() !== '');
  if (lines.length === 0) return '  (nothing)';
  return lines.slice(-n).map((l) => `  | ${l}`).join('\n');
}

/**
 * `p`, or a HangError after `seconds` whose message is `what()` (asked only then, so it can show
 * the latest output). The timer is cleared as soon as `p` settles; until then it holds the
 * process alive on purpose (a wait with nothing else pending would otherwise end silently).
 */
export function bounded<T>(p: Promise<T>, what: () => string, seconds = TEST_BOUND_S): Promise<T> {
  const ms = hangBoundMs(seconds);
  let timer: NodeJS.Timeout | undefined;
  const hang = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new HangError(`no progress after ${ms / 1000} s (a hang, not a slow run): ${what()}`)), ms);
  });
  return Promise.race([p, hang]).finally(() => clearTimeout(timer));
}

/**
 * Poll `cond` every `everyMs` until it holds; a HangError after the bound, with `seen()` (the
 * lines or figures the caller watches) in its message.
 */
export async function until(cond: () => boolean | Promise<boolean>, what: string,
  opts: { seen?: () => string | readonly string[]; everyMs?: number; seconds?: number } = {}): Promise<void> {
  const ms = hangBoundMs(opts.seconds ?? TEST_BOUND_S);
  const t0 = Date.now();
  while (!(await cond())) {
    if (Date.now() - t0 > ms) {
      throw new HangError(`no progress after ${ms / 1000} s (a hang, not a slow run): still waiting for ${what}` +
        (opts.seen ? `; last seen:\n${lastLines(opts.seen())}` : ''));
    }
    await new Promise((r) => setTimeout(r, opts.everyMs ?? 10));
  }
}
