// A test kernel for deferred scrubbing (test/scrub-host.test.ts): it touches `pages` pages of its
// RAM for the first time (populate on demand), then balloons `balloon` of them out and back in
// (decrease_reservation, populate_physmap), and reports how many bytes it read that were not zero.
import { Kernel } from '../../shared/kernel/kernel.ts';
import type { KernelEnv } from '../../shared/public/hypercall.ts';
import { PAGE_SIZE } from '../../shared/public/xen.ts';

export interface ScrubGuestModule {
  pages: number;
  balloon: number;
}

export async function main(env: KernelEnv): Promise<void> {
  const k = new Kernel(env);
  const m = env.module as ScrubGuestModule;
  const page = new Uint8Array(PAGE_SIZE);
  const gfns = k.pages.allocMany(Math.min(m.pages, k.pages.available));
  const nonZero = (list: number[]) => {
    let bad = 0;
    for (const [i, g] of list.entries()) {
      k.memory.read(g * PAGE_SIZE, page);
      for (const b of page) if (b !== 0) bad++;
      if (i % 64 === 0) k.preempt();
    }
    return bad;
  };
  const touched = nonZero(gfns);
  const out = gfns.slice(0, m.balloon);
  const given = k.hypercall.memory_decrease_reservation(out, out.length);
  const back = k.hypercall.memory_populate_physmap(out, given);
  const populated = nonZero(out.slice(0, back));
  k.log(`read ${gfns.length} pages: ${touched} non-zero bytes; ballooned ${given} out, ${back} back: ${populated} non-zero bytes`);
  await k.events.run();
}
