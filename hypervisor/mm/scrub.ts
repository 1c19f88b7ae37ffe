/*
 * The idle scrubber: freed frames are zeroed when a core has nothing better to do.
 *
 * Xen: scrub_free_pages (xen/common/page_alloc.c), which each pCPU's idle loop calls
 * (idle_loop in xen/arch/x86/domain.c) while no softirq is pending: it takes a dirty buddy off the
 * tail of a free list, marks it as being scrubbed, drops the heap lock, zeroes the pages that have
 * PGC_need_scrub, looks for pending work every few pages, and puts the buddy back clean; when
 * node_need_scrub reaches 0 the idle loop goes back to sleeping (pm_idle). Freeing (../page-alloc.ts)
 * only marks frames dirty; allocation scrubs a dirty frame itself if no clean one is left.
 *
 * Where "idle" is in ringvisor (the choice): one thread per host, started at boot. Not the control
 * thread: it must never sit on a data path (DESIGN.md §2), it is where a destroy runs (the work
 * this moves away), and when hosts share a process, as tests and the migrate bench run them, it
 * is also the other hosts' control thread and runs their network cards, which a destroy's
 * scrubbing held up. Not the scheduler's free pCPU slots (../schedule.ts): a slot is a model over
 * the real cores, and a free slot is not a free core.
 *
 * Its priority: normal, not the lowest. Xen's idle vCPU runs only when nothing else wants the
 * pCPU, and never holds a lock across a preemption (its spinlocks disable it). This thread takes
 * the allocator's lock twice per chunk, and an allocation may wait for the chunk in its hands; at
 * nice 19 (CFS weight 15 against 1024, about 1.5% of a core while every core is busy) a
 * preemption inside either would leave every allocating vCPU waiting for the thread the host OS
 * runs last. The first cut did run at nice 19, and a migration test that pages and allocates
 * throughout (test/migrate-unpin.test.ts) hung under load twice in a few runs; this is the likely
 * cause, not a proven one (that test has hung without the scrubber too). Zeroing is cheap
 * (a 4 KiB fill), so at the normal priority it costs the cores a few ms per 64 MiB freed.
 *
 * It is not a busy loop: with nothing dirty it sleeps in Atomics.wait on A.SCRUBBER_IDLE, which
 * the next free of a frame wakes (page-alloc.ts free_domheap_page); it stops when the dirty stack
 * is empty. It scrubs SCRUB_CHUNK frames at a time, taking the allocator's lock twice per chunk
 * (take, give back) for a few loads and stores; the chunks keep the number of times it holds it
 * small. An allocation that finds only frames in the scrubber's hands waits for that one chunk (page-alloc.ts alloc_domheap_page; counted as A.ALLOC_WAITS).
 */
import type { Worker } from 'node:worker_threads';
import { spin_lock, spin_unlock } from '../spinlock.ts';
import { startThread } from '../thread.ts';
import { A, SCRUB_AT_FREE, cleanSlot, dirtySlot, scrub_one_page } from '../page-alloc.ts';
import type { HypervisorBuffers, HypervisorState } from '../state.ts';

/*
 * Frames per chunk: 128 (512 KiB, some tens of microseconds of zeroing). Small enough that an
 * allocation waiting for the chunk waits little, large enough that a 64 MiB guest's RAM takes
 * the allocator's lock 256 times, not 16384.
 */
export const SCRUB_CHUNK = 128;

/* The chunk in hand (one per thread: this module is loaded once per thread). */
const chunk = new Int32Array(SCRUB_CHUNK);

/**
 * scrub_free_pages: take up to SCRUB_CHUNK dirty frames, zero them, put them on the clean stack.
 * Returns true if dirty frames remain (the idle loop calls again), false if none are left.
 */
export function scrub_free_pages(hv: HypervisorState): boolean {
  const a = hv.allocator;
  spin_lock(a, A.LOCK);
  const n = a[A.DIRTY];
  const take = Math.min(n, SCRUB_CHUNK);
  for (let i = 0; i < take; i++) chunk[i] = a[dirtySlot(hv, n - 1 - i)];
  Atomics.store(a, A.DIRTY, n - take);
  Atomics.add(a, A.SCRUBBING, take);
  spin_unlock(a, A.LOCK);
  if (take === 0) return false;
  for (let i = 0; i < take; i++) scrub_one_page(hv, chunk[i]);
  spin_lock(a, A.LOCK);
  const clean = a[A.CLEAN];
  for (let i = 0; i < take; i++) a[cleanSlot(clean + i)] = chunk[i];
  Atomics.store(a, A.CLEAN, clean + take);
  Atomics.sub(a, A.SCRUBBING, take);
  spin_unlock(a, A.LOCK);
  Atomics.add(a, A.SCRUBBED_IDLE, take);
  Atomics.notify(a, A.SCRUBBING); // an allocation may be waiting for this chunk
  return Atomics.load(a, A.DIRTY) > 0;
}

