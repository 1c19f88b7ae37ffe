/*
 * Reading typed values out of a parsed xl.cfg: a key as a string, a number, a boolean or a list.
 *
 * Xen: the accessors of tools/libs/util/libxlu_cfg.c (xlu_cfg_get_string, xlu_cfg_get_long,
 * xlu_cfg_get_bounded_long, xlu_cfg_get_defbool, xlu_cfg_get_list, xlu_cfg_get_listitem).
 * The rules are libxlu's:
 *   - a number is whatever C's strtol(text, &end, 0) reads completely: decimal, 0x hex, and,
 *     because base 0 says so, a leading 0 means octal (memory = 010 is 8 MiB). The text may
 *     have been quoted: "512" is as good a number as 512;
 *   - a boolean is a number, true when non-zero (defbool: `sdl = 1`), not "yes" or "true";
 *   - a value built with += is never a number ("can't use += with numbers");
 *   - a list where a single value is wanted, or the other way round, is wrong.
 * libxlu prints a warning and xl then often carries on with a default; ringvisor makes each
 * of these an error (collected in a Report), so a typo cannot quietly become a default.
 */
import type { Report } from './config-error.ts';
import type { Loc, XlAtom, XlConfig, XlList, XlSetting } from './xlcfg-parse.ts';

/** A string item with where it came from: a list entry keeps its own line and column. */
export interface Located {
  text: string;
  loc: Loc;
}

/** The line a finding about a whole key points at: the statement that set it last. */
export function keyLine(s: XlSetting): number {
  return s.statements[s.statements.length - 1]!.loc.line;
}

/** The key as a single value; `expected` completes "expected ..." in the error, e.g. `name = "NAME"`. */
export function getAtom(cfg: XlConfig, key: string, report: Report, expected: string): XlAtom | undefined {
  const s = cfg.settings.get(key);
  if (!s) return undefined;
  if (s.value.kind === 'list') {
    report.error(keyLine(s), `\`${key}' is a list but should be a single value (expected ${expected})`, s.value.loc.column);
    return undefined;
  }
  return s.value;
}

export function getString(cfg: XlConfig, key: string, report: Report, expected: string): Located | undefined {
  const a = getAtom(cfg, key, report, expected);
  return a && { text: a.text, loc: a.loc };
}

export interface LongBounds {
  min?: number;
  max?: number;
}

/** xlu_cfg_get_bounded_long: the key as an integer within bounds. */
export function getLong(
  cfg: XlConfig, key: string, report: Report, expected: string, bounds: LongBounds = {},
): number | undefined {
  const s = cfg.settings.get(key);
  const a = getAtom(cfg, key, report, expected);
  if (!s || !a) return undefined;
  const line = keyLine(s);
  if (s.appended) {
    report.error(line, `can't use += with numbers for \`${key}' (expected ${expected})`, a.loc.column);
    return undefined;
  }
  const n = strtol(a.text);
  if (n === 'invalid') {
    report.error(line, `\`${key}' is not a valid number: "${a.text}" (expected ${expected}, as a decimal or 0x hex integer)`,
      a.loc.column);
    return undefined;
  }
  if (n === 'range') {
    report.error(line, `\`${key}' is out of range: ${a.text} (expected ${expected})`, a.loc.column);
    return undefined;
  }
  if (OCTAL.test(a.text.trim())) {
    report.warn(line, `\`${key} = ${a.text}' is read as octal (${n}), as xl's strtol does; write ${n} if that is meant`,
      a.loc.column);
  }
  if (bounds.min !== undefined && n < bounds.min) {
    report.error(line, `\`${key}' is ${n}, smaller than the minimum ${bounds.min} (expected ${expected})`, a.loc.column);
    return undefined;
  }
  if (bounds.max !== undefined && n > bounds.max) {
    report.error(line, `\`${key}' is ${n}, greater than the maximum ${bounds.max} (expected ${expected})`, a.loc.column);
    return undefined;
  }
  return n;
}

/** xlu_cfg_get_defbool: a number, true when non-zero. */
export function getBool(cfg: XlConfig, key: string, report: Report): boolean | undefined {
  const n = getLong(cfg, key, report, `${key} = 0 or ${key} = 1`);
  return n === undefined ? undefined : n !== 0;
}

export function getList(cfg: XlConfig, key: string, report: Report, expected: string): XlList | undefined {
  const s = cfg.settings.get(key);
  if (!s) return undefined;
  if (s.value.kind !== 'list') {
    report.error(keyLine(s), `\`${key}' is a single value but should be a list (expected ${expected})`, s.value.loc.column);
    return undefined;
  }
  return s.value;
}

/** A list of strings, each with its own location; a nested list as an item is an error at that item. */
export function getStringList(cfg: XlConfig, key: string, report: Report, expected: string): Located[] | undefined {
  const list = getList(cfg, key, report, expected);
  if (!list) return undefined;
  const out: Located[] = [];
  for (const item of list.items) {
    if (item.kind === 'list') {
      report.error(item.loc.line, `an item of \`${key}' is a list but should be a string (expected ${expected})`,
        item.loc.column);
      continue;
    }
    out.push({ text: item.text, loc: item.loc });
  }
  return out;
}

const OCTAL = /^[+-]?0[0-7]+$/;
const STRTOL = /^[ \t\n\v\f\r]*([+-]?)(?:0[xX]([0-9a-fA-F]+)|(0[0-7]*)|([1-9][0-9]*))$/;

/**
 * C's strtol(text, &end, 0) where the whole text must be consumed (libxlu checks `*ep == 0`).
 * Results beyond JavaScript's safe integers count as out of range (strtol's ERANGE is at
 * LONG_MAX; no ringvisor setting comes near either).
 */
export function strtol(text: string): number | 'invalid' | 'range' {
  const m = STRTOL.exec(text);
  if (!m) return 'invalid';
  const [, sign, hex, oct, dec] = m;
  let v: bigint;
  if (hex !== undefined) v = BigInt('0x' + hex);
  else if (oct !== undefined) v = oct.length > 1 ? BigInt('0o' + oct.slice(1)) : 0n;
  else v = BigInt(dec!);
  if (sign === '-') v = -v;
  if (v > BigInt(Number.MAX_SAFE_INTEGER) || v < BigInt(Number.MIN_SAFE_INTEGER)) return 'range';
  return Number(v);
}
