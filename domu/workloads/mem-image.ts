/*
 * mem-image: a working set written and verified with checksums, with a hot part rewritten every
 * round and a cold part written once, on top of a common boot image; what the memory features
 * (populate on demand, sharing, ballooning, paging) are measured and narrated against.
 *
 * Not a Xen component: a stand-in for a guest's memory behaviour, beside ./mem-touch.ts (the
 * resumable working set live migration uses), with what sharing needs: a common image, zero pages,
 * a hot and a cold part. Arguments (workload_args):
 *   image=MiB   the common "OS" pages: the same bytes in every guest (default 8), as identical
 *               guests booted from one image would have: what content-based sharing finds
 *   ws=MiB      the working set (default 16): cold pages written once, then the hot part
 *   zero=PCT    of the cold pages, this many in a hundred are zeros (default 50), as freshly
 *               allocated memory often is: the commonest page to share
 *   hot=MiB     rewritten every round (default 2)
 *   rounds=N    rounds of rewrite-hot + verify-everything (default 5), period=MS apart (default 200)
 *   seed=N      this guest's own data (default 1)
 * Each round prints "mem-image: round R verified N pages, B bad"; a bad page crashes the guest
 * (as disk-check does), since it means memory lost data.
 */
import type { Kernel } from '../../shared/kernel/kernel.ts';
import { checksum, fillPattern } from '../../shared/checksum.ts';
import { PAGE_SIZE } from '../../shared/public/xen.ts';

export interface MemImageResult {
  workload: 'mem-image';
  pages: number;
  rounds: number;
  bad: number;
  writeMs: number;
  /** Pages written and verified per second over the rounds (the throughput the bench compares). */
  pagesPerSecond: number;
}

const IMAGE_SEED = 0xb007;

export async function runMemImage(k: Kernel, args: ReadonlyMap<string, string>, say: (line: string) => void): Promise<MemImageResult> {
  const num = (key: string, dflt: number) => {
    const v = Number(args.get(key) ?? dflt);
    return Number.isSafeInteger(v) && v >= 0 ? v : dflt;
  };
  const per = 1048576 / PAGE_SIZE;
  const want = (num('image', 8) + num('ws', 16)) * per;
  const gfns = k.pages.allocMany(Math.min(want, k.pages.available - 64)); // leave the drivers a little
  const nImage = Math.min(num('image', 8) * per, gfns.length);
  const nHot = Math.min(num('hot', 2) * per, gfns.length - nImage);
  const nCold = gfns.length - nImage - nHot;
  const seed = num('seed', 1);
  const rounds = num('rounds', 5);
  const period = num('period', 200);
  // seeds[i]: what page i holds; 0 = zeros.
  const seeds = new Float64Array(gfns.length);
  for (let i = 0; i < nImage; i++) seeds[i] = IMAGE_SEED + i;
  const zero = Math.min(num('zero', 50), 100);
  for (let i = 0; i < nCold; i++) seeds[nImage + i] = (i * 37) % 100 < zero ? 0 : seed * 1e7 + i;
  const buf = new Uint8Array(PAGE_SIZE);
  const back = new Uint8Array(PAGE_SIZE);
  const fill = (s: number) => { if (s === 0) buf.fill(0); else fillPattern(buf, s); };
  say(`mem-image: ${mib(nImage)} common image, ${mib(nCold)} cold, ${mib(nHot)} hot; ${rounds} rounds, ${period} ms apart`);
  const t0 = performance.now();
  for (let i = 0; i < nImage + nCold; i++) {
    fill(seeds[i]);
    k.memory.write(gfns[i] * PAGE_SIZE, buf);
    if ((i & 63) === 0) k.preempt();
  }
  const writeMs = performance.now() - t0;
  let bad = 0;
  let touched = 0;
  const t1 = performance.now();
  for (let r = 1; r <= rounds; r++) {
    for (let i = nImage + nCold; i < gfns.length; i++) {
      seeds[i] = seed * 1e9 + r * 1e6 + i;
      fill(seeds[i]);
      k.memory.write(gfns[i] * PAGE_SIZE, buf);
      if ((i & 63) === 0) k.preempt();
    }
    let badNow = 0;
    for (let i = 0; i < gfns.length; i++) {
      fill(seeds[i]);
      k.memory.read(gfns[i] * PAGE_SIZE, back);
      if (checksum(back) !== checksum(buf)) badNow++;
      if ((i & 63) === 0) k.preempt();
    }
    touched += nHot + gfns.length;
    bad += badNow;
    say(`mem-image: round ${r} verified ${gfns.length} pages, ${badNow} bad`);
    if (r < rounds) await k.timers.sleep(period);
  }
  const ms = performance.now() - t1;
  for (const g of gfns) k.pages.release(g);
  const result: MemImageResult = { workload: 'mem-image', pages: gfns.length, rounds, bad, writeMs, pagesPerSecond: (touched / Math.max(ms, 1)) * 1000 };
  if (bad > 0) throw new Error(`mem-image: ${bad} page(s) read back wrong: memory lost data`);
  say(`mem-image: OK, every page read back as written`);
  return result;
}

const mib = (pages: number) => `${((pages * PAGE_SIZE) / 1048576).toFixed(0)} MiB`;
