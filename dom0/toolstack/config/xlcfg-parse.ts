/*
 * xl.cfg parser: the grammar of Xen's domain config files, producing settings with locations.
 *
 * Xen: tools/libs/util/libxlu_cfg_y.y (grammar) and xlu__cfg_set_store / xlu__cfg_concat_vals
 * in libxlu_cfg.c (what an assignment does). The grammar, in libxlu's own terms:
 *
 *   file       := stmt* [assignment]              the last assignment needs no line ending
 *   stmt       := assignment endstmt | endstmt
 *   assignment := IDENT '=' value | IDENT '+=' value
 *   endstmt    := NEWLINE | ';'
 *   value      := STRING | NUMBER | '[' NEWLINE* valuelist ']'
 *   valuelist  := empty | values | values ',' NEWLINE*       one trailing comma allowed
 *   values     := value NEWLINE* (',' NEWLINE* value NEWLINE*)*
 *
 * So lists may span lines (newlines and comments are allowed around items), lists may nest,
 * and a bare word is not a value: `type = hvm` is a syntax error in xl too ("hvm" must be quoted).
 * Values are untyped text, as in libxlu: `memory = 512` and `memory = "512"` are the same setting,
 * and whether it is a number is decided when the key is read (see xlcfg-get.ts).
 *
 * Assignments, as libxlu stores them:
 *   - `KEY = v` when KEY was already set: the later one wins, silently in xl (settings are a list
 *     searched newest first). ringvisor does the same and adds a warning naming both lines,
 *     because a repeated key in a hand-edited file is more often a slip than a plan.
 *   - `KEY += v` appends: list to list (items concatenated), string to string (text concatenated);
 *     a list added to a string or the other way round is an error. With no earlier KEY it is an
 *     ordinary assignment. A value built with += cannot be read as a number ("can't use += with
 *     numbers"), which xlcfg-get.ts enforces.
 *
 * libxlu recovers from a syntax error at the next newline and keeps going, only to fail at the
 * end; this parser stops at the first error, which is the one worth reading.
 */
import { configError, type Diagnostic } from './config-error.ts';
import { Lexer, describeToken, type Token } from './xlcfg-lex.ts';

/** Where a value or statement is in the source: 1-based line/column, and [offset, end) offsets. */
export interface Loc {
  line: number;
  column: number;
  offset: number;
  end: number;
}

export interface XlAtom {
  kind: 'atom';
  /** The dequoted text. Numbers stay text until a key is read as a number. */
  text: string;
  /** Whether it was written as a quoted string; a NUMBER token was not. */
  quoted: boolean;
  loc: Loc;
}

export interface XlList {
  kind: 'list';
  items: XlValue[];
  /** From the `[` to just after the `]`. */
  loc: Loc;
}

export type XlValue = XlAtom | XlList;

/** One `KEY = value` or `KEY += value` as written. */
export interface XlStatement {
  key: string;
  op: '=' | '+=';
  value: XlValue;
  /** From the key's first character to the end of the value. */
  loc: Loc;
}

/** What a key ends up holding after every statement that assigns it. */
export interface XlSetting {
  key: string;
  value: XlValue;
  /** The statements the value came from: the last `=` and any `+=` after it (libxlu: set->op). */
  statements: XlStatement[];
  /** Whether the last statement was `+=` (libxlu refuses such a value as a number). */
  appended: boolean;
  /** Earlier `=` statements this one replaced. */
  replaced: XlStatement[];
}

export interface XlConfig {
  file: string;
  source: string;
  /** Every statement, in file order: what the rewriter works from. */
  statements: XlStatement[];
  /** Effective settings by key, in the order of the statements that set them last. */
  settings: Map<string, XlSetting>;
  /** Findings that do not stop the parse (repeated keys). */
  warnings: Diagnostic[];
}

/** Parses config text; throws ConfigError (file:line:column) at the first lexical or syntax error. */
export function parseXlConfig(source: string, file: string): XlConfig {
  return new Parser(source, file).file();
}

class Parser {
  private readonly lexer: Lexer;
  private tok: Token;
  private readonly cfg: XlConfig;

  constructor(source: string, private readonly fileName: string) {
    this.lexer = new Lexer(source, fileName);
    this.tok = this.lexer.next();
    this.cfg = { file: fileName, source, statements: [], settings: new Map(), warnings: [] };
  }

  file(): XlConfig {
    for (;;) {
      const t = this.tok;
      if (t.kind === 'eof') return this.cfg;
      if (t.kind === 'newline' || t.kind === ';') { this.advance(); continue; }
      if (t.kind !== 'ident') {
        this.fail(t, `expected a key at the start of a statement, found ${describeToken(t)}` +
          (t.kind === 'string' || t.kind === 'number' ? ' (a value needs `KEY =\' before it)' : ''));
      }
      const stmt = this.assignment();
      const end = this.tok;
      if (end.kind === 'newline' || end.kind === ';') this.advance();
      else if (end.kind !== 'eof') {
        this.fail(end, `expected the end of the statement (a newline or \`;') after the value of ` +
          `\`${stmt.key}', found ${describeToken(end)}`);
      }
    }
  }

