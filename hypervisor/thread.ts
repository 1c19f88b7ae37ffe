/*
 * Starting a host thread for a vCPU: the one place that knows how TypeScript gets loaded.
 *
 * Xen has no equivalent: a Xen vCPU runs on a physical CPU the hypervisor already owns. Here a
 * vCPU is a Node worker_thread, and Node 20 workers do not inherit tsx's loader, so each worker
 * starts from a tiny bootstrap that registers tsx (when the entry is a .ts file) and then
 * imports the real entry. Compiled JavaScript entries skip the registration.
 */
import os from 'node:os';
import { Worker } from 'node:worker_threads';

const TSX_API = import.meta.resolve('tsx/esm/api');

/*
 * A background thread's nice value: against threads at nice 0 it gets about a tenth of a core
 * (CFS weights 110 and 1024), so it still finishes on a machine kept busy by guests that spin,
 * while it takes little from them.
 */
const BACKGROUND_NICE = 10;

/*
 * A background thread's way back to the foreground (Int32Array on shared memory): its thread id
 * and normal priority, which it publishes, and whether it has been called.
 */
const FG = { TID: 0, NORMAL: 1, CALLED: 2, WORDS: 3 } as const;

/*
 * A background thread (a spare vCPU, ./vcpu-spares.ts) lowers its own priority (BACKGROUND_NICE; a
 * Linux thread's nice value is its own) before it loads anything, if it may raise it again later (the
 * right to raise a priority: root, or RLIMIT_NICE); workerData.normalPriority is then the one to
 * go back to, else null. Given a ForegroundCell, it publishes its thread id and normal priority
 * there before it lowers its own, and goes back up at once if it was already called to the
 * foreground (foreground(): the parent raises it from outside, whatever the thread is busy with).
 */
const BOOTSTRAP = `
const { workerData } = require('node:worker_threads');
workerData.normalPriority = null;
if (workerData.background) {
  const os = require('node:os');
  const cell = workerData.background instanceof Int32Array ? workerData.background : null;
  const normal = os.getPriority(0);
  try {
    os.setPriority(0, normal - 1); // allowed only with the right to raise a priority
    if (cell) {
      Atomics.store(cell, ${FG.NORMAL}, normal);
      try { Atomics.store(cell, ${FG.TID}, Number(require('node:fs').readlinkSync('/proc/thread-self').split('/').pop()) || 0); } catch { /* not Linux */ }
    }
    os.setPriority(0, ${BACKGROUND_NICE});
    workerData.normalPriority = normal;
    if (cell && Atomics.load(cell, ${FG.CALLED}) !== 0) os.setPriority(0, normal);
  } catch {
    try { os.setPriority(0, normal); } catch { /* it did not move */ }
  }
}
(async () => {
  if (workerData.tsx) (await import(workerData.tsx)).register();
  await import(workerData.entry);
})().catch((e) => { console.error(e); process.exit(70); });
`;

export type ForegroundCell = Int32Array;
export const foregroundCell = (): ForegroundCell => new Int32Array(new SharedArrayBuffer(FG.WORDS * 4));

/**
 * A background thread started with `cell` runs at its normal priority from now on: raised here
 * if it has published its id (Linux: setpriority on a thread id), else by itself once it looks
 * (BOOTSTRAP). The flag is set before the id is read, and the thread publishes its id before it
 * lowers its priority and looks at the flag after: one of the two raises it.
 */
export function foreground(cell: ForegroundCell): void {
  Atomics.store(cell, FG.CALLED, 1);
  const tid = Atomics.load(cell, FG.TID);
  if (tid === 0) return;
  try { os.setPriority(tid, Atomics.load(cell, FG.NORMAL)); } catch { /* the thread has exited */ }
}

/** The thread id a background thread published (0: none yet, or not Linux). */
export const threadIdOf = (cell: ForegroundCell): number => Atomics.load(cell, FG.TID);

/** Start `entry` (a file URL) in a new worker with `data` as its workerData.boot; `background`: see BOOTSTRAP. */
export function startThread(entry: URL, data: unknown, name: string, background: boolean | ForegroundCell = false): Worker {
  const tsx = entry.pathname.endsWith('.ts') ? TSX_API : null;
  return new Worker(BOOTSTRAP, { eval: true, name, workerData: { tsx, entry: entry.href, boot: data, background } });
}
