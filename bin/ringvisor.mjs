#!/usr/bin/env node
/*
 * The `ringvisor` command (package.json "bin"): xl for ringvisor, and `ringvisor host`.
 *
 * Xen: /usr/sbin/xl. This file is plain JavaScript so that it runs under Node 20 as it is. An
 * administrator's verb should answer at once, as xl does, so `npm install` compiles the command
 * line once (the "prepare" script: tsc -p tsconfig.build.json, into dist/, which git ignores) and
 * this runs that JavaScript. Two cases take the TypeScript itself, through tsx's loader (the one
 * every vCPU thread uses, hypervisor/thread.ts): `ringvisor host`, whose threads load the kernels
 * from source; and a checkout edited since the last compile (any source newer than dist/), so
 * an edit is never ignored and no separate build command is ever needed.
 */
import { readdirSync, statSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
const argv = process.argv.slice(2);

/* The verb: the first word that is not an option (or --run-dir's value). */
function verbOf(args) {
  for (let i = 0; i < args.length; i++) {
    if (args[i] === '--run-dir') { i++; continue; }
    if (!args[i].startsWith('-')) return args[i];
  }
  return '';
}

/* dist/ compiled after every source file the command line loads was last changed. */
function compiledIsFresh() {
  let built;
  try {
    built = statSync(`${root}dist/.built`).mtimeMs;
  } catch {
    return false;
  }
  const newer = (dir) => readdirSync(dir, { withFileTypes: true }).some((e) =>
    e.isDirectory() ? newer(`${dir}/${e.name}`) : e.name.endsWith('.ts') && statSync(`${dir}/${e.name}`).mtimeMs > built);
  return !['cli', 'dom0', 'shared', 'hypervisor'].some((d) => newer(`${root}${d}`));
}

// `ringvisor list | head -1`: a reader that stops reading is not an error.
process.stdout.on('error', (e) => { if (e.code === 'EPIPE') process.exit(0); throw e; });
let main;
if (verbOf(argv) !== 'host' && compiledIsFresh()) {
  main = `${root}dist/cli/main.js`;
} else {
  const { register } = await import('tsx/esm/api');
  register();
  main = `${root}cli/main.ts`;
}
const { run } = await import(main);
process.exitCode = await run(argv, process);
