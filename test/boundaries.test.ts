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
  dom0: ['shared', 'dom0', 'backends'],
  domu: ['shared', 'domu', 'backends'],
  // Backend drivers (blkback) run in Dom0 or in a driver domain, so they may name only the ABI
  // and the kernel code every domain has.
  backends: ['shared', 'backends'],
};
/*
 * In domu/ only the driver domain's entry may name backends/: a DomU whose config says
 * driver_domain=1 loads blkback from there (domu/driver-domain.ts), and no frontend can call a
 * backend as a function.
 */
const BACKEND_LOADERS: Record<string, string[]> = { domu: ['domu/driver-domain.ts'] };

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
        const loaders = BACKEND_LOADERS[folder];
        const backendRefused = target === 'backends' && loaders !== undefined && !loaders.includes(relative(ROOT, file));
        if (!allowed.includes(target) || backendRefused) bad.push(`${relative(ROOT, file)} imports ${m[1]}`);
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

for (const folder of ['domu', 'shared', 'backends']) {
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

// No import circle inside dom0/ (issue 11, item 13): each module can be read after the ones it
// imports, and a service, backend or toolstack piece depends on a declared shape (dom0/dom0.ts,
// dom0/services/xenstored/core.ts) rather than on the code that builds it. Type-only imports
// count: a circle of types is still a circle a reader has to break.
function importsOf(file: string): string[] {
  const src = readFileSync(file, 'utf8');
  return [...src.matchAll(/(?:from\s+|import\s*\(\s*)['"](\.{1,2}\/[^'"]+)['"]/g)].map((m) => resolve(dirname(file), m[1]));
}

/** The circles of a graph (node -> what it imports), each as a path whose first node is repeated at its end. */
function circles(graph: ReadonlyMap<string, readonly string[]>): string[][] {
  const found: string[][] = [];
  const state = new Map<string, 'open' | 'done'>();
  const path: string[] = [];
  const visit = (f: string): void => {
    state.set(f, 'open');
    path.push(f);
    for (const t of graph.get(f) ?? []) {
      if (state.get(t) === 'open') found.push([...path.slice(path.indexOf(t)), t]);
      else if (!state.has(t) && graph.has(t)) visit(t);
    }
    path.pop();
    state.set(f, 'done');
  };
  for (const f of graph.keys()) if (!state.has(f)) visit(f);
  return found;
}

test('dom0/ has no import circles (kernel and control, xenstored server and its handlers, toolstack config)', (t) => {
  const files = [...tsFiles(join(ROOT, 'dom0'))];
  t.true(files.length > 20);
  const graph = new Map(files.map((f) => [f, importsOf(f)]));
  t.deepEqual(circles(graph).map((c) => c.map((f) => relative(ROOT, f)).join(' -> ')), []);
});

test('the circle detector finds circles, and only circles', (t) => {
  const g = new Map([['a', ['b']], ['b', ['c']], ['c', ['a', 'd']], ['d', []], ['e', ['e']]]);
  t.deepEqual(circles(g), [['a', 'b', 'c', 'a'], ['e', 'e']]);
  t.deepEqual(circles(new Map([['a', ['b']], ['b', ['c']], ['c', []]])), []);
});
