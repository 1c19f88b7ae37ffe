/*
 * The run-time state file a running VM leaves in its directory: <vm>/run/domain.json.
 *
 * The lecture's "Virtual Machine Files": once a VM is powered on, "additional files are created
 * for logging, memory paging, and other functions". xenconsoled writes <vm>/console.log; this is
 * the "other": which host runs the VM, as which domain, since when, and in what state, so that
 * someone looking at the directory (or a second host about to boot it) can tell it is live.
 * Xen keeps the like under /var/run/xen and /var/lib/xen (libxl's domain userdata); ringvisor keeps
 * it with the VM, because copying a VM directory must not copy a claim on it (vmdir.ts leaves run/
 * out of every copy).
 *
 * A host refuses to boot a VM whose state file names another live process (two hosts writing one
 * disk image would corrupt it); a file left by a process that is gone is stale and ignored.
 */
import { existsSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { RUN_DIR } from './config/vmdir.ts';

export const STATE_FILE = 'domain.json';

export interface VmRunState {
  name: string;
  uuid: string | null;
  domid: number;
  /** "running" while the domain exists; "shutdown" when it stopped and on_* said preserve. */
  state: 'running' | 'shutdown';
  shutdownReason?: string;
  /** The host process and its control socket. */
  pid: number;
  socket: string;
  started: string;
}

export function stateFilePath(vmDir: string): string {
  return join(vmDir, RUN_DIR, STATE_FILE);
}

/** Written whole and renamed into place, so a reader never sees half a file. */
export function writeRunState(vmDir: string, s: VmRunState): void {
  mkdirSync(join(vmDir, RUN_DIR), { recursive: true });
  const path = stateFilePath(vmDir);
  writeFileSync(`${path}.new`, `${JSON.stringify(s, null, 2)}\n`);
  renameSync(`${path}.new`, path);
}

export function removeRunState(vmDir: string): void {
  rmSync(stateFilePath(vmDir), { force: true });
}

/**
 * The state file, if it names a live process other than this one; null if there is none or it is
 * stale. (A VM booted twice by this very process is caught by its name instead.)
 */
export function liveClaim(vmDir: string): VmRunState | null {
  const path = stateFilePath(vmDir);
  if (!existsSync(path)) return null;
  let s: VmRunState;
  try {
    s = JSON.parse(readFileSync(path, 'utf8')) as VmRunState;
  } catch {
    return null; // unreadable: not a claim anyone can prove
  }
  if (!Number.isInteger(s.pid) || s.pid === process.pid) return null;
  try {
    process.kill(s.pid, 0); // signal 0: does the process exist?
    return s;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM' ? s : null;
  }
}
