/*
 * The baseline the trace suite compares "tracing compiled in but off" against: the same tree with
 * every trace point taken out of the source, as Xen built without CONFIG_TRACEBUFFER (trace.h's
 * trace_var() and friends become empty inline functions, so not even the tb_init_done test is
 * left).
 *
 * Why this and not the commit before the trace points: that commit differs from this one in far
 * more than trace points (every change landed since), so its figures would measure all of it. A
 * copy of THIS tree with the trace points cut out differs in exactly the thing measured.
 *
 * What is cut, in shared/, hypervisor/, dom0/ and domu/ (the code that runs per request):
 * - a statement that is one trace call on its own line: `k.hypercall.xentrace(TRC_..., ...);`,
 *   `this.tracer?.xentrace(...);`, `if (tr.on(TRC_X)) tr.write(...);`;
 * - the hypervisor's wrapped calls: `const tr = ...trace;` is dropped, `if (!tr.on(TRC_X)) return
 *   CALL;` becomes `return CALL;`, and the traced copy below it (to the end of the block) goes.
 * Anything else that mentions a trace point is refused, so a new trace point in another shape
 * makes this fail loudly instead of leaving it in the baseline.
 */
import { cpSync, mkdirSync, readFileSync, readdirSync, statSync, symlinkSync, writeFileSync, realpathSync } from 'node:fs';
import { join, relative } from 'node:path';

const STRIPPED_DIRS = ['shared', 'hypervisor', 'dom0', 'backends', 'domu'];
/** What a copy needs to run the bench's block harness. */
const COPIED = ['shared', 'hypervisor', 'dom0', 'backends', 'domu', 'scenarios', 'tools', 'package.json', 'tsconfig.json'];

const CALL_LINE = /^\s*(?:if \(tr\.on\(TRC_\w+\)\) tr\.write\(.*\);|[\w.?#]*\.xentrace\(.*\);)\s*$/;
const TR_DECL = /^\s*const tr = [\w.#]+\.trace;\s*$/;
const GUARD = /^(\s*)if \(!tr\.on\(TRC_\w+\)\) (return\b.*;)\s*$/;
/** A line that is still a trace point after the rules above (refused). */
const LEFT = /\b(?:xentrace|tr\.write|tr\.on)\(/;

/** One file's text without its trace points; `cut` counts what went. */
export function stripTracePoints(text: string, file = '?'): { text: string; cut: number } {
  const lines = text.split('\n');
  const out: string[] = [];
  let cut = 0;
  for (let i = 0; i < lines.length; i++) {
    const l = lines[i]!;
    const trimmed = l.trim();
    const comment = trimmed.startsWith('//') || trimmed.startsWith('*') || trimmed.startsWith('/*');
    if (!comment && (CALL_LINE.test(l) || TR_DECL.test(l))) { cut++; continue; }
    const g = GUARD.exec(l);
    if (g) {
      out.push(`${g[1]}${g[2]}`);
      cut++;
      // The traced copy: every following line indented at least as far, up to the block's end.
      while (i + 1 < lines.length && (lines[i + 1]!.startsWith(g[1]!) && lines[i + 1]!.trim() !== '' && !lines[i + 1]!.startsWith(`${g[1]!.slice(2)}}`))) i++;
      continue;
    }
    if (!comment && LEFT.test(l) && !/\bxentrace\(\s*\w+\s*:/.test(l)) { // a declaration (`xentrace(event: number, ...)`) is not a call
      throw new Error(`strip-trace: ${file}:${i + 1}: a trace point this does not know how to cut: ${trimmed}`);
    }
    out.push(l);
  }
  return { text: out.join('\n'), cut };
}

function* tsFiles(dir: string): Generator<string> {
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) yield* tsFiles(p);
    else if (p.endsWith('.ts')) yield p;
  }
}

/**
 * Copies the parts of `root` the block harness runs into `dest`, with node_modules linked; when
 * `strip`, with every trace point cut. Returns the number of trace points cut.
 */
export function copyTree(root: string, dest: string, strip: boolean): number {
  mkdirSync(dest, { recursive: true });
  for (const p of COPIED) cpSync(join(root, p), join(dest, p), { recursive: true });
  symlinkSync(realpathSync(join(root, 'node_modules')), join(dest, 'node_modules'));
  if (!strip) return 0;
  let cut = 0;
  for (const d of STRIPPED_DIRS) {
    for (const f of tsFiles(join(dest, d))) {
      const rel = relative(dest, f);
      if (rel === 'hypervisor/trace.ts' || rel === 'shared/public/trace.ts') continue; // the buffers themselves, never called when cut
      const before = readFileSync(f, 'utf8');
      if (!/TRC_|xentrace|\.trace\b/.test(before)) continue;
      const r = stripTracePoints(before, rel);
      if (r.cut > 0) writeFileSync(f, r.text);
      cut += r.cut;
    }
  }
  return cut;
}
