/*
 * Waiting on a guest's console in a scenario: what its log says, history included (xl console
 * replays the domain's log, which lives in its VM directory, so a guest that moved brings its
 * earlier lines along).
 *
 * Xen: `xl console`, fed by xenconsoled's per-domain log.
 */
import { consoleUntil } from './console.ts';
import { SCENARIO_BOUND_S } from './hang.ts';

/**
 * Resolves with what `find` first finds in the domain's console output; a line that never comes
 * fails after the scenario's hang bound (./hang.ts) with what the console said last.
 */
export function consoleFinds<T>(runDir: string, domain: string, find: (text: string) => T | null, what = 'a line'): Promise<T> {
  return consoleUntil(runDir, domain, (text) => find(text) ?? undefined, what, { seconds: SCENARIO_BOUND_S });
}

export function consoleSays(runDir: string, domain: string, re: RegExp): Promise<RegExpMatchArray> {
  return consoleFinds(runDir, domain, (text) => text.match(re), String(re));
}

/**
 * mem-touch's resume after the guest's last suspend in its log, and the first pass it reported done
 * after it, at or beyond the pass it resumed in: that pass is reported, then every hundredth, so a
 * report the console missed is made up by a later one. Each pass checks every page written the
 * pass before, so a finished pass means the pages that came across were right. (The log a host
 * replays may or may not hold the guest's earlier lives: a restored domain's may start afresh.)
 */
export function memTouchResumed(runDir: string, domain: string): Promise<{ line: string; pass: number; finished: number }> {
  return consoleFinds(runDir, domain, (text) => {
    const from = text.lastIndexOf('suspend: freezing the workload');
    const r = /mem-touch: resumed at pass (\d+), page \d+[^\n]*/.exec(from < 0 ? text : text.slice(from));
    if (r === null) return null;
    const pass = Number(r[1]);
    for (const p of text.slice(Math.max(0, from) + r.index + r[0].length).matchAll(/mem-touch: pass (\d+) done/g)) {
      if (Number(p[1]) >= pass) return { line: r[0], pass, finished: Number(p[1]) };
    }
    return null;
  }, 'mem-touch resumed and a pass done after it');
}
