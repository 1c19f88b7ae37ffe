/*
 * What destroying a guest costs the control thread, with the two scrub modes back to back.
 *
 *   npx tsx tools/scrub-destroy.ts [--mib 64] [--repeats 3]
 *
 * For each mode ('free': every frame zeroed in free_domheap_page, Xen 4.9's way; 'idle': marked
 * need-scrub and zeroed by the idle scrubber, Xen 4.10's): a host, a guest whose mem-guest kernel
 * writes --mib MiB, then `xl destroy` as the host runs it (domain_kill_begin, relinquish_memory in
 * 1 ms slices, domain_kill_finish). Printed: the control thread's CPU ms inside destroy and the
 * ms it waited for a CPU (Linux schedstat of this thread: load-independent, unlike wall time),
 * wall ms, and where the frames were scrubbed (at free, by the idle thread, at allocation). Then a
 * second guest of the same size is built and touches all its RAM on a host only 8 MiB larger, so
 * that most of its frames are the first guest's: what allocation pays
 * when the scrubber has not caught up (its boot-to-touched wall ms and frames scrubbed at alloc).
 *
 * Not Xen: a measurement of ringvisor's own (hypervisor/mm/scrub.ts says why scrubbing moved).
 */
import { readFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { Host } from '../hypervisor/host.ts';
import { scrubStats } from '../hypervisor/mm/scrub.ts';
import { until } from '../scenarios/lib/hang.ts';
import type { MemGuestModule } from '../test/kernels/mem-guest.ts';

const MEM_GUEST = new URL('../test/kernels/mem-guest.ts', import.meta.url).href;
const arg = (name: string, dflt: number) => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? Number(process.argv[i + 1]) : dflt;
};
const MIB = arg('mib', 64);
const REPEATS = arg('repeats', 3);

/** This thread's time on a CPU and waiting for one, in ms (Linux schedstat), or null. */
function schedstat(): { cpu: number; wait: number } | null {
  try {
    const [run, wait] = readFileSync('/proc/thread-self/schedstat', 'latin1').trim().split(/\s+/).map(Number);
    return { cpu: run / 1e6, wait: wait / 1e6 };
  } catch {
    return null;
  }
}

async function once(mode: 'idle' | 'free'): Promise<string> {
  const pages = (MIB * 1024) / 4;
  const host = new Host({ memoryMiB: MIB + 8, log: () => {}, scrub: mode });
  const said: string[] = [];
  host.on('console', (e: { domid: number; text: string }) => said.push(`d${e.domid} ${e.text}`));
  const guest = (name: string, seed: number) => ({
    name, vcpus: 1, memoryKiB: (pages + 64) * 4, kernel: MEM_GUEST, module: { action: 'touch', pages, seed } satisfies MemGuestModule,
  });
  const a = await host.createDomain(guest('writer', 5));
  await until(() => said.some((s) => s.startsWith(`d${a} touched`)), 'writer touched', { everyMs: 5 });
  const s0 = scrubStats(host.hv);
  const c0 = schedstat();
  const t0 = performance.now();
  await host.destroy(a);
  const wall = performance.now() - t0;
  const c1 = schedstat();
  const s1 = scrubStats(host.hv);
  const cpu = c0 && c1 ? `${(c1.cpu - c0.cpu).toFixed(1)} ms CPU, ${(c1.wait - c0.wait).toFixed(1)} ms waiting for one` : 'schedstat n/a';
  const line1 = `  ${mode.padEnd(4)} destroy of ${MIB} MiB: control thread ${cpu}, ${wall.toFixed(1)} ms wall; ` +
    `frames scrubbed during it: ${s1.scrubbedFree - s0.scrubbedFree} at free, ${s1.scrubbedIdle - s0.scrubbedIdle} by the idle thread; ${s1.dirty} dirty after`;
  // Straight away, a guest of the same size touches all its RAM: allocation scrubs what is still dirty.
  const t1 = performance.now();
  const b = await host.createDomain(guest('reader', 9));
  await until(() => said.some((s) => s.startsWith(`d${b} touched`)), 'reader touched', { everyMs: 1 });
  const build = performance.now() - t1;
  const s2 = scrubStats(host.hv);
  const ok = said.includes(`d${b} touched ${pages} pages, 0 bad`) ? '' : ' (!: bad pages)';
  const line2 = `       next guest's create+touch ${build.toFixed(1)} ms wall; frames scrubbed meanwhile: ${s2.scrubbedAlloc - s1.scrubbedAlloc} at allocation, ` +
    `${s2.scrubbedIdle - s1.scrubbedIdle} by the idle thread; allocations that waited for a chunk: ${s2.allocWaits - s1.allocWaits}${ok}`;
  await host.close();
  return `${line1}\n${line2}`;
}

console.log(`scrub-destroy: ${MIB} MiB guest, ${REPEATS} repeats; load average ${loadavg().map((l) => l.toFixed(1)).join(' ')}`);
for (let r = 0; r < REPEATS; r++) {
  for (const mode of ['free', 'idle'] as const) console.log(await once(mode));
}
console.log(`load average at the end ${loadavg().map((l) => l.toFixed(1)).join(' ')}`);
