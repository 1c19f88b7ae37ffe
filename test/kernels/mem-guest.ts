// A test kernel for the memory features: it writes a pattern over some of its pages, reads them
// back with checksums, and reports on the hypervisor console (test/mm-*.test.ts).
import { Kernel } from '../../shared/kernel/kernel.ts';
import { checksum, fillPattern } from '../../shared/checksum.ts';
import type { KernelEnv } from '../../shared/public/hypercall.ts';
import { PageFault } from '../../shared/public/memory.ts';
import { PAGE_SIZE } from '../../shared/public/xen.ts';

export interface MemGuestModule {
  /** touch: write `pages` pages with a pattern, check them, then idle. */
  action: 'touch';
  pages: number;
  seed: number;
}

export async function main(env: KernelEnv): Promise<void> {
  const k = new Kernel(env);
  const m = env.module as MemGuestModule;
  const buf = new Uint8Array(PAGE_SIZE);
  const back = new Uint8Array(PAGE_SIZE);
  const gfns = k.pages.allocMany(Math.min(m.pages, k.pages.available));
  try {
    for (const [i, g] of gfns.entries()) {
      fillPattern(buf, m.seed + i);
      k.memory.write(g * PAGE_SIZE, buf);
      if (i % 64 === 0) k.preempt();
    }
  } catch (e) {
    // A PoD out-of-memory never arrives here: the hypervisor crashes the domain first.
    k.log(`caught ${e instanceof PageFault ? 'a page fault' : 'an error'}: ${(e as Error).message}`);
    throw e;
  }
  let bad = 0;
  for (const [i, g] of gfns.entries()) {
    fillPattern(buf, m.seed + i);
    k.memory.read(g * PAGE_SIZE, back);
    if (checksum(back) !== checksum(buf)) bad++;
  }
  k.log(`touched ${gfns.length} pages, ${bad} bad`);
  await k.events.run();
}
