// Number reading as libxlu's strtol does it, and line-level config edits: quoting round-trips through the parser, removals keep the rest.
import test from 'ava';
import { applyEdits, quote, removeKey, setString } from '../../dom0/toolstack/config/xlcfg-edit.ts';
import { strtol } from '../../dom0/toolstack/config/xlcfg-get.ts';
import { editDistance, nearestKey } from '../../dom0/toolstack/config/xl-keys.ts';
import { parseXlConfig } from '../../dom0/toolstack/config/xlcfg-parse.ts';

test('strtol(text, &end, 0) with the whole text consumed', (t) => {
  const cases: Array<[string, number | 'invalid' | 'range']> = [
    ['512', 512], ['0x200', 512], ['0X1f', 31], ['010', 8], ['0', 0], [' 42', 42], ['+7', 7], ['-3', -3],
    ['08', 'invalid'], ['0x', 'invalid'], ['12ab', 'invalid'], ['', 'invalid'], ['1 ', 'invalid'], ['1e3', 'invalid'],
    ['99999999999999999999', 'range'],
  ];
  for (const [text, want] of cases) t.is(strtol(text), want, JSON.stringify(text));
});

test('edit distance counts a swap of neighbours as one edit', (t) => {
  t.is(editDistance('memroy', 'memory'), 1);
  t.is(editDistance('vcpu', 'vcpus'), 1);
  t.is(editDistance('', 'abc'), 3);
  t.is(nearestKey('on_poweof'), 'on_poweroff');
  t.is(nearestKey('xyz'), undefined);
});

test('quote() round-trips any text through the parser', (t) => {
  const alphabet = 'aZ09 "\'\\\n\t\r#[],;=+é';
  let seed = 12345;
  const rand = () => (seed = (seed * 1103515245 + 12345) >>> 0) / 2 ** 32;
  for (let i = 0; i < 500; i++) {
    let s = '';
    const n = Math.floor(rand() * 12);
    for (let j = 0; j < n; j++) s += alphabet[Math.floor(rand() * alphabet.length)];
    for (const q of ['"', "'"] as const) {
      const cfg = parseXlConfig(`k = ${quote(s, q)}\n`, 't.cfg');
      const v = cfg.settings.get('k')!.value;
      t.is(v.kind === 'atom' ? v.text : null, s);
    }
  }
});

test('setString replaces in place, adds after an anchor, or at the end', (t) => {
  const src = 'name = "a"   # the name\nmemory = 64';
  const cfg = parseXlConfig(src, 't.cfg');
  t.is(applyEdits(src, setString(cfg, 'name', 'b')), 'name = "b"   # the name\nmemory = 64');
  t.is(applyEdits(src, setString(cfg, 'uuid', 'u', { after: 'name' })), 'name = "a"   # the name\nuuid = "u"\nmemory = 64');
  t.is(applyEdits(src, setString(cfg, 'uuid', 'u')), 'name = "a"   # the name\nmemory = 64\nuuid = "u"\n');
});

test('removeKey takes whole lines, or just the statement on a shared line', (t) => {
  const src = 'a = 1\ntemplate = 1 # marker\nb = 2; template = 0; c = 3\n  template = 1;\nd = [ 1,\n 2 ]\n';
  const cfg = parseXlConfig(src, 't.cfg');
  t.is(applyEdits(src, removeKey(cfg, 'template')), 'a = 1\nb = 2; c = 3\nd = [ 1,\n 2 ]\n');
  t.is(applyEdits(src, removeKey(cfg, 'd')), 'a = 1\ntemplate = 1 # marker\nb = 2; template = 0; c = 3\n  template = 1;\n');
});
