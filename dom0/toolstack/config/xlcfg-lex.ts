/*
 * xl.cfg lexer: turns a config file's text into tokens, as libxlu's flex scanner does.
 *
 * Xen: tools/libs/util/libxlu_cfg_l.l (tokens) and xlu__cfgl_dequote in libxlu_cfg.c (string
 * escapes). The token set is Xen's, rule for rule:
 *
 *   IDENT    [a-z][._0-9a-z]*        keys, and bare words; lower case only, as in Xen
 *   NUMBER   [0-9][0-9a-fx]*         kept as text: "0x1f", "512"; what it means is decided when a
 *                                    key is read as a number (strtol), exactly as libxlu does
 *   STRING   '...' or "..."          no raw newline inside; backslash escapes, see dequote()
 *   , [ ] += = ;                     punctuation
 *   NEWLINE  \n, or # comment to \n  a comment is a line ending, so comments may sit anywhere
 *                                    a newline may, including inside multi-line lists
 *   blanks and tabs between tokens are skipped.
 *
 * Anything else is a lexical error. libxlu prints "lexical error" and, for the characters a
 * Python expression would use (+ - . ( ) :), a hint that xm's Python configs are no longer
 * supported; here every error says where it is and what would have been accepted.
 *
 * Deliberate differences from libxlu, each because Xen's behaviour there is an accident:
 *   - A comment on the last line needs no trailing newline (flex's rule needs one, so xl
 *     rejects such a file with a lexical error).
 *   - Numeric escapes (\x41, \101) are refused with an explanation. In libxlu's dequote the hex
 *     form always fails and the octal form silently drops the character, so a config using
 *     them never meant what it says under xl either.
 */
import { configError } from './config-error.ts';

export type TokenKind = 'ident' | 'number' | 'string' | ',' | '[' | ']' | '+=' | '=' | ';' | 'newline' | 'eof';

export interface Token {
  kind: TokenKind;
  /** ident and number: their text; string: the dequoted value; otherwise the punctuation. */
  value: string;
  line: number;
  column: number;
  /** Offsets into the source, [offset, end): what the config rewriter replaces. */
  offset: number;
  end: number;
}

/* Escapes libxlu's dequote accepts, by the letter after the backslash. */
const SIMPLE_ESCAPES: Readonly<Record<string, string>> = {
  '"': '"', '\'': '\'', '\\': '\\', a: '\x07', b: '\b', f: '\f', n: '\n', r: '\r', t: '\t', v: '\v',
};

const EXPECTED_TOKEN = 'expected a key, a string, a number, `[\', `]\', `,\', `=\', `+=\', `;\' or a # comment';

function isIdentStart(c: string): boolean { return c >= 'a' && c <= 'z'; }
function isIdentChar(c: string): boolean { return isIdentStart(c) || (c >= '0' && c <= '9') || c === '.' || c === '_'; }
function isDigit(c: string): boolean { return c >= '0' && c <= '9'; }
function isNumberChar(c: string): boolean { return isDigit(c) || (c >= 'a' && c <= 'f') || c === 'x'; }

/**
 * A pull lexer, so that errors surface in file order: the parser asks for one token at a time,
 * and a bad character on line 9 is not reported before a syntax error on line 3.
 */
export class Lexer {
  private pos = 0;
  private line = 1;
  private lineStart = 0;

  constructor(private readonly src: string, private readonly file: string) {}