  private assignment(): XlStatement {
    const keyTok = this.tok;
    const key = keyTok.value;
    this.advance();
    const opTok = this.tok;
    if (opTok.kind !== '=' && opTok.kind !== '+=') {
      this.fail(opTok, `expected \`=' or \`+=' after the key \`${key}', found ${describeToken(opTok)}`);
    }
    this.advance();
    const value = this.value(key);
    const stmt: XlStatement = {
      key, op: opTok.kind, value,
      loc: { line: keyTok.line, column: keyTok.column, offset: keyTok.offset, end: value.loc.end },
    };
    this.store(stmt);
    return stmt;
  }

  private value(key: string): XlValue {
    const t = this.tok;
    if (t.kind === 'string' || t.kind === 'number') {
      this.advance();
      return { kind: 'atom', text: t.value, quoted: t.kind === 'string', loc: locOf(t) };
    }
    if (t.kind === '[') return this.list(key);
    if (t.kind === 'ident') {
      this.fail(t, `a bare word is not a value: expected a quoted string for \`${key}' (write "${t.value}")`);
    }
    this.fail(t, `expected a value for \`${key}' (a "string", a number or a [ list ]), found ${describeToken(t)}`);
  }

  private list(key: string): XlList {
    const open = this.tok;
    this.advance();
    const items: XlValue[] = [];
    this.skipNewlines();
    if (this.peek().kind !== ']') {
      for (;;) {
        this.checkOpen(open, key);
        items.push(this.value(key));
        this.skipNewlines();
        const t = this.tok;
        if (t.kind === ']') break;
        if (t.kind !== ',') {
          this.checkOpen(open, key);
          this.fail(t, `expected \`,' or \`]' after an item of the list \`${key}', found ${describeToken(t)}`);
        }
        this.advance();
        this.skipNewlines();
        if (this.peek().kind === ']') break; // trailing comma
      }
    }
    const close = this.tok;
    this.advance();
    return { kind: 'list', items, loc: { line: open.line, column: open.column, offset: open.offset, end: close.end } };
  }

  /*
   * A list still open at the end of the file, or at something that can only start the next
   * statement (a key, `=`), is most likely a forgotten `]`: report it where the list began.
   */
  private checkOpen(open: Token, key: string): void {
    const t = this.tok;
    if (t.kind === 'eof' || t.kind === 'ident' || t.kind === '=' || t.kind === '+=' || t.kind === ';') {
      configError(this.fileName, open.line, open.column,
        `unterminated list: the \`[' of \`${key}' opened here is not closed ` +
        `before ${describeToken(t)} at line ${t.line} (expected \`]')`);
    }
  }

  /* libxlu: xlu__cfg_set_store and xlu__cfg_concat_vals. */
  private store(stmt: XlStatement): void {
    const cfg = this.cfg;
    cfg.statements.push(stmt);
    const prev = cfg.settings.get(stmt.key);
    if (stmt.op === '+=' && prev) {
      if (prev.value.kind !== stmt.value.kind) {
        this.fail(stmt.loc, `can't add ${describeKind(stmt.value)} to ${describeKind(prev.value)} with += ` +
          `(\`${stmt.key}' was set at line ${prev.statements[0]!.loc.line}; expected a value of the same kind)`);
      }
      prev.value = concat(prev.value, stmt.value);
      prev.statements.push(stmt);
      prev.appended = true;
      return;
    }
    const setting: XlSetting = {
      key: stmt.key, value: stmt.value, statements: [stmt], appended: stmt.op === '+=', replaced: [],
    };
    if (prev) {
      const last = prev.statements[prev.statements.length - 1]!;
      cfg.warnings.push({
        severity: 'warning', file: this.fileName, line: stmt.loc.line,
        message: `\`${stmt.key}' is set again; this value replaces the one at line ${last.loc.line} ` +
          '(xl keeps the last assignment; use += to append)',
      });
      setting.replaced = [...prev.replaced, ...prev.statements];
      cfg.settings.delete(stmt.key); // re-insert so iteration follows the effective statement
    }
    cfg.settings.set(stmt.key, setting);
  }

  private skipNewlines(): void {
    while (this.tok.kind === 'newline') this.advance();
  }

  /* The current token, read through a call so TypeScript does not carry a narrowing across advance(). */
  private peek(): Token {
    return this.tok;
  }

  private advance(): void {
    this.tok = this.lexer.next();
  }

  private fail(where: { line: number; column: number }, message: string): never {
    configError(this.fileName, where.line, where.column, message);
  }
}

function locOf(t: Token): Loc {
  return { line: t.line, column: t.column, offset: t.offset, end: t.end };
}

function describeKind(v: XlValue): string {
  return v.kind === 'list' ? 'a [list]' : 'a "string"';
}

/* The combined value keeps the newest location, as libxlu's concatenated setting does. */
function concat(prev: XlValue, add: XlValue): XlValue {
  if (prev.kind === 'list' && add.kind === 'list') return { kind: 'list', items: [...prev.items, ...add.items], loc: add.loc };
  if (prev.kind === 'atom' && add.kind === 'atom') {
    return { kind: 'atom', text: prev.text + add.text, quoted: prev.quoted || add.quoted, loc: add.loc };
  }
  throw new Error('concat of different kinds is refused before it is called');
}
