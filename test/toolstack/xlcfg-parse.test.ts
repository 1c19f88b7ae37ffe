// xl.cfg syntax as libxlu reads it (libxlu_cfg_l.l, libxlu_cfg_y.y): values, lists, +=, repeats, and one test per syntax error.
import test from 'ava';
import { ConfigError } from '../../dom0/toolstack/config/config-error.ts';
import { parseXlConfig, type XlValue } from '../../dom0/toolstack/config/xlcfg-parse.ts';

const parse = (text: string) => parseXlConfig(text, 'test.cfg');

function plain(v: XlValue | undefined): unknown {
  if (!v) return undefined;
  return v.kind === 'atom' ? v.text : v.items.map(plain);
}

function value(text: string, key: string): unknown {
  return plain(parse(text).settings.get(key)?.value);
}

/** Asserts a ConfigError whose message starts with file:line:column and mentions `what`. */
function syntaxError(t: import('ava').ExecutionContext, text: string, where: string, what: RegExp): void {
  const e = t.throws(() => parse(text), { instanceOf: ConfigError });
  t.true(e!.message.startsWith(`test.cfg:${where}: `), e!.message);
  t.regex(e!.message, what);
}

test('strings in either quote, numbers kept as text, and a bare last line', (t) => {
  const cfg = parse('name = "a b"\nkind = \'single\'\nmemory = 512\nmask = 0x1f');
  t.is(plain(cfg.settings.get('name')!.value), 'a b');
  t.is(plain(cfg.settings.get('kind')!.value), 'single');
  t.is(plain(cfg.settings.get('memory')!.value), '512');
  const mask = cfg.settings.get('mask')!.value;
  t.deepEqual(mask.kind === 'atom' && [mask.text, mask.quoted], ['0x1f', false]);
});

test('the escapes libxlu dequotes', (t) => {
  t.is(value('s = "q\\"s\\\'b\\\\n\\nt\\tr\\ra\\af\\fb\\bv\\v"\n', 's'), 'q"s\'b\\n\nt\tr\ra\x07f\fb\bv\v');
  t.is(value("s = 'it\\'s'\n", 's'), "it's");
  t.is(value('s = "it\'s"\n', 's'), "it's");
});

test('lists: multi-line, comments inside, trailing comma, empty, nested', (t) => {
  const text = [
    'disk = [',
    '  # the system disk',
    "  'a.img,raw,xvda,rw',   # first",
    '',
    "  'b.img,raw,xvdb,rw',",
    ']',
    'empty = [ ]',
    'nested = [ [ 1, 2 ], "x" ]',
    'vif = [ \'\' ]',
  ].join('\n');
  const cfg = parse(text);
  t.deepEqual(plain(cfg.settings.get('disk')!.value), ['a.img,raw,xvda,rw', 'b.img,raw,xvdb,rw']);
  t.deepEqual(plain(cfg.settings.get('empty')!.value), []);
  t.deepEqual(plain(cfg.settings.get('nested')!.value), [['1', '2'], 'x']);
  t.deepEqual(plain(cfg.settings.get('vif')!.value), ['']);
  const disk = cfg.settings.get('disk')!.value;
  t.deepEqual(disk.kind === 'list' && disk.items.map((i) => [i.loc.line, i.loc.column]), [[3, 3], [5, 3]]);
});

test('; separates statements, blank statements are fine, comments end lines, even at EOF', (t) => {
  const cfg = parse('a = 1; b = "2" ;; \n;\n# only a comment\nc = 3 # trailing\n# no newline at the end');
  t.deepEqual([...cfg.settings.keys()], ['a', 'b', 'c']);
  t.is(value('x = 1 #c', 'x'), '1');
});

test('keys may hold dots, digits and underscores', (t) => {
  t.is(value('device_model.args2 = "x"', 'device_model.args2'), 'x');
});

test('+= appends to lists and concatenates strings; with nothing before it assigns', (t) => {
  const cfg = parse('disk = [ "a" ]\ndisk += [ "b", "c" ]\nextra = "x"\nextra += " y"\nvif += [ "" ]\n');
  t.deepEqual(plain(cfg.settings.get('disk')!.value), ['a', 'b', 'c']);
  t.is(plain(cfg.settings.get('extra')!.value), 'x y');
  t.deepEqual(plain(cfg.settings.get('vif')!.value), ['']);
  t.true(cfg.settings.get('disk')!.appended);
  t.is(cfg.settings.get('disk')!.statements.length, 2);
  t.deepEqual(cfg.warnings, []);
});

