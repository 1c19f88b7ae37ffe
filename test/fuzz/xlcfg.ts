/*
 * Properties of the xl.cfg reader (dom0/toolstack/config/xlcfg-lex.ts, xlcfg-parse.ts, Xen's
 * libxlu_cfg_l.l / libxlu_cfg_y.y) and of the interpretation of what it read (vmconfig.ts,
 * Xen's xl_parse.c).
 *
 * A config file is typed by a person: random text must never throw anything but a ConfigError,
 * and every finding (error or warning) must name the file and a line that exists in it, which is
 * what lets an editor jump there. Text made of xl.cfg's own tokens reaches the parser's deeper
 * states; a config built from a model (keys, strings with every escape libxlu knows, nested
 * lists, `+=`, comments and `;` anywhere a newline may be) must parse back to the model.
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { ConfigError, type Diagnostic } from '../../dom0/toolstack/config/config-error.ts';
import { parseXlConfig, type XlValue } from '../../dom0/toolstack/config/xlcfg-parse.ts';
import { interpretXlConfig } from '../../dom0/toolstack/config/vmconfig.ts';
import type { FuzzGroup } from './property.ts';

const FILE = 'fuzz.cfg';
let scratch = '';
/** A VM directory that exists and is empty: relative disk paths resolve into it. */
function vmDir(): string {
  scratch ||= mkdtempSync(join(tmpdir(), 'rv-fuzz-cfg-'));
  return scratch;
}

function located(d: Diagnostic, lines: number): void {
  if (d.file !== FILE) throw new Error(`finding names file ${d.file}`);
  if (!Number.isInteger(d.line) || d.line < 1 || d.line > lines) throw new Error(`finding at line ${d.line} of a ${lines}-line file: ${d.message}`);
  if (d.column !== undefined && (!Number.isInteger(d.column) || d.column < 1)) throw new Error(`finding at column ${d.column}`);
  if (d.message.length === 0) throw new Error('a finding without a message');
}

/** Parse, then interpret: only a ConfigError may come out, and every finding is located. */
function readsCleanly(text: string): void {
  const lines = text.split('\n').length;
  try {
    const cfg = parseXlConfig(text, FILE);
    const loaded = interpretXlConfig(cfg, join(vmDir(), FILE));
    for (const w of loaded.warnings) located(w, lines);
  } catch (e) {
    if (!(e instanceof ConfigError)) throw new Error(`threw ${(e as Error)?.constructor?.name}: ${(e as Error)?.message}`);
    for (const d of e.diagnostics) located(d, lines);
    const first = e.diagnostics[0]!;
    if (!e.message.startsWith(`${FILE}:${first.line}`)) throw new Error(`message does not start with file:line: ${e.message}`);
  }
}

/* Text made of xl.cfg's own pieces, and of pieces that are nearly right. */
const KEYS = ['name', 'memory', 'maxmem', 'vcpus', 'type', 'disk', 'vif', 'uuid', 'on_poweroff', 'on_reboot', 'on_crash',
  'workload', 'workload_args', 'create_images', 'builder', 'kernel', 'bootable', 'memry', 'x.y_1'];
const piece = fc.oneof(
  { weight: 6, arbitrary: fc.constantFrom(...KEYS) },
  { weight: 6, arbitrary: fc.constantFrom(' = ', '=', ' += ', ', ', ',', '[', ']', ' [ ', '\n', ';', ' ', '\t', '# c\n', '#', '\r\n') },
  { weight: 4, arbitrary: fc.constantFrom('"x"', '"guest-1"', "'hvm'", '"disk.img,raw,xvda,rw"', '"hda"', '"disk.img=4"', '"a\\nb"', '"\\x41"', '"\\q"', '"unterminated', "'", '""') },
  { weight: 4, arbitrary: fc.constantFrom('0', '16', '512', '0x1f', '09', '0x', '1e9', '99999999999999999999', '-1', '1M') },
  { weight: 2, arbitrary: fc.constantFrom('"destroy"', '"restart"', '"preserve"', '"pv"', '"pvh"', '"idle"', '"disk-check"', '"bs=4096"', '"then=idle"', '"mac=00:16:3e:00:00:01"') },
  { weight: 1, arbitrary: fc.string({ maxLength: 6, unit: 'binary' }) },
);
export const tokenSoup = fc.array(piece, { maxLength: 60 }).map((ps) => ps.join(''));

/* Mostly well-formed statements with values from xl.cfg's world, so interpretation gets deep. */
const ATOMS = ['"g1"', '"x/y"', '16', '0', '4096', '0x10', '"hvm"', '"pv"', '"pvh"', '"destroy"', '"restart"', '"preserve"', '"rename-restart"',
  '"disk.img,raw,xvda,rw"', '"disk.img,raw,hda,w"', '"format=raw, vdev=xvdb, access=ro, target=b.img"', '"disk.img,qcow2,xvda,rw"',
  '"/abs/x.img,raw,sda,rw"', '"disk.img=4"', '"b.img=0"', '"disk.img=99999999"', '"mac=00:16:3e:00:00:01,bridge=xenbr0"', '"mac=zz"',
  '"idle"', '"disk-check"', '"fio-rand-read"', '"bs=4096"', '"then=idle"', '"count=-1"', '"BS=1"', '"disk=xvda"', '""', '1', '2', '128',
  '"0bb727eb-f91e-489c-b9be-4e5154d8dfe9"', '"not-a-uuid"'];
