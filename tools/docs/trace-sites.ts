/*
 * Where each trace record is written: for every event constant in shared/public/trace.ts (named
 * as dom0/lib/trace-json.ts names it in the JSON), the source lines whose trace point writes it, and the function around each.
 *
 * Found by reading the tree, not listed by hand: a trace point is a call of HYPERVISOR_xentrace
 * (`xentrace(TRC_GUEST_..., ...)`, guest kernels and Dom0's drivers) or of the hypervisor's
 * writer (`tr.write(TRC_..., ...)`, hypervisor/trace.ts's __trace_var) whose first argument names
 * the event's constant from shared/public/trace.ts. A slice that begins and ends is found at its
 * begin. A trace point that moves moves its link; one that disappears leaves its slice unlinked,
 * which the docs test notices.
 */
import * as T from '../../shared/public/trace.ts';
import { eventInfo } from '../../dom0/lib/trace-json.ts';

export interface Site { file: string; line: number; fn: string }

const G = T.TRC_GUEST & T.TRC_CLS_MASK;
/** Folders whose files write records (tools, tests and scenarios only read them). */
const WRITERS = /^(shared|hypervisor|dom0|backends|domu)\//;
const KEYWORDS = new Set(['if', 'for', 'while', 'switch', 'catch', 'return', 'function', 'new', 'await', 'typeof', 'super']);

/** The constant's name for each event id (classes and masks left out). */
function constantsByKind(): Map<number, string> {
  const out = new Map<number, string>();
  for (const [name, value] of Object.entries(T)) {
    if (!name.startsWith('TRC_') || typeof value !== 'number') continue;
    if (T.TRACE_CLASSES[name.slice(4).toLowerCase()] !== undefined) continue; // a class, not an event
    const kind = name.startsWith('TRC_GUEST_') ? G | value : value;
    if ((kind & T.TRC_CLS_MASK) !== 0 && (value & T.TRC_NUM_MASK) !== 0 && !out.has(kind)) out.set(kind, name);
  }
  return out;
}

/** The function (Class.method when inside a class) that holds line `at` (0-based). */
function enclosing(lines: string[], at: number): string {
  let indent = /^\s*/.exec(lines[at]!)![0].length;
  let fn = '';
  for (let i = at - 1; i >= 0; i--) {
    const l = lines[i]!;
    if (l.trim() === '') continue;
    const ind = /^\s*/.exec(l)![0].length;
    if (ind >= indent) continue;
    const cls = /^\s*(?:export\s+)?(?:default\s+)?(?:abstract\s+)?class\s+([\w$]+)/.exec(l);
    if (cls) return fn ? `${cls[1]}.${fn}` : cls[1]!;
    const m = /^\s*(?:(?:export|default|async|public|private|protected|static|readonly|override|get|set)\s+)*(?:function\s*\*?\s*)?(#?[\w$]+)\s*(?:<[^>]*>)?\s*\(/.exec(l)
      ?? /^\s*(?:export\s+)?(?:const|let)\s+([\w$]+)\s*=\s*(?:async\s*)?(?:\([^)]*\)|[\w$]+)\s*(?::[^=]+)?=>/.exec(l);
    if (m && !KEYWORDS.has(m[1]!) && fn === '') fn = m[1]!;
    indent = ind;
    if (ind === 0) break;
  }
  return fn;
}

/** Event id → every place that writes it, in file order. */
export function traceSites(files: readonly string[], read: (file: string) => string): Map<number, Site[]> {
  const constants = constantsByKind();
  const pattern = new RegExp(`(?:\\bxentrace|\\.write)\\(\\s*(${[...constants.values()].join('|')})\\b(?!\\s*\\|\\s*TRC_END)`);
  const byName = new Map([...constants].map(([k, n]) => [n, k]));
  const out = new Map<number, Site[]>();
  for (const file of files) {
    if (!WRITERS.test(file) || file === 'shared/public/trace.ts') continue;
    const text = read(file);
    if (!/TRC_/.test(text)) continue;
    const lines = text.split('\n');
    lines.forEach((l, i) => {
      if (/^\s*(\/\/|\*|\/\*)/.test(l)) return; // a comment that quotes a trace point is not one
      const m = pattern.exec(l);
      if (!m) return;
      const kind = byName.get(m[1]!)!;
      (out.get(kind) ?? out.set(kind, []).get(kind)!).push({ file, line: i + 1, fn: enclosing(lines, i) });
    });
  }
  return out;
}

/** The same, by the slice name the trace JSON gives the event. */
export function sitesByName(sites: ReadonlyMap<number, Site[]>): Map<string, Site[]> {
  const out = new Map<string, Site[]>();
  for (const [kind, s] of sites) out.set(eventInfo(kind)[0], s);
  return out;
}
