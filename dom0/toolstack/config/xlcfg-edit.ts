/*
 * Rewriting an xl.cfg in place: change a few keys, keep everything else byte for byte.
 *
 * Xen has no counterpart (xl never writes a user's config; `xl create` saves its own JSON copy);
 * this is what an admin does by hand with an editor when cloning a VM, and what provisioning
 * does here. Edits work on the parser's source offsets, so comments, blank lines, the order of
 * keys and the layout of lists all survive; only the values that change are touched.
 *
 *   setString(cfg, key, value)  the last statement for key becomes `key = "value"` where it
 *                               stands (a trailing comment on its line stays); earlier or
 *                               appending (+=) statements for the key are removed; with no
 *                               statement at all, a line is added (after a given key's line,
 *                               or at the end)
 *   removeKey(cfg, key)         every statement for key goes; a line left empty goes with it
 *   replaceValue(loc, text)     one value (e.g. one list item) replaced where it stands
 */
import type { Loc, XlConfig, XlStatement } from './xlcfg-parse.ts';

export interface Edit {
  offset: number;
  end: number;
  text: string;
}

/**
 * A string as xl.cfg writes it, in double quotes unless told otherwise (to keep a file's own
 * style), with the escapes libxlu's dequote reads.
 */
export function quote(s: string, q: '"' | "'" = '"'): string {
  const esc: Record<string, string> = { [q]: `\\${q}`, '\\': '\\\\', '\n': '\\n', '\r': '\\r', '\t': '\\t' };
  return `${q}${s.replace(/["'\\\n\r\t]/g, (c) => esc[c] ?? c)}${q}`;
}

export function setString(cfg: XlConfig, key: string, value: string, opts: { after?: string } = {}): Edit[] {
  const stmts = statementsFor(cfg, key);
  const text = `${key} = ${quote(value)}`;
  if (stmts.length === 0) return [insertLine(cfg, text, opts.after)];
  const last = stmts[stmts.length - 1]!;
  return [...stmts.slice(0, -1).map((s) => removeStatement(cfg.source, s)), { offset: last.loc.offset, end: last.loc.end, text }];
}

export function removeKey(cfg: XlConfig, key: string): Edit[] {
  return statementsFor(cfg, key).map((s) => removeStatement(cfg.source, s));
}

export function replaceValue(loc: Loc, text: string): Edit {
  return { offset: loc.offset, end: loc.end, text };
}

/** Applies non-overlapping edits; throws if two overlap (a bug in the caller, not the config). */
export function applyEdits(source: string, edits: readonly Edit[]): string {
  const sorted = [...edits].sort((a, b) => a.offset - b.offset || a.end - b.end);
  let out = '';
  let pos = 0;
  for (const e of sorted) {
    if (e.offset < pos) throw new Error(`overlapping config edits at offset ${e.offset}`);
    out += source.slice(pos, e.offset) + e.text;
    pos = e.end;
  }
  return out + source.slice(pos);
}

function statementsFor(cfg: XlConfig, key: string): XlStatement[] {
  return cfg.statements.filter((s) => s.key === key);
}

/*
 * A statement alone on its line(s), perhaps with a `;` or a comment after it, takes its whole
 * line with it; one sharing a line with another statement is cut out with its `;`.
 */
function removeStatement(src: string, s: XlStatement): Edit {
  const lineStart = src.lastIndexOf('\n', s.loc.offset - 1) + 1;
  const nl = src.indexOf('\n', s.loc.end);
  const lineEnd = nl < 0 ? src.length : nl + 1;
  const before = src.slice(lineStart, s.loc.offset);
  const after = src.slice(s.loc.end, nl < 0 ? src.length : nl);
  if (/^[ \t]*$/.test(before) && /^[ \t]*;?[ \t]*(#.*)?$/.test(after)) return { offset: lineStart, end: lineEnd, text: '' };
  const semi = /^[ \t]*;[ \t]*/.exec(after);
  return { offset: s.loc.offset, end: s.loc.end + (semi ? semi[0].length : 0), text: '' };
}

function insertLine(cfg: XlConfig, text: string, afterKey: string | undefined): Edit {
  const src = cfg.source;
  const anchor = afterKey === undefined ? undefined : statementsFor(cfg, afterKey).at(-1);
  if (anchor) {
    const nl = src.indexOf('\n', anchor.loc.end);
    if (nl >= 0) return { offset: nl + 1, end: nl + 1, text: `${text}\n` };
  }
  const sep = src.length === 0 || src.endsWith('\n') ? '' : '\n';
  return { offset: src.length, end: src.length, text: `${sep}${text}\n` };
}
