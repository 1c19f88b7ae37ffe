// The trust boundaries of DESIGN.md section 1, checked on every import in the tree: a frontend
// and its backend meet only in the ABI (shared/), and the hypervisor depends on nothing above it.
// This is what guarantees, for example, that a guest's disk I/O can never call into blkback as a
// function: domu/ cannot even name dom0/.
import test from 'ava';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative, resolve, dirname } from 'node:path';

const ROOT = resolve(import.meta.dirname, '..');
const RULES: Record<string, string[]> = {
  shared: ['shared'],
  hypervisor: ['shared', 'hypervisor'],
  dom0: ['shared', 'dom0'],
  domu: ['shared', 'domu'],
};

function* tsFiles(dir: string): Generator<string> {
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) yield* tsFiles(p);
    else if (name.endsWith('.ts')) yield p;
  }
}

for (const [folder, allowed] of Object.entries(RULES)) {
  test(`${folder}/ imports only from ${allowed.join(', ')}`, (t) => {
    const bad: string[] = [];
    let checked = 0;
    for (const file of tsFiles(join(ROOT, folder))) {
      const src = readFileSync(file, 'utf8');
      for (const m of src.matchAll(/(?:from\s+|import\s*\(\s*)['"](\.{1,2}\/[^'"]+)['"]/g)) {
        checked++;
        const target = relative(ROOT, resolve(dirname(file), m[1])).split('/')[0];
        if (!allowed.includes(target)) bad.push(`${relative(ROOT, file)} imports ${m[1]}`);
      }
    }
    t.true(checked > 0);
    t.deepEqual(bad, []);
  });
}
