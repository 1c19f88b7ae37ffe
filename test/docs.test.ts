// The annotated-source site (`npm run docs`): built from the tree into a temporary folder, its
// first page is the trace of one PV and one emulated request recorded while it was built, each
// slice linked to the line of source whose trace point wrote it; then the reading order as its
// contents; a page for every source file, no broken internal link, and the Xen files the headers
// name linked to Xen's source.
import test from 'ava';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { build, sourceFiles } from '../tools/docs/build.ts';
import { checkSite } from '../tools/docs/check.ts';
import { splitSections } from '../tools/docs/sections.ts';
import { recordRequestPaths, type RecordedPaths } from '../tools/docs/request-trace.ts';
import { isComplete } from '../tools/docs/request-path.ts';

let recorded: Promise<RecordedPaths> | null = null;
const paths = () => (recorded ??= recordRequestPaths());

const unescape = (s: string) => s.replace(/<[^>]+>/g, '').replace(/&lt;/g, '<').replace(/&gt;/g, '>').replace(/&quot;/g, '"').replace(/&#x27;/g, "'").replace(/&amp;/g, '&');

test('npm run docs: every source file has its page and no internal link is broken', async (t) => {
  const out = mkdtempSync(join(tmpdir(), 'rv-docs-'));
  t.teardown(() => rmSync(out, { recursive: true, force: true }));
  const { files } = build(out, await paths());
  t.true(files.length > 150, `${files.length} source files`);
  t.true(files.includes('shared/public/io/ring.ts') && files.includes('tools/docs/build.ts') && files.includes('cli/webview/static/app.js'));
  t.deepEqual(checkSite(out, sourceFiles()), []);

  const index = readFileSync(join(out, 'index.html'), 'utf8');
  t.regex(index, /Reading order/);
  t.regex(index, /href="src\/shared\/public\/io\/ring\.ts\.html"/);
  const ring = readFileSync(join(out, 'src/shared/public/io/ring.ts.html'), 'utf8');
  t.regex(ring, /class="upstream" href="[^"]*f=xen\/include\/public\/io\/ring\.h"/);
  t.regex(ring, /imported by/);
  t.regex(ring, /<td class="prose">[\s\S]*Notification hold-off[\s\S]*<td class="code">/);
});

test('the first page is one PV and one emulated request, whole, each step linked to its trace point', async (t) => {
  const out = mkdtempSync(join(tmpdir(), 'rv-docs-'));
  t.teardown(() => rmSync(out, { recursive: true, force: true }));
  const { requestPages } = build(out, await paths());
  const index = readFileSync(join(out, 'index.html'), 'utf8');
  // First the two timelines, then the reading order.
  const pv = index.indexOf('id="path-pv"');
  const emu = index.indexOf('id="path-emulated"');
  const order = index.indexOf('id="reading-order"');
  t.true(pv > 0 && emu > pv && order > emu, 'request paths come before the reading order');
  t.regex(index.slice(pv, emu), /<svg class="timeline"[\s\S]*<\/svg>/);
  t.regex(index.slice(emu, order), /<svg class="timeline"[\s\S]*<\/svg>/);

  const expected = { pv: ['blkfront submit', 'blkback request', 'disk preadv/pwritev', 'blkfront complete'], emulated: ['IDE command', 'trap → ioreq round trip', 'device model: handle_ioreq', 'set_isa_irq_level'] };
  for (const p of requestPages) {
    t.true(isComplete(p.flow, p.kind), `${p.kind}: the flow drawn runs from its start to its finish through every step`);
    const onFlow = p.steps.filter((s) => s.onFlow);
    for (const name of expected[p.kind]) t.true(onFlow.some((s) => s.slice.name === name), `${p.kind}: ${name} is on the path`);
    t.true(p.flow.points.every((e, i) => i === 0 || e.ts >= p.flow.points[i - 1]!.ts), `${p.kind}: time increases along the flow`);
    // Every step on the path links to a section of source that holds the trace point's line.
    for (const st of onFlow) {
      t.truthy(st.site, `${p.kind}: ${st.slice.name} has a trace point`);
      const site = st.site!;
      const line = readFileSync(site.file, 'utf8').split('\n')[site.line - 1]!;
      t.regex(line, /(xentrace|\.write)\(\s*TRC_/, `${site.file}:${site.line} is a trace point`);
      const part = index.slice(p.kind === 'pv' ? pv : emu, p.kind === 'pv' ? emu : order);
      const hrefs = [...part.matchAll(new RegExp(`href="(src/${site.file.replace(/[.]/g, '\\.')}\\.html)#(L\\d+)"`, 'g'))];
      t.true(hrefs.length > 0, `${p.kind}: ${st.slice.name} links to ${site.file}`);
      const page = readFileSync(join(out, hrefs[0]![1]!), 'utf8');
      const shown = hrefs.some((h) => {
        const row = new RegExp(`<tr id="${h[2]}">([\\s\\S]*?)</tr>`).exec(page);
        return row !== null && unescape(row[1]!).includes(line.trim());
      });
      t.true(shown, `${site.file}: a link from the timeline reaches the section that shows ${line.trim()}`);
    }
  }
});

test('a broken link and a missing page are reported', async (t) => {
  const out = mkdtempSync(join(tmpdir(), 'rv-docs-'));
  t.teardown(() => rmSync(out, { recursive: true, force: true }));
  build(out, await paths());
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
  t.is(s[0].line, 6, 'a section\'s anchor is its first line of code');
  t.deepEqual(s[1], { prose: 'Why b.', code: 'const b = 2;', line: 9 });
});
