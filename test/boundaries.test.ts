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

// The isolation model (README, "Isolation"): guest kernel code gets its hypercall interface and
// its own memory from its entry point and nothing else. A guest runs in the same process as
// everything else, so nothing at run time stops `import('node:fs')`; this test is what does: the
// DomU kernel (domu/) and the kernel code both kinds of domain share (shared/) may not name a host
// module (node:* or a bare package name), load code dynamically, or use the host's globals that
// reach outside the domain (process, channels between threads, workers, the global object).
// Dom0 (dom0/) may: it owns the devices, and its backends and services use files and sockets.
const HOST_REACH: [RegExp, string][] = [
  [/(?:from\s+|import\s*\(\s*|import\s+)['"](?!\.{1,2}\/)([^'"]+)['"]/g, 'imports the host module'],
  [/\bimport\s*\(\s*[^'"\s]/g, 'imports a computed module name'],
  [/\bimport\.meta\b/g, 'uses import.meta'],
  [/\brequire\s*\(/g, 'calls require'],
  [/\b(?:process|globalThis|global|BroadcastChannel|MessageChannel|MessagePort|Worker|SharedWorker|fetch|WebSocket)\b/g, 'uses the host global'],
  [/\beval\s*\(|\bnew\s+Function\b|\bFunction\s*\(/g, 'compiles code at run time'],
];

/** The source without comments, so that prose may say "process". String contents stay (module names). */
function code(src: string): string {
  return src.replace(/\/\*[\s\S]*?\*\//g, '').replace(/(^|[^:'"`])\/\/.*$/gm, '$1');
}

for (const folder of ['domu', 'shared']) {
  test(`${folder}/ reaches no host module or host global`, (t) => {
    const bad: string[] = [];
    let files = 0;
    for (const file of tsFiles(join(ROOT, folder))) {
      files++;
      const src = code(readFileSync(file, 'utf8'));
      for (const [re, what] of HOST_REACH) {
        for (const m of src.matchAll(re)) bad.push(`${relative(ROOT, file)} ${what} ${m[1] ?? m[0].trim()}`);
      }
    }
    t.true(files > 0);
    t.deepEqual(bad, []);
  });
}

test('the host-reach check refuses what it should (checked on sample lines)', (t) => {
  const hits = (line: string) => HOST_REACH.filter(([re]) => [...code(line).matchAll(re)].length > 0).length;
  for (const line of [
    "import { workerData } from 'node:worker_threads';",
    "import { readFileSync } from 'fs';",
    "import * as net from 'node:net';",
    "import 'node:child_process';",
    "const m = await import('node:worker_threads');",
    'const m = await import(name);',
    "const wt = process.getBuiltinModule('node:worker_threads');",
    "const fs = require('node:fs');",
    'const g = globalThis;',
    "new BroadcastChannel('ringvisor-blk');",
    "const f = new Function('return this')();",
    "eval('1');",
  ]) t.true(hits(line) > 0, line);
  for (const line of [
    "import { Kernel } from '../shared/kernel/kernel.ts';",
    "import type { GuestMemory } from './memory.ts';",
    "const m = await import('./workloads/fio.ts');",
    '// the process ends here; require nothing',
    '/* globalThis is not used */',
    'const processed = 1; const requireAck = true;',
  ]) t.is(hits(line), 0, line);
});