/**
 * The scrubber thread's whole life (./scrub-thread.ts): scrub while anything is dirty, then sleep
 * until a free wakes it, until the host closes. The flag is raised before the last look at the
 * dirty count, and a free pushes before it looks at the flag: a wake-up is never lost.
 */
export function idle_loop(hv: HypervisorState): void {
  const a = hv.allocator;
  while (Atomics.load(a, A.SCRUBBER_STOP) === 0) {
    if (scrub_free_pages(hv)) continue;
    Atomics.store(a, A.SCRUBBER_IDLE, 1);
    if (Atomics.load(a, A.DIRTY) > 0 || Atomics.load(a, A.SCRUBBER_STOP) !== 0) {
      Atomics.store(a, A.SCRUBBER_IDLE, 0);
      continue;
    }
    Atomics.wait(a, A.SCRUBBER_IDLE, 1);
  }
}

/** The allocator's scrubbing figures (Xen: physinfo's scrub_pages; the rest are ringvisor's counters). */
export interface ScrubStats {
  /** 'idle': freed frames wait for the idle scrubber; 'free': zeroed as they are freed. */
  mode: 'idle' | 'free';
  /** Free frames still holding a previous owner's bytes (Xen: scrub_pages), and those being scrubbed now. */
  dirty: number;
  scrubbing: number;
  /** Frames zeroed so far by the idle scrubber, by allocations that found no clean frame, and at free. */
  scrubbedIdle: number;
  scrubbedAlloc: number;
  scrubbedFree: number;
  /** Allocations that waited for a chunk in the scrubber's hands. */
  allocWaits: number;
}

export function scrubStats(hv: HypervisorState): ScrubStats {
  const a = hv.allocator;
  return {
    mode: Atomics.load(a, A.MODE) === SCRUB_AT_FREE ? 'free' : 'idle',
    dirty: Atomics.load(a, A.DIRTY),
    scrubbing: Atomics.load(a, A.SCRUBBING),
    scrubbedIdle: Atomics.load(a, A.SCRUBBED_IDLE) >>> 0,
    scrubbedAlloc: Atomics.load(a, A.SCRUBBED_ALLOC) >>> 0,
    scrubbedFree: Atomics.load(a, A.SCRUBBED_FREE) >>> 0,
    allocWaits: Atomics.load(a, A.ALLOC_WAITS) >>> 0,
  };
}

/** What the scrubber thread is started with. */
export interface ScrubBoot {
  buffers: HypervisorBuffers;
}

/** The control thread's handle on a host's idle scrubber thread. */
export class IdleScrubber {
  private constructor(private readonly hv: HypervisorState, worker: Worker) {
    worker.unref(); // never what keeps a process alive: it leaves by itself once stopped (./scrub-thread.ts)
  }

  /** Start the scrubber of `hv` (mode 'idle' only: in mode 'free' nothing is ever dirty). */
  static start(hv: HypervisorState, log: (line: string) => void): IdleScrubber {
    const boot: ScrubBoot = { buffers: hv.buffers };
    const w = startThread(new URL('./scrub-thread.ts', import.meta.url), boot, 'idle scrubber', true);
    w.on('error', (e) => log(`(XEN) idle scrubber died: ${e instanceof Error ? e.message : String(e)}; allocations scrub what they take`));
    return new IdleScrubber(hv, w);
  }

  /**
   * Stop it (host close): it finishes the chunk in hand, which goes back to the clean stack, and
   * its thread ends. Not waited for: a thread still loading would hold the close up for nothing;
   * it sees the flag as soon as it runs.
   */
  close(): void {
    const a = this.hv.allocator;
    Atomics.store(a, A.SCRUBBER_STOP, 1);
    Atomics.store(a, A.SCRUBBER_IDLE, 0);
    Atomics.notify(a, A.SCRUBBER_IDLE);
  }
}
