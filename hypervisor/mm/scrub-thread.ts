/*
 * The idle scrubber's thread: a host's idle vCPU, for scrubbing only (./scrub.ts says why a thread).
 *
 * Xen: the idle vCPU's idle_loop (xen/arch/x86/domain.c), which calls scrub_free_pages when the
 * pCPU has nothing to run. Here the host OS decides when nothing else wants a core: this thread
 * asks for the lowest priority (nice 19; ../thread.ts has already taken it to the background's
 * nice 10) and then loops in idle_loop until the host closes.
 */
import os from 'node:os';
import { workerData } from 'node:worker_threads';
import { HypervisorState } from '../state.ts';
import { idle_loop, type ScrubBoot } from './scrub.ts';

const IDLE_NICE = 19;

const boot = (workerData as { boot: ScrubBoot }).boot;
try {
  os.setPriority(0, IDLE_NICE); // Linux: this thread's own nice value, not the process's
} catch {
  /* not allowed or not Linux: it stays at the background's priority */
}
idle_loop(new HypervisorState(boot.buffers));
process.exit(0); // in a worker: this thread only (a loader's port would keep it alive)
