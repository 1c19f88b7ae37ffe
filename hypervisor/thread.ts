/*
 * Starting a host thread for a vCPU: the one place that knows how TypeScript gets loaded.
 *
 * Xen has no equivalent: a Xen vCPU runs on a physical CPU the hypervisor already owns. Here a
 * vCPU is a Node worker_thread, and Node 20 workers do not inherit tsx's loader, so each worker
 * starts from a tiny bootstrap that registers tsx (when the entry is a .ts file) and then
 * imports the real entry. Compiled JavaScript entries skip the registration.
 */
import { Worker } from 'node:worker_threads';

const TSX_API = import.meta.resolve('tsx/esm/api');

/*
 * A background thread's nice value: against threads at nice 0 it gets about a tenth of a core
 * (CFS weights 110 and 1024), so it still finishes on a machine kept busy by guests that spin,
 * while it takes little from them.
 */
const BACKGROUND_NICE = 10;

/*
 * A background thread (a spare vCPU, ./vcpu-spares.ts) lowers its own priority (BACKGROUND_NICE; a
 * Linux thread's nice value is its own) before it loads anything, if it may raise it again later (the
 * right to raise a priority: root, or RLIMIT_NICE); workerData.normalPriority is then the one to
 * go back to, else null.
 */
const BOOTSTRAP = `
const { workerData } = require('node:worker_threads');
workerData.normalPriority = null;
if (workerData.background) {
  const os = require('node:os');
  const normal = os.getPriority(0);
  try {
    os.setPriority(0, normal - 1); // allowed only with the right to raise a priority
    os.setPriority(0, ${BACKGROUND_NICE});
    workerData.normalPriority = normal;
  } catch {
    try { os.setPriority(0, normal); } catch { /* it did not move */ }
  }
}
(async () => {
  if (workerData.tsx) (await import(workerData.tsx)).register();
  await import(workerData.entry);
})().catch((e) => { console.error(e); process.exit(70); });
`;

/** Start `entry` (a file URL) in a new worker with `data` as its workerData.boot; `background`: see BOOTSTRAP. */
export function startThread(entry: URL, data: unknown, name: string, background = false): Worker {
  const tsx = entry.pathname.endsWith('.ts') ? TSX_API : null;
  return new Worker(BOOTSTRAP, { eval: true, name, workerData: { tsx, entry: entry.href, boot: data, background } });
}