const atom = fc.constantFrom(...ATOMS);
const xlValue = fc.oneof({ weight: 3, arbitrary: atom }, { weight: 2, arbitrary: fc.array(atom, { maxLength: 3 }).map((xs) => `[ ${xs.join(', ')} ]`) });
const statement = fc.tuple(fc.constantFrom(...KEYS), fc.constantFrom(' = ', ' += '), xlValue).map(([k, op, v]) => `${k}${op}${v}`);
export const statementSoup = fc.tuple(fc.boolean(), fc.array(fc.oneof({ weight: 8, arbitrary: statement }, { weight: 1, arbitrary: piece }), { maxLength: 12 }))
  .map(([named, stmts]) => `${named ? 'name = "fuzz"\n' : ''}${stmts.join('\n')}\n`);
const anyText = fc.oneof(fc.string({ maxLength: 200, unit: 'binary' }), fc.string({ maxLength: 200, unit: 'grapheme-ascii' }));

/* A config from a model, and what parsing must give back. */
type Model = string | Model[];
const str = fc.string({ maxLength: 12, unit: fc.oneof(fc.constantFrom('a', 'Z', ' ', ',', '=', '[', '#', ';', '\\', '"', "'", '\t', '\n', 'é', '€'), fc.string({ minLength: 1, maxLength: 1, unit: 'grapheme' })) });
const value: fc.Arbitrary<Model> = fc.letrec<{ v: Model }>((tie) => ({
  v: fc.oneof({ depthSize: 'small', withCrossShrink: true }, str, fc.array(tie('v'), { maxLength: 4 })),
})).v;
const ident = fc.stringMatching(/^[a-z][._0-9a-z]{0,10}$/);
const blank = fc.constantFrom('', ' ', '\t', '  ');
const sep = fc.constantFrom('\n', ';', ' # a comment\n', '\n\n', ';\n');

function quote(s: string, q: '"' | "'"): string {
  const esc: Record<string, string> = { '\\': '\\\\', '\n': '\\n', '\t': '\\t', '\r': '\\r', '\x07': '\\a', '\b': '\\b', '\f': '\\f', '\v': '\\v' };
  esc[q] = `\\${q}`;
  return q + [...s].map((c) => esc[c] ?? c).join('') + q;
}

function render(v: Model, r: () => number): string {
  if (typeof v === 'string') return quote(v, r() < 0.5 ? '"' : "'");
  const items = v.map((x) => render(x, r));
  const nl = r() < 0.3 ? '\n # inside a list\n' : ' ';
  return `[${nl}${items.join(`,${nl}`)}${items.length && r() < 0.3 ? ',' : ''}${nl}]`;
}

function plain(v: XlValue): Model {
  return v.kind === 'atom' ? v.text : v.items.map(plain);
}

function roundTrip(stmts: { key: string; op: '=' | '+='; value: Model }[], seps: string[], blanks: string[], seed: number): void {
  let x = seed | 0 || 1;
  const r = () => { x ^= x << 13; x ^= x >>> 17; x ^= x << 5; return (x >>> 0) / 2 ** 32; };
  // `+=': list to list appends items, string to string appends text, with no earlier key it
  // assigns; a list added to a string (or back) is an error, so the model leaves those out.
  const want = new Map<string, Model>();
  const used: typeof stmts = [];
  for (const s of stmts) {
    const prev = want.get(s.key);
    if (s.op === '+=' && prev !== undefined) {
      if (Array.isArray(prev) !== Array.isArray(s.value)) continue;
      want.set(s.key, Array.isArray(prev) ? [...prev, ...(s.value as Model[])] : prev + (s.value as string));
    } else want.set(s.key, s.value);
    used.push(s);
  }
  const text = used.map((s, i) => `${blanks[i % blanks.length]}${s.key}${blanks[(i + 1) % blanks.length]}${s.op} ${render(s.value, r)}${seps[i % seps.length]}`).join('');
  let cfg;
  try {
    cfg = parseXlConfig(text, FILE);
  } catch (e) {
    throw new Error(`a well-formed config was refused: ${(e as Error).message}\n${text}`);
  }
  for (const [k, v] of want) {
    const got = cfg.settings.get(k);
    if (!got || JSON.stringify(plain(got.value)) !== JSON.stringify(v)) throw new Error(`${k}: parsed ${JSON.stringify(got && plain(got.value))}, written ${JSON.stringify(v)}\n${text}`);
  }
  if (cfg.settings.size !== want.size) throw new Error(`${cfg.settings.size} keys parsed, ${want.size} written`);
}

export const xlcfgProperties: FuzzGroup = {
  name: 'xl.cfg',
  properties: [
    {
      name: 'xl.cfg: random text never throws anything but a ConfigError, and every finding names file:line',
      ciRuns: 400,
      property: () => fc.property(anyText, readsCleanly),
    },
    {
      name: 'xl.cfg: text made of xl.cfg\'s own tokens, parsed and interpreted: a ConfigError or a config, every finding at a real line',
      ciRuns: 800,
      property: () => fc.property(tokenSoup, readsCleanly),
    },
    {
      name: 'xl.cfg: statements made of xl.cfg\'s keys and values, interpreted: a ConfigError or a config, every finding at a real line',
      ciRuns: 800,
      property: () => fc.property(statementSoup, readsCleanly),
    },
    {
      name: 'xl.cfg: a config written from a model (escapes, nested lists, +=, comments, ;) parses back to the model',
      ciRuns: 300,
      property: () => fc.property(
        fc.array(fc.record({ key: ident, op: fc.constantFrom('=' as const, '=' as const, '+=' as const), value }), { maxLength: 8 }),
        fc.array(sep, { minLength: 1, maxLength: 4 }), fc.array(blank, { minLength: 1, maxLength: 3 }), fc.integer(),
        roundTrip,
      ),
    },
  ],
};
