// A test kernel for the memory features: it writes a pattern over some of its pages, reads them
// back with checksums, and reports on the hypervisor console (test/mm-*.test.ts).
import { Kernel } from '../../shared/kernel/kernel.ts';
import { checksum, fillPattern } from '../../shared/checksum.ts';
import type { KernelEnv } from '../../shared/public/hypercall.ts';
import { PageFault } from '../../shared/public/memory.ts';
import { PAGE_SIZE } from '../../shared/public/xen.ts';

export interface MemGuestModule {
  /**
   * touch: write `pages` pages with a pattern, check them, then idle.
   * churn: `pages` pages, half a common image (the same in every guest), a quarter zeros, a quarter
   * its own; then `rounds` rounds of: verify every page, rewrite `writes` random ones, sleep 2 ms.
   */
  action: 'touch' | 'churn';
  pages: number;
  seed: number;
  rounds?: number;
  writes?: number;
}

export async function main(env: KernelEnv): Promise<void> {
  const k = new Kernel(env);
  const m = env.module as MemGuestModule;
  const buf = new Uint8Array(PAGE_SIZE);
  const back = new Uint8Array(PAGE_SIZE);
  const gfns = k.pages.allocMany(Math.min(m.pages, k.pages.available));
  if (m.action === 'churn') {
    await churn(k, m, gfns);
    return new Promise(() => undefined); // idle, in events.run(), until destroyed
  }
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

async function churn(k: Kernel, m: MemGuestModule, gfns: number[]): Promise<void> {
  void k.events.run(); // the idle loop: the guest timer's VIRQ is taken there
  const buf = new Uint8Array(PAGE_SIZE);
  const back = new Uint8Array(PAGE_SIZE);
  const n = gfns.length;
  // seeds[i]: the pattern page i holds; 0 = zeros.
  const seeds = gfns.map((_, i) => (i < n / 2 ? 1000 + i : i < (3 * n) / 4 ? 0 : m.seed * 100000 + i));
  const put = (i: number) => {
    if (seeds[i] === 0) buf.fill(0); else fillPattern(buf, seeds[i]);
    k.memory.write(gfns[i] * PAGE_SIZE, buf);
  };
  for (let i = 0; i < n; i++) put(i);
  let bad = 0;
  let x = m.seed | 1;
  for (let r = 0; r < (m.rounds ?? 10); r++) {
    for (let i = 0; i < n; i++) {
      if (seeds[i] === 0) buf.fill(0); else fillPattern(buf, seeds[i]);
      k.memory.read(gfns[i] * PAGE_SIZE, back);
      if (checksum(back) !== checksum(buf)) bad++;
      if (i % 64 === 0) k.preempt();
    }
    for (let w = 0; w < (m.writes ?? 8); w++) {
      x ^= x << 13; x ^= x >>> 17; x ^= x << 5;
      const i = (x >>> 0) % n;
      seeds[i] = (x >>> 0) | 1;
      put(i);
    }
    await k.timers.sleep(2);
  }
  k.log(`churned ${n} pages for ${m.rounds ?? 10} rounds, ${bad} bad`);
}
