/*
 * `npm run docs`: the annotated-source site. Every source file as a page with its comments
 * beside its code (docco's layout, ./sections.ts), the README's reading order as the table of
 * contents, each page linking to the files it imports and the files that import it, and the
 * Xen, Linux and QEMU files named in the prose linked to their source (./links.ts).
 *
 * Generated from the tree, never edited by hand: `npm run docs [-- --out DIR]` writes
 * out/docs/ by default; open out/docs/index.html. check() (./check.ts) proves that every source
 * file has its page and no internal link is broken; the test runs both.
 */
import { mkdirSync, readFileSync, writeFileSync, existsSync, statSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import { dirname, join, relative, resolve } from 'node:path';
import hljs from 'highlight.js/lib/core';
import typescript from 'highlight.js/lib/languages/typescript';
import javascript from 'highlight.js/lib/languages/javascript';
import { marked } from 'marked';
import { splitSections } from './sections.ts';
import { linkPaths } from './links.ts';
import { STYLE } from './style.ts';
import { renderPath, type PathPage } from './request-path.ts';
import type { RecordedPaths } from './request-trace.ts';
import { sitesByName, traceSites, type Site } from './trace-sites.ts';

hljs.registerLanguage('typescript', typescript);
hljs.registerLanguage('javascript', javascript);

const ROOT = resolve(import.meta.dirname, '../..');
const SOURCE_DIRS = ['shared', 'hypervisor', 'dom0', 'backends', 'domu', 'cli', 'scenarios', 'tools', 'test', 'bin'];

/** The project's source files, as git knows them (so a generated or ignored file never shows). */
export function sourceFiles(root = ROOT): string[] {
  const out = execFileSync('git', ['ls-files', '--cached', '--others', '--exclude-standard', ...SOURCE_DIRS], { cwd: root, encoding: 'utf8' });
  return out.split('\n').filter((f) => /\.(ts|mjs|js)$/.test(f) && existsSync(join(root, f))).sort();
}

const pageOf = (file: string) => `src/${file}.html`;
const escapeHtml = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');

/** Relative imports of a file, resolved to project paths. */
function importsOf(file: string, text: string, known: Set<string>): string[] {
  const found = new Set<string>();
  for (const m of text.matchAll(/(?:from\s+|import\s*\(\s*|new URL\(\s*)['"](\.{1,2}\/[^'"]+)['"]/g)) {
    const target = relative(ROOT, resolve(ROOT, dirname(file), m[1]));
    if (known.has(target)) found.add(target);
  }
  return [...found].sort();
}

/** The README's "Reading order" list, with its file names turned into links. */
function readingOrder(readme: string, linkFor: (p: string) => string | null): string {
  const m = /## Reading order\n([\s\S]*?)(?=\n## )/.exec(readme);
  if (!m) return '';
  return linkPaths(marked.parse(m[1], { async: false }), linkFor);
}

function layout(title: string, depth: number, nav: string, body: string): string {
  const up = '../'.repeat(depth);
  return `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>${escapeHtml(title)} — ringvisor</title>
<meta name="viewport" content="width=device-width, initial-scale=1"><link rel="stylesheet" href="${up}style.css"></head>
<body><header><a href="${up}index.html">ringvisor</a> · <span>${escapeHtml(title)}</span></header>${nav}<main>${body}</main></body></html>\n`;
}

/**
 * Writes the site. `paths` is the trace the first page draws (./request-trace.ts records it; the
 * build is synchronous, the recording is not, so the caller records first).
 */
export function build(outDir: string, paths: RecordedPaths, root = ROOT): { pages: number; files: string[]; requestPages: PathPage[] } {
  const files = sourceFiles(root);
  const known = new Set(files);
  const importers = new Map<string, string[]>();
  const texts = new Map<string, string>();
  const imports = new Map<string, string[]>();
  for (const f of files) {
    const text = readFileSync(join(root, f), 'utf8');
    texts.set(f, text);
    const deps = importsOf(f, text, known);
    imports.set(f, deps);
    for (const d of deps) (importers.get(d) ?? importers.set(d, []).get(d)!).push(f);
  }
  mkdirSync(outDir, { recursive: true });
  writeFileSync(join(outDir, 'style.css'), STYLE);

  // A project path mentioned in prose → its page (or, for a folder, the index section).
  const linker = (fromFile: string | null) => (p: string): string | null => {
    const base = fromFile && p.startsWith('.') ? dirname(fromFile) : '';
    const target = relative(root, resolve(root, base, p)).replace(/\/$/, '');
    const from = fromFile ? dirname(pageOf(fromFile)) : '.';
    if (known.has(target)) return relative(from, pageOf(target));
    if (existsSync(join(root, target)) && statSync(join(root, target)).isDirectory() && files.some((f) => f.startsWith(target + '/'))) {
      return `${relative(from, 'index.html')}#dir-${target.replace(/[^\w]/g, '-')}`;
    }
    return null;
  };

  const anchors = new Map<string, number[]>(); // file → its sections' first lines (their row ids)
  for (const f of files) {
    const page = pageOf(f);
    const depth = page.split('/').length - 1;
    const toPage = (t: string) => relative(dirname(page), pageOf(t));
    const list = (label: string, xs: string[]) => xs.length === 0 ? '' :
      `<p><b>${label}</b> ${xs.map((x) => `<a href="${toPage(x)}">${x}</a>`).join(', ')}</p>`;
    const nav = `<nav class="file">${list('imports', imports.get(f)!)}${list('imported by', (importers.get(f) ?? []).sort())}</nav>`;
    const sections = splitSections(texts.get(f)!);
    anchors.set(f, sections.map((s) => s.line));
    const rows = sections.map((s) => {
      const prose = s.prose ? linkPaths(marked.parse(s.prose, { async: false }), linker(f)) : '';
      const code = s.code ? hljs.highlight(s.code, { language: /\.m?js$/.test(f) ? 'javascript' : 'typescript' }).value : '';
      return `<tr id="L${s.line}"><td class="prose">${prose}</td><td class="code"><pre><code>${code}</code></pre></td></tr>`;
    });
    const body = `<h1>${escapeHtml(f)}</h1><table class="sections">${rows.join('\n')}</table>`;
    mkdirSync(join(outDir, dirname(page)), { recursive: true });
    writeFileSync(join(outDir, page), layout(f, depth, nav, body));
  }

  // The index: the reading order first, then every file by folder.
  const readme = readFileSync(join(root, 'README.md'), 'utf8');
  const byDir = new Map<string, string[]>();
  for (const f of files) (byDir.get(dirname(f)) ?? byDir.set(dirname(f), []).get(dirname(f))!).push(f);
  const dirs = [...byDir.keys()].sort();
  const firstLine = (f: string) => {
    const s = splitSections(texts.get(f)!)[0];
    const line = s?.prose.split('\n')[0] ?? '';
    return escapeHtml(line);
  };
  const anchored = new Set<string>();
  // The first page: one request of each kind, as the trace recorded it, each slice linked to the
  // section of source holding the trace point that wrote it.
  const sites = sitesByName(traceSites(files, (f) => texts.get(f)!));
  const linkFor = (s: Site) => {
    const lines = anchors.get(s.file) ?? [];
    const at = lines.filter((l) => l <= s.line).pop() ?? lines[0];
    return `${pageOf(s.file)}${at !== undefined ? `#L${at}` : ''}`;
  };
  const requestPages = (['pv', 'emulated'] as const).map((kind) => {
    const p = renderPath(paths.trace, kind, sites, linkFor);
    if (!p) throw new Error(`docs: the recorded trace holds no complete ${kind} request flow (see tools/docs/request-path.ts)`);
    return p;
  });
  const index = [
    '<h1>ringvisor, annotated</h1>',
    '<p>Xen\'s split-driver architecture in TypeScript, to be read. Each page shows one source file with its comments beside its code; paths in the prose link to the project\'s pages and to the Xen, Linux and QEMU files they name. Generated from the source by <code>npm run docs</code>.</p>',
    '<h2 id="request-path">One request\'s path, as the trace saw it</h2>',
    '<p>Recorded while this site was built: a host ran a PV guest and an HVM guest, each reading eight 4 KiB blocks of its disk one at a time, under <code>ringvisor trace -e all</code>\'s recorder (<a href="src/tools/docs/request-trace.ts.html">tools/docs/request-trace.ts</a>). Below, one request of each kind from the middle of its run. Open any recording whole in <a class="upstream" href="https://ui.perfetto.dev">ui.perfetto.dev</a> (<code>npm start -- NAME --trace FILE</code>).</p>',
    ...requestPages.map((p) => p.html),
    '<h2 id="reading-order">Reading order: from boot to a completed block request</h2>',
    readingOrder(readme, linker(null)),
    '<h2 id="all-files">Every file</h2>',
    ...dirs.map((d) => {
      // A folder's anchor stands at its first listed subfolder when it has no files of its own.
      const ids: string[] = [];
      for (let p = d; p !== '.' && p !== ''; p = dirname(p)) {
        const a = `dir-${p.replace(/[^\w]/g, '-')}`;
        if (!anchored.has(a)) { anchored.add(a); ids.push(`<span id="${a}"></span>`); }
      }
      return `<h3>${ids.join('')}${escapeHtml(d)}/</h3><ul>${byDir.get(d)!.map((f) => `<li><a href="${pageOf(f)}">${escapeHtml(f.slice(d.length + 1))}</a> — ${firstLine(f)}</li>`).join('')}</ul>`;
    }),
  ].join('\n');
  writeFileSync(join(outDir, 'index.html'), layout('annotated source', 0, '', index));
  return { pages: files.length + 1, files, requestPages };
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const i = process.argv.indexOf('--out');
  const out = resolve(i > 0 ? process.argv[i + 1] : join(ROOT, 'out/docs'));
  const { recordRequestPaths } = await import('./request-trace.ts');
  const { pages } = build(out, await recordRequestPaths());
  const { checkSite } = await import('./check.ts');
  const problems = checkSite(out, sourceFiles());
  for (const p of problems) console.error(`docs: ${p}`);
  console.log(`docs: ${pages} pages in ${out}; open ${join(out, 'index.html')}`);
  process.exitCode = problems.length === 0 ? 0 : 1;
}
