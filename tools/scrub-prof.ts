/*
 * Where scrubbing ran in the first ms after each migrated guest's unpause: CPU profiles of a
 * resume-timeline run, read against the unpause times it printed.
 *
 *   RINGVISOR_SCRUB=free node --cpu-prof --cpu-prof-dir D --import tsx tools/trace/resume-timeline.ts --moves 3 > D.log
 *   npx tsx tools/scrub-prof.ts D D.log [--window 100]
 *
 * For every thread's profile in D (V8 writes one per thread: the main thread, where every host's
 * control thread and so the source's destroy run, and each worker): the ms of samples whose stack
 * holds relinquish_memory (the source's destroy walk), scrub_one_page (any zeroing of a frame:
 * at free, at allocation, by the idle scrubber) and scrub_free_pages (the idle scrubber), in the
 * --window ms after each "the unpause at T ms on CLOCK_MONOTONIC" line of the log (V8's profile
 * clock is CLOCK_MONOTONIC in µs on Linux). A sample's weight is the gap to the next one: close
 * to the thread's CPU time at V8's 1 ms sampling, not exact.
 *
 * Not Xen: a measurement of ringvisor's own (hypervisor/mm/scrub.ts).
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

interface ProfNode { id: number; callFrame: { functionName: string }; children?: number[] }
interface Profile { nodes: ProfNode[]; startTime: number; samples: number[]; timeDeltas: number[] }

const FUNCS = ['relinquish_memory', 'scrub_one_page', 'scrub_free_pages'] as const;

const [dir, log] = process.argv.slice(2);
if (!dir || !log) throw new Error('usage: tools/scrub-prof.ts PROFILE_DIR LOG [--window ms]');
const wi = process.argv.indexOf('--window');
const windowMs = wi > 0 ? Number(process.argv[wi + 1]) : 100;
const unpauses = [...readFileSync(log, 'utf8').matchAll(/the unpause at ([\d.]+) ms on CLOCK_MONOTONIC/g)].map((m) => Number(m[1]));

/** Per function in FUNCS, per unpause window: ms of samples with it on the stack; and over the whole run. */
function measure(p: Profile): { win: number[][]; total: number[] } {
  const byId = new Map(p.nodes.map((n) => [n.id, n]));
  const parent = new Map<number, number>();
  for (const n of p.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  const has = new Map<number, boolean[]>();
  const flags = (id: number): boolean[] => {
    let f = has.get(id);
    if (f) return f;
    const up = parent.has(id) ? flags(parent.get(id)!) : FUNCS.map(() => false);
    const name = byId.get(id)!.callFrame.functionName;
    f = FUNCS.map((fn, i) => up[i] || name === fn);
    has.set(id, f);
    return f;
  };
  const win = unpauses.map(() => FUNCS.map(() => 0));
  const total = FUNCS.map(() => 0);
  let t = p.startTime;
  for (let i = 0; i < p.samples.length; i++) {
    t += p.timeDeltas[i];
    const w = (p.timeDeltas[i + 1] ?? 0) / 1000; // ms until the next sample
    const f = flags(p.samples[i]);
    const ms = t / 1000;
    for (let k = 0; k < FUNCS.length; k++) {
      if (!f[k]) continue;
      total[k] += w;
      unpauses.forEach((u, j) => { if (ms >= u && ms < u + windowMs) win[j][k] += w; });
    }
  }
  return { win, total };
}

console.log(`${dir}: ${unpauses.length} unpauses; ms of samples with each function on the stack, in the ${windowMs} ms after each unpause | whole run`);
console.log(`  ${'profile'.padEnd(44)} ${FUNCS.map((f) => f.padEnd(20)).join('')}`);
for (const f of readdirSync(dir).filter((n) => n.endsWith('.cpuprofile')).sort()) {
  const { win, total } = measure(JSON.parse(readFileSync(join(dir, f), 'utf8')) as Profile);
  if (total.every((x) => x === 0)) continue;
  const cols = FUNCS.map((_, k) => `${win.map((w) => w[k].toFixed(0)).join('/')} | ${total[k].toFixed(0)}`.padEnd(20)).join('');
  console.log(`  ${f.padEnd(44)} ${cols}`);
}
