/*
 * How Xen's xenstore tools show a value and read one from the command line.
 *
 * Xen: sanitise_value and unsanitise_value in tools/xenstore/xs_lib.c (Xen 4.17), which
 * xenstore-read, -ls and -write (tools/xenstore/xenstore_client.c) use unless given -R. Values are
 * bytes; the tools print them so that every byte can be told apart and typed back:
 *
 *   printable ASCII (space to ~) but \   as itself
 *   \  TAB  LF  CR                        \\  \t  \n  \r
 *   other bytes below 8                   \ and three octal digits: \000 … \007
 *   every other byte (incl. 0x7f, ≥ 0x80)  \x and two hex digits: \x1b, \x7f, \xc3
 *
 * and read an argument back by the inverse, with C's quirks kept so that the same command line
 * stores the same bytes as Xen's tool: \x takes what sscanf("%2x") takes (blanks skipped, a sign,
 * "0x" read as 0), \0 to \7 start up to three octal digits, a backslash before any other
 * character is dropped, and a backslash at the very end stores a NUL byte.
 */

const encoder = new TextEncoder();
const HEX = '0123456789abcdef';

/** sanitise_value: bytes → the text the tools print. */
export function sanitiseValue(bytes: Uint8Array): string {
  let out = '';
  for (const c of bytes) {
    if (c >= 0x20 && c <= 0x7e && c !== 0x5c) {
      out += String.fromCharCode(c);
      continue;
    }
    switch (c) {
      case 0x09: out += '\\t'; break;
      case 0x0a: out += '\\n'; break;
      case 0x0d: out += '\\r'; break;
      case 0x5c: out += '\\\\'; break;
      default: out += c < 8 ? `\\00${c}` : `\\x${HEX[c >> 4]}${HEX[c & 15]}`;
    }
  }
  return out;
}

const isSpace = (c: number) => c === 0x20 || (c >= 0x09 && c <= 0x0d);
const hexDigit = (c: number) => (c >= 0x30 && c <= 0x39 ? c - 0x30 : c >= 0x61 && c <= 0x66 ? c - 0x57 : c >= 0x41 && c <= 0x46 ? c - 0x37 : -1);

/** sscanf(s + at, "%2x%n"): the value and the bytes consumed, or null where sscanf matches nothing. */
function scanHex2(s: Uint8Array, at: number): { value: number; used: number } | null {
  let p = at;
  while (p < s.length && isSpace(s[p])) p++;
  let width = 2;
  let neg = false;
  if (s[p] === 0x2b || s[p] === 0x2d) {
    neg = s[p] === 0x2d;
    p++;
    width--;
  }
  // glibc reads a "0x" prefix within the field width: with nothing left for digits, the value is 0.
  if (width === 2 && s[p] === 0x30 && (s[p + 1] === 0x78 || s[p + 1] === 0x58)) return { value: 0, used: p + 2 - at };
  let value = 0;
  let digits = 0;
  while (width > 0 && p < s.length && hexDigit(s[p]) >= 0) {
    value = value * 16 + hexDigit(s[p]);
    p++;
    width--;
    digits++;
  }
  return digits === 0 ? null : { value: neg ? -value : value, used: p - at };
}

/** unsanitise_value: a command-line argument → the bytes to store. */
export function unsanitiseValue(arg: string): Uint8Array {
  const s = encoder.encode(arg);
  const out = new Uint8Array(s.length + 1);
  let o = 0;
  let i = 0;
  while (i < s.length) {
    let c = s[i++];
    if (c === 0x5c) {
      c = i < s.length ? s[i++] : 0;
      switch (c) {
        case 0x74: c = 0x09; break; // t
        case 0x6e: c = 0x0a; break; // n
        case 0x72: c = 0x0d; break; // r
        case 0x5c: break;
        case 0x78: { // x
          const h = scanHex2(s, i);
          if (h !== null) {
            c = h.value;
            i += h.used;
          }
          break;
        }
        case 0x30: case 0x31: case 0x32: case 0x33: case 0x34: case 0x35: case 0x36: case 0x37: {
          let v = 0;
          let n = 0;
          i--;
          while (n < 3 && i < s.length && s[i] >= 0x30 && s[i] <= 0x37) {
            v = v * 8 + s[i++] - 0x30;
            n++;
          }
          c = v;
          break;
        }
        case 0: // a backslash at the end: C stores the string's NUL, then stops
          out[o++] = 0;
          return out.slice(0, o);
        default: // the backslash is dropped
      }
    }
    out[o++] = c & 0xff;
  }
  return out.slice(0, o);
}
