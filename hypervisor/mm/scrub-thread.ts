/*
 * The idle scrubber's thread: a host's idle vCPU, for scrubbing only (./scrub.ts says why a thread).
 *
 * Xen: the idle vCPU's idle_loop (xen/arch/x86/domain.c), which calls scrub_free_pages when the
 * pCPU has nothing to run. It loads in the background (../thread.ts: nice 10), then runs at the
 * normal priority: it takes the allocator's lock, and a thread the host OS runs last must not
 * hold a lock every vCPU's allocation needs (./scrub.ts, "priority").
 */
import os from 'node:os';
import { workerData } from 'node:worker_threads';
import { HypervisorState } from '../state.ts';
import { idle_loop, type ScrubBoot } from './scrub.ts';

const boot = (workerData as { boot: ScrubBoot; normalPriority: number | null }).boot;
const normal = (workerData as { normalPriority: number | null }).normalPriority;
try {
  if (normal !== null) os.setPriority(0, normal); // Linux: this thread's own nice value, not the process's
} catch {
  /* not allowed or not Linux: it stays at the background's priority */
}
idle_loop(new HypervisorState(boot.buffers));
process.exit(0); // in a worker: this thread only (a loader's port would keep it alive)
