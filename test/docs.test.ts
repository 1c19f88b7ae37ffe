// The annotated-source site (`npm run docs`): built from the tree into a temporary folder, it has
// a page for every source file, no broken internal link, the reading order as its contents, and
// the Xen files the headers name linked to Xen's source.
import test from 'ava';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { build, sourceFiles } from '../tools/docs/build.ts';
import { checkSite } from '../tools/docs/check.ts';
import { splitSections } from '../tools/docs/sections.ts';

test('npm run docs: every source file has its page and no internal link is broken', (t) => {
  const out = mkdtempSync(join(tmpdir(), 'rv-docs-'));
  t.teardown(() => rmSync(out, { recursive: true, force: true }));
  const { files } = build(out);
  t.true(files.length > 150, `${files.length} source files`);
  t.true(files.includes('shared/public/io/ring.ts') && files.includes('tools/docs/build.ts'));
  t.deepEqual(checkSite(out, sourceFiles()), []);

  const index = readFileSync(join(out, 'index.html'), 'utf8');
  t.regex(index, /Reading order/);
  t.regex(index, /href="src\/shared\/public\/io\/ring\.ts\.html"/);
  const ring = readFileSync(join(out, 'src/shared/public/io/ring.ts.html'), 'utf8');
  t.regex(ring, /class="upstream" href="[^"]*f=xen\/include\/public\/io\/ring\.h"/);
  t.regex(ring, /imported by/);
  t.regex(ring, /<td class="prose">[\s\S]*Notification hold-off[\s\S]*<td class="code">/);
});

test('a broken link and a missing page are reported', (t) => {
  const out = mkdtempSync(join(tmpdir(), 'rv-docs-'));
  t.teardown(() => rmSync(out, { recursive: true, force: true }));
  build(out);
  rmSync(join(out, 'src/shared/public/io/ring.ts.html'));
  const problems = checkSite(out, sourceFiles());
  t.true(problems.includes('no page for shared/public/io/ring.ts'));
  t.true(problems.some((p) => /broken link .*ring\.ts\.html/.test(p)));
});

test('sections: a comment on its own lines opens prose; an end-of-line comment stays in the code', (t) => {
  const s = splitSections('/*\n * Header.\n *\n *   @0 u32 drawn\n */\nconst a = 1; // tail\n\n// Why b.\nconst b = 2;\n');
  t.is(s.length, 2);
  t.regex(s[0].prose, /^Header\.\n\n```text\n {2}@0 u32 drawn\n```$/);
  t.is(s[0].code, 'const a = 1; // tail');
  t.deepEqual(s[1], { prose: 'Why b.', code: 'const b = 2;' });
});
