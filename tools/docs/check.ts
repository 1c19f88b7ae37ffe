/*
 * Checking the annotated-source site: every source file has its page, and every internal link
 * (href to a file of the site, with or without an #anchor) reaches a file and an id that exist.
 * Links to Xen, Linux and QEMU are external and not fetched (this machine has no network).
 */
import { readdirSync, readFileSync, existsSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';

function* htmlFiles(dir: string): Generator<string> {
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) yield* htmlFiles(p);
    else if (name.endsWith('.html')) yield p;
  }
}

/** Problems found, one line each; empty when the site is whole. */
export function checkSite(outDir: string, sources: string[]): string[] {
  const problems: string[] = [];
  for (const f of sources) if (!existsSync(join(outDir, 'src', `${f}.html`))) problems.push(`no page for ${f}`);
  const ids = new Map<string, Set<string>>();
  const idsOf = (file: string) => {
    let s = ids.get(file);
    if (!s) {
      s = new Set([...readFileSync(file, 'utf8').matchAll(/\bid="([^"]+)"/g)].map((m) => m[1]));
      ids.set(file, s);
    }
    return s;
  };
  for (const page of htmlFiles(outDir)) {
    const html = readFileSync(page, 'utf8');
    for (const m of html.matchAll(/\b(?:href|src)="([^"]+)"/g)) {
      const href = m[1];
      if (/^[a-z]+:/.test(href)) continue; // external
      const [path, anchor] = href.split('#');
      const target = path === '' ? page : resolve(dirname(page), path);
      const where = relative(outDir, page);
      if (!existsSync(target)) { problems.push(`${where}: broken link ${href}`); continue; }
      if (anchor && target.endsWith('.html') && !idsOf(target).has(anchor)) problems.push(`${where}: no #${anchor} in ${relative(outDir, target)}`);
    }
  }
  return problems;
}