  next(): Token {
    const s = this.src;
    while (this.pos < s.length && (s[this.pos] === ' ' || s[this.pos] === '\t')) this.pos++;
    const start = this.pos;
    const column = start - this.lineStart + 1;
    const line = this.line;
    if (start >= s.length) return { kind: 'eof', value: '', line, column, offset: start, end: start };

    const c = s[start]!;
    const tok = (kind: TokenKind, end: number, value = s.slice(start, end)): Token => {
      this.pos = end;
      return { kind, value, line, column, offset: start, end };
    };

    if (c === '\n' || c === '#') {
      let end = start;
      while (end < s.length && s[end] !== '\n') end++;
      const t = tok('newline', end, '\n');
      if (end < s.length) { // consume the newline itself; EOF also ends a comment (see header)
        this.pos = end + 1;
        this.line++;
        this.lineStart = this.pos;
        t.end = this.pos;
      }
      return t;
    }
    if (isIdentStart(c)) {
      let end = start + 1;
      while (end < s.length && isIdentChar(s[end]!)) end++;
      return tok('ident', end);
    }
    if (isDigit(c)) {
      let end = start + 1;
      while (end < s.length && isNumberChar(s[end]!)) end++;
      return tok('number', end);
    }
    if (c === '\'' || c === '"') return this.string(c, line, column);
    if (c === '+' && s[start + 1] === '=') return tok('+=', start + 2);
    if (c === ',' || c === '[' || c === ']' || c === '=' || c === ';') return tok(c, start + 1);
    return this.badCharacter(line, column);
  }

  private string(quote: string, line: number, column: number): Token {
    const s = this.src;
    const start = this.pos;
    let value = '';
    let i = start + 1;
    for (;;) {
      if (i >= s.length || s[i] === '\n') {
        configError(this.file, line, column,
          `unterminated string: the ${quote} opened here is not closed on this line ` +
          `(expected a closing ${quote}; a string cannot span lines)`);
      }
      const c = s[i]!;
      if (c === quote) break;
      if (c !== '\\') { value += c; i++; continue; }
      const e = s[i + 1];
      const escColumn = i - this.lineStart + 1;
      if (e === undefined || e === '\n') {
        configError(this.file, line, column,
          `unterminated string: a backslash ends the line (expected a closing ${quote} on this line)`);
      }
      const simple = SIMPLE_ESCAPES[e];
      if (simple !== undefined) { value += simple; i += 2; continue; }
      if (e === 'x' || (e >= '0' && e <= '7')) {
        configError(this.file, line, escColumn,
          `numeric escape \`\\${e}...' in a string is not supported (libxlu rejects \\x escapes and drops ` +
          'octal ones, so xl would not read it as written either: expected the character itself)');
      }
      configError(this.file, line, escColumn,
        `invalid escape \`\\${e}' in a string (expected one of \\" \\' \\\\ \\a \\b \\f \\n \\r \\t \\v)`);
    }
    this.pos = i + 1;
    return { kind: 'string', value, line, column, offset: start, end: this.pos };
  }

  private badCharacter(line: number, column: number): never {
    const s = this.src;
    const c = s[this.pos]!;
    if (c === '\r') {
      configError(this.file, line, column,
        'carriage return in the file (expected Unix line endings: xl rejects CRLF files too; convert with dos2unix)');
    }
    let end = this.pos;
    while (end < s.length && !' \t\n'.includes(s[end]!)) end++;
    const word = s.slice(this.pos, end);
    let hint = EXPECTED_TOKEN;
    if ('+-.():'.includes(c)) {
      hint = 'xl.cfg is not Python: expressions, negative numbers and decimals are not supported; ' +
        'expected a plain string, number or [ list ]';
    } else if (/[A-Za-z]/.test(c) && this.pos > 0 && isDigit(s[this.pos - 1]!)) {
      hint = 'a number takes no unit suffix (memory and maxmem are in MiB already; hex digits are lower case)';
    } else if (c >= 'A' && c <= 'Z') {
      hint = 'keys, bare words and hex digits are lower case in xl.cfg; upper case belongs inside quotes';
    }
    configError(this.file, line, column, `unexpected \`${word}' (${hint})`);
  }
}

/** Describes a token for an error message: "`name'", "string \"x\"", "end of file". */
export function describeToken(t: Token): string {
  switch (t.kind) {
    case 'eof': return 'the end of the file';
    case 'newline': return 'the end of the line';
    case 'string': return `the string "${t.value}"`;
    case 'number': return `the number ${t.value}`;
    case 'ident': return `\`${t.value}'`;
    default: return `\`${t.kind}'`;
  }
}
