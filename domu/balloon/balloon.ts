/*
 * The balloon driver: the guest gives RAM back to the hypervisor when the toolstack asks for a
 * smaller target, and takes it again when the target grows.
 *
 * Linux: drivers/xen/xen-balloon.c (the watch on memory/target, in KiB, turned into pages with
 * >> (PAGE_SHIFT − 10)) and drivers/xen/balloon.c (balloon_process: inflate with
 * decrease_reservation, deflate with increase_reservation → XENMEM_populate_physmap, a batch of
 * at most one page of frame numbers (512 on 64-bit) at a time; when the hypervisor gives fewer
 * pages than asked, try again after 1 s, doubling to 32 s, max_schedule_delay). The lecture's
 * "balloon driver that inflates and presses the guest OS": the guest itself chooses which pages
 * go (here, free pages of its allocator, which it then cannot use), so nothing it needs is taken.
 *
 * Inflating: take free pages from the kernel's allocator, hand them to the hypervisor; they
 * become holes in the physmap (a touch now faults). A page the hypervisor refuses (still mapped
 * or viewed elsewhere) is kept aside and never offered again. If the allocator runs dry before
 * the target (it keeps balloonReserve() pages for the kernel), the balloon says so and stays where it got (Linux's balloon would make the kernel
 * reclaim; this kernel has no page cache to shrink). Deflating: populate the holes again and
 * give the pages back to the allocator.
 *
 * One driver per kernel, on vCPU 0, with vCPU 0's share of the pages (shared/kernel/pages.ts).
 *
 * Across a save and restore (or a migration), the balloon's list is the guest's: Linux keeps its
 * ballooned pages on a list in kernel memory, which the save copies. This kernel's heap is not
 * copied, so at suspend the driver writes its list into pages of guest memory and the resume
 * record names the first (balloonSave); a resumed kernel reads it back before anything allocates,
 * takes those gfns out of its allocator (they have no RAM behind them on the new host either:
 * the restorer left them holes) and starts its balloon with them (balloonResume).
 */
import type { Kernel } from '../../shared/kernel/kernel.ts';
import type { XenbusClient } from '../../shared/kernel/xenbus/client.ts';
import { XS_MEMORY_TARGET } from '../../shared/public/memory.ts';
import { PAGE_SIZE, PAGE_WORDS } from '../../shared/public/xen.ts';
import { R, type ResumeRecord } from '../resume.ts';

/* A page of the saved list: word 0 the next page's gfn + 1 (0: the last), word 1 the gfns in this one, then the gfns. */
const LIST_NEXT = 0;
const LIST_COUNT = 1;
const LIST_FIRST = 2;
const PER_LIST_PAGE = PAGE_WORDS - LIST_FIRST;

/** One page of xen_pfn_t (8 bytes each): balloon.c's frame_list. */
export const BALLOON_BATCH = 512;
const MAX_SCHEDULE_DELAY_MS = 32_000;
/**
 * Pages the balloon never takes from the allocator: what the kernel needs for its rings, buffers
 * and grant mappings after boot (the balloon inflates before the devices connect). Linux's balloon
 * allocates with __GFP_NORETRY above the kernel's min_free_kbytes watermark, so it cannot starve
 * the kernel either. A quarter of vCPU 0's pages, and at least 8 MiB.
 */
export function balloonReserve(totalPages: number): number {
  return Math.max(2048, Math.ceil(totalPages / 4));
}

export interface BalloonStats {
  /** Pages the guest has now (Linux's balloon_stats.current_pages), and the target. */
  current: number;
  target: number;
  /** Pages in the balloon (given back). */
  ballooned: number;
  inflated: number;
  deflated: number;
  /** Batches the hypervisor cut short (no frame, or max_pages): each one retried later. */
  retries: number;
}

export class Balloon {
  private readonly ballooned: number[] = [];
  private readonly refused: number[] = [];
  private target: number;
  private running = false;
  private delayMs = 1000;
  readonly stats: BalloonStats;
  private readonly frames = new Float64Array(BALLOON_BATCH);

  /** `resumed`: the gfns a suspended predecessor had in its balloon (balloonResume). */
  constructor(private readonly k: Kernel, private readonly say: (line: string) => void, resumed: readonly number[] = []) {
    this.ballooned.push(...resumed);
    this.target = k.si.nr_pages - resumed.length;
    this.stats = { current: this.target, target: this.target, ballooned: resumed.length, inflated: 0, deflated: 0, retries: 0 };
  }

  /** At suspend: the balloon's list into guest memory, named by the resume record (see the header). */
  save(rec: ResumeRecord): void {
    const words = new Int32Array(PAGE_WORDS);
    const bytes = new Uint8Array(words.buffer);
    let next = 0; // gfn + 1 of the page written before (the lists are written last page first)
    for (let end = this.ballooned.length; end > 0; end -= PER_LIST_PAGE) {
      const start = Math.max(0, end - PER_LIST_PAGE);
      const gfn = this.k.pages.alloc();
      words.fill(0);
      words[LIST_NEXT] = next;
      words[LIST_COUNT] = end - start;
      for (let i = start; i < end; i++) words[LIST_FIRST + i - start] = this.ballooned[i];
      this.k.memory.write(gfn * PAGE_SIZE, bytes);
      next = gfn + 1;
    }
    rec.words[R.BALLOONED] = this.ballooned.length;
    rec.words[R.BALLOON_LIST] = next;
  }