test('+= of a list to a string is an error naming both lines', (t) => {
  syntaxError(t, 'extra = "x"\n\nextra += [ "y" ]\n', '3:1', /can't add a \[list\] to a "string".*line 1/);
});

test('a repeated key: the later value wins, as in xl, with a warning naming both lines', (t) => {
  const cfg = parse('memory = 128\nname = "x"\nmemory = 256\n');
  t.is(plain(cfg.settings.get('memory')!.value), '256');
  t.is(cfg.settings.get('memory')!.replaced.length, 1);
  t.is(cfg.warnings.length, 1);
  t.is(cfg.warnings[0]!.line, 3);
  t.regex(cfg.warnings[0]!.message, /`memory' is set again; this value replaces the one at line 1/);
});

test('error: unterminated string', (t) => {
  syntaxError(t, 'name = "abc\nmemory = 1\n', '1:8', /unterminated string.*expected a closing "/);
  syntaxError(t, "a = 1\nname = 'abc", '2:8', /unterminated string.*expected a closing '/);
});

test('error: unterminated list, at the end of the file or at the next key', (t) => {
  syntaxError(t, 'name = "x"\ndisk = [ "a",\n  "b"\n', '2:8', /unterminated list.*`disk'.*the end of the file.*expected `]'/);
  syntaxError(t, 'disk = [ "a"\nmemory = 1\n', '1:8', /unterminated list.*before `memory' at line 2/);
});

test('error: a missing comma between list items', (t) => {
  syntaxError(t, 'disk = [ "a" "b" ]', '1:14', /expected `,' or `]' after an item of the list `disk', found the string "b"/);
});

test('error: an empty item (a leading comma) in a list', (t) => {
  syntaxError(t, 'disk = [ , "a" ]', '1:10', /expected a value for `disk'/);
});

test('error: bad tokens, with a hint for Python and for upper case', (t) => {
  syntaxError(t, 'memory = 512M\n', '1:13', /unexpected `M'.*no unit suffix.*MiB/);
  syntaxError(t, 'memory = 1.5\n', '1:11', /unexpected `.5'.*not Python/);
  syntaxError(t, 'memory = -1\n', '1:10', /unexpected `-1'.*negative numbers/);
  syntaxError(t, 'Memory = 1\n', '1:1', /unexpected `Memory'.*lower case/);
  syntaxError(t, 'mask = 0x1F\n', '1:11', /unexpected `F'/);
  syntaxError(t, 'name = "x"\r\n', '1:11', /carriage return.*dos2unix/);
  syntaxError(t, 'a = 1\n@b = 2\n', '2:1', /unexpected `@b'/);
});

test('error: a bare word is not a value', (t) => {
  syntaxError(t, 'type = hvm\n', '1:8', /bare word is not a value.*"hvm"/);
});

test('error: missing value, missing =, two statements on one line, value without a key', (t) => {
  syntaxError(t, 'memory =\nname = "x"\n', '1:9', /expected a value for `memory'.*found the end of the line/);
  syntaxError(t, 'memory 512\n', '1:8', /expected `=' or `\+=' after the key `memory'/);
  syntaxError(t, 'memory = 512 vcpus = 2\n', '1:14', /expected the end of the statement.*`memory'.*found `vcpus'/);
  syntaxError(t, '"x"\n', '1:1', /expected a key at the start of a statement/);
  syntaxError(t, 'a = 1\n]\n', '2:1', /expected a key.*found `]'/);
});

test('error: escapes libxlu does not accept', (t) => {
  syntaxError(t, 's = "a\\qb"', '1:7', /invalid escape `\\q'/);
  syntaxError(t, 's = "\\x41"', '1:6', /numeric escape.*not supported/);
  syntaxError(t, 's = "\\101"', '1:6', /numeric escape.*not supported/);
});

test('errors come in file order: a syntax error on line 1 before a bad character on line 3', (t) => {
  syntaxError(t, 'a = = 1\nb = 2\nc = $\n', '1:5', /expected a value for `a'/);
});
