/*
 * The run-time files of one VM: its console log and its state file, per config file.
 *
 * The lecture's "Virtual Machine Files": once a VM is powered on, "additional files are created
 * for logging, memory paging, and other functions". xenconsoled writes the console log; the state
 * file is the "other": which host runs the VM, as which domain, since when, and in what state, so
 * that someone looking at the files (or a second host about to boot the VM) can tell it is live.
 * Xen keeps the like under /var/log/xen/console/guest-<name>.log and /var/run/xen (libxl's domain
 * userdata); ringvisor keeps them beside the config, so that they belong to it:
 *
 *   a VM directory  <vm>/vm.cfg      <vm>/console.log         <vm>/run/domain.json
 *   a config file   <dir>/web.cfg    <dir>/web.console.log    <dir>/run/web.json
 *
 * Xen's usual layout is many *.cfg in one directory: each gets its own log and state file, so
 * logs never interleave and destroying one VM never touches another's state. Copying a VM
 * directory must not copy a claim on it: vmdir.ts leaves run/ and the log out of every copy.
 *
 * A host refuses to boot a config whose state file names another live host process (two hosts
 * writing one disk image would corrupt it; the image locks of ./image-lock.ts catch that too); a
 * file left by a process that is gone is stale and ignored (and the next host start removes it,
 * ./host-record.ts).
 *
 * Writes and removals happen at once ('now') or by the thread pool ('queued'), in the order asked
 * either way: Dom0's toolstack shares its thread with the bridge and xenstored, and in a
 * migration's downtime it must not wait on a disk that stalls (StateWrite below).
 */
import { existsSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { mkdir, rename, rm, writeFile } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { CONSOLE_LOG, RUN_DIR, VM_CONFIG } from './config/vm-layout.ts';

export const STATE_FILE = 'domain.json';

export interface VmRunState {
  name: string;
  uuid: string | null;
  domid: number;
  /** "running" while the domain exists; "shutdown" when it stopped and on_* said preserve. */
  state: 'running' | 'shutdown';
  shutdownReason?: string;
  /** The config file this VM was created from. */
  config: string;
  /** The host process and its control socket. */
  pid: number;
  socket: string;
  started: string;
}

export interface VmRuntimeFiles {
  consoleLog: string;
  stateFile: string;
}

/** Where the run-time files of the VM created from `configFile` (absolute) go (see the header). */
export function runtimeFiles(configFile: string): VmRuntimeFiles {
  const dir = dirname(configFile);
  const file = basename(configFile);
  if (file === VM_CONFIG) return { consoleLog: join(dir, CONSOLE_LOG), stateFile: join(dir, RUN_DIR, STATE_FILE) };
  const stem = file.endsWith('.cfg') ? file.slice(0, -'.cfg'.length) : file;
  return { consoleLog: join(dir, `${stem}.console.log`), stateFile: join(dir, RUN_DIR, `${stem}.json`) };
}

/*
 * 'now': written (or removed) before the call returns, as a reader right after expects. 'queued':
 * by the thread pool, for a caller whose thread must not wait on the filesystem (Dom0's toolstack
 * shares its thread with the bridge and xenstored: a migration's suspend and the target's build
 * are in the guest's downtime, and a metadata write on a busy disk can stall for tens of
 * milliseconds). Either way the operations on one file happen in the order asked: a 'now' asked
 * while a queued one is pending joins the queue.
 */
export type StateWrite = 'now' | 'queued';
const pending = new Map<string, Promise<void>>();

function enqueue(stateFile: string, op: () => Promise<void>): Promise<void> {
  const run = (pending.get(stateFile) ?? Promise.resolve()).then(op);
  const tail = run.catch(() => undefined).then(() => { if (pending.get(stateFile) === tail) pending.delete(stateFile); });
  pending.set(stateFile, tail);
  return run;
}

/** Written whole and renamed into place, so a reader never sees half a file. */
export function writeRunState(stateFile: string, s: VmRunState, how: StateWrite = 'now'): Promise<void> {
  const text = `${JSON.stringify(s, null, 2)}\n`;
  if (how === 'now' && !pending.has(stateFile)) {
    mkdirSync(dirname(stateFile), { recursive: true });
    writeFileSync(`${stateFile}.new`, text);
    renameSync(`${stateFile}.new`, stateFile);
    return Promise.resolve();
  }
  return enqueue(stateFile, async () => {
    await mkdir(dirname(stateFile), { recursive: true });
    await writeFile(`${stateFile}.new`, text);
    await rename(`${stateFile}.new`, stateFile);
  });
}

export function removeRunState(stateFile: string, how: StateWrite = 'now'): Promise<void> {
  if (how === 'now' && !pending.has(stateFile)) {
    rmSync(stateFile, { force: true });
    return Promise.resolve();
  }
  return enqueue(stateFile, () => rm(stateFile, { force: true }));
}

export function readRunState(stateFile: string): VmRunState | null {
  if (!existsSync(stateFile)) return null;
  try {
    return JSON.parse(readFileSync(stateFile, 'utf8')) as VmRunState;
  } catch {
    return null; // unreadable: not a claim anyone can prove
  }
}

/** Does process `pid` exist? (Signal 0 checks without sending; EPERM means it exists, as another user's.) */
export function processAlive(pid: number): boolean {
  if (!Number.isInteger(pid) || pid <= 0) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * The state file, if it names a live process other than this one; null if there is none or it is
 * stale. (A VM booted twice by this very process is caught by its config file instead.)
 */
export function liveClaim(stateFile: string): VmRunState | null {
  const s = readRunState(stateFile);
  if (!s || s.pid === process.pid || !processAlive(s.pid)) return null;
  return s;
}