  /** xen-balloon.c's watch_target: a new target in KiB. */
  setTargetKiB(kib: number): void {
    if (!Number.isSafeInteger(kib) || kib <= 0) return;
    this.target = Math.min(kib >> 2, this.k.si.nr_pages);
    this.stats.target = this.target;
    this.delayMs = 1000;
    void this.balloonProcess();
  }

  /** balloon_process: work toward the target a batch at a time; reschedule with back-off on a shortfall. */
  private async balloonProcess(): Promise<void> {
    if (this.running) return;
    this.running = true;
    const start = this.stats.current;
    try {
      for (;;) {
        const credit = this.target - this.stats.current;
        if (credit === 0) {
          if (start !== this.stats.current) this.say(`xen:balloon: at target: ${this.stats.current * 4} KiB (${this.ballooned.length} pages in the balloon)`);
          return;
        }
        const ok = credit > 0 ? this.increase(Math.min(credit, BALLOON_BATCH)) : this.decrease(Math.min(-credit, BALLOON_BATCH));
        if (ok === 'stuck') return;
        if (ok === 'short') {
          this.stats.retries++;
          await this.k.timers.sleep(this.delayMs);
          this.delayMs = Math.min(this.delayMs * 2, MAX_SCHEDULE_DELAY_MS);
        }
        this.k.preempt();
      }
    } finally {
      this.running = false;
    }
  }

  /** increase_reservation: populate holes from the balloon; 'short' if the hypervisor gave fewer. */
  private increase(n: number): 'done' | 'short' | 'stuck' {
    n = Math.min(n, this.ballooned.length);
    if (n === 0) return 'stuck';
    const base = this.ballooned.length - n;
    for (let i = 0; i < n; i++) this.frames[i] = this.ballooned[base + i];
    const rc = this.k.hypercall.memory_populate_physmap(this.frames, n);
    const got = Math.max(0, rc);
    for (let i = 0; i < got; i++) this.k.pages.release(this.frames[i]);
    this.ballooned.splice(base, got);
    this.account(got, 'deflated');
    return got < n ? 'short' : 'done';
  }

  /** decrease_reservation: free pages of ours into the balloon; 'stuck' once the allocator is dry. */
  private decrease(n: number): 'done' | 'short' | 'stuck' {
    n = Math.min(n, Math.max(0, this.k.pages.available - balloonReserve(this.k.pages.total)));
    if (n === 0) {
      this.say(`xen:balloon: cannot reach ${this.target * 4} KiB: no free page left to give above the kernel's reserve (at ${this.stats.current * 4} KiB)`);
      return 'stuck';
    }
    for (let i = 0; i < n; i++) this.frames[i] = this.k.pages.alloc();
    const rc = this.k.hypercall.memory_decrease_reservation(this.frames, n);
    const gave = Math.max(0, rc);
    for (let i = 0; i < gave; i++) this.ballooned.push(this.frames[i]);
    // The first one refused is still referenced elsewhere: keep it out of the way; the rest go back.
    if (gave < n) this.refused.push(this.frames[gave]);
    for (let i = gave + 1; i < n; i++) this.k.pages.release(this.frames[i]);
    this.account(-gave, 'inflated');
    return 'done';
  }

  private account(delta: number, what: 'inflated' | 'deflated'): void {
    this.stats.current += delta;
    this.stats[what] += Math.abs(delta);
    this.stats.ballooned = this.ballooned.length;
  }
}

/**
 * A resumed kernel, before anything allocates: the gfns its predecessor had ballooned out, read
 * from the list its resume record names, and taken out of the allocator. Returns them.
 */
export function balloonResume(k: Kernel, rec: ResumeRecord): number[] {
  const want = rec.words[R.BALLOONED];
  if (want === 0) return []; // nothing to take: no pass over the free list on the resume's critical path
  const out: number[] = [];
  const words = new Int32Array(PAGE_WORDS);
  const bytes = new Uint8Array(words.buffer);
  for (let next = rec.words[R.BALLOON_LIST], pages = 0; next !== 0 && out.length < want; pages++) {
    if (pages > want / PER_LIST_PAGE + 1) throw new Error('resume: the balloon\'s saved list loops');
    k.memory.read((next - 1) * PAGE_SIZE, bytes);
    const n = words[LIST_COUNT];
    if (!(n > 0 && n <= PER_LIST_PAGE)) throw new Error(`resume: a page of the balloon's saved list says ${n} gfns`);
    for (let i = 0; i < n; i++) out.push(words[LIST_FIRST + i]);
    next = words[LIST_NEXT];
  }
  if (out.length !== want) throw new Error(`resume: the balloon's saved list has ${out.length} gfns, the record says ${want}`);
  const taken = k.pages.take(new Set(out));
  if (taken !== want) throw new Error(`resume: ${want - taken} of the balloon's saved gfns are not this kernel's to take`);
  return out;
}

/** xen-balloon.c's balloon_init_watcher: follow memory/target from now on. `resumed`: see balloonResume. */
export async function balloonInit(k: Kernel, xs: XenbusClient, say: (line: string) => void, resumed: readonly number[] = []): Promise<Balloon> {
  const b = new Balloon(k, say, resumed);
  if (resumed.length > 0) say(`xen:balloon: resumed with ${resumed.length} pages in the balloon (${b.stats.current * 4} KiB)`);
  await xs.watch(XS_MEMORY_TARGET, async () => {
    const v = await xs.tryRead(XS_MEMORY_TARGET);
    if (v === null) return;
    const kib = Number(v);
    if (!Number.isSafeInteger(kib)) {
      say(`xen:balloon: ignoring memory/target ${JSON.stringify(v)} (expected KiB)`);
      return;
    }
    b.setTargetKiB(kib);
  });
  return b;
}
