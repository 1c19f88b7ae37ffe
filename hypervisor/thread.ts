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

const BOOTSTRAP = `
const { workerData } = require('node:worker_threads');
(async () => {
  if (workerData.tsx) (await import(workerData.tsx)).register();
  await import(workerData.entry);
})().catch((e) => { console.error(e); process.exit(70); });
`;

/** Start `entry` (a file URL) in a new worker with `data` as its workerData.boot. */
export function startThread(entry: URL, data: unknown, name: string): Worker {
  const tsx = entry.pathname.endsWith('.ts') ? TSX_API : null;
  return new Worker(BOOTSTRAP, { eval: true, name, workerData: { tsx, entry: entry.href, boot: data } });
}
