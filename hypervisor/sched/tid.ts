/*
 * A vCPU thread's kernel thread id, which the host needs to pin the thread (./thread-affinity.ts).
 *
 * Not a Xen concept: a Xen vCPU is no host thread. Linux: /proc/thread-self is a link to
 * PID/task/TID for the thread that reads it. Apart from thread-affinity.ts so that a vCPU thread
 * loads no more of the host than node:fs for it.
 */
import { readlinkSync } from 'node:fs';

/** In a vCPU thread: its kernel thread id, or null where /proc/thread-self does not exist. */
export function ownTid(): number | null {
  try {
    const m = /task\/(\d+)$/.exec(readlinkSync('/proc/thread-self'));
    return m ? Number(m[1]) : null;
  } catch {
    return null;
  }
}
