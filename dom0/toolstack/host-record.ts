/*
 * What a host leaves in its run directory so that the next one can tell how it ended:
 *
 *   <runDir>/host.json            this host: pid, memory, since when (removed at a clean stop)
 *   <runDir>/xl/domains/<domid>   one per VM the toolstack runs: the path of its state file
 *
 * Xen: /var/run/xen and /var/run/xenstored hold the like (xenstored.pid, the sockets, libxl's
 * per-domain userdata), and a reboot empties them (a tmpfs). A ringvisor host is a process, and a
 * process killed with -9 runs no cleanup: its sockets stay, and each VM's state file still says
 * "running" with a pid that is gone. The next host on the same run directory finds the record of
 * a dead host, removes what it left (stale sockets, state files naming its pid) and says so; a
 * verb that finds no host says that the last one died rather than only that none runs.
 */
import { existsSync, mkdirSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { processAlive, readRunState, removeRunState } from './state-file.ts';

export interface HostRecord {
  pid: number;
  memoryMiB: number;
  started: string;
}

export const hostRecordPath = (runDir: string) => join(runDir, 'host.json');
const domainsDir = (runDir: string) => join(runDir, 'xl', 'domains');

export function writeHostRecord(runDir: string, r: HostRecord): void {
  mkdirSync(runDir, { recursive: true });
  writeFileSync(hostRecordPath(runDir), `${JSON.stringify(r)}\n`);
}

export function readHostRecord(runDir: string): HostRecord | null {
  try {
    return JSON.parse(readFileSync(hostRecordPath(runDir), 'utf8')) as HostRecord;
  } catch {
    return null;
  }
}

/** A clean stop: the record goes (the next host has nothing to clean). */
export function removeHostRecord(runDir: string): void {
  rmSync(hostRecordPath(runDir), { force: true });
  rmSync(domainsDir(runDir), { recursive: true, force: true });
}

/** The record of a host that is gone without a clean stop, if that is what `runDir` holds. */
export function deadHost(runDir: string): HostRecord | null {
  const r = readHostRecord(runDir);
  return r && !processAlive(r.pid) ? r : null;
}

/** The toolstack runs domain `domid` from the VM whose state file is `stateFile`. */
export function recordDomain(runDir: string, domid: number, stateFile: string): void {
  mkdirSync(domainsDir(runDir), { recursive: true });
  writeFileSync(join(domainsDir(runDir), String(domid)), stateFile);
}

/** recordDomain by the thread pool, for a caller that must not wait on the filesystem (./state-file.ts 'queued'). */
export async function recordDomainQueued(runDir: string, domid: number, stateFile: string): Promise<void> {
  await mkdir(domainsDir(runDir), { recursive: true });
  await writeFile(join(domainsDir(runDir), String(domid)), stateFile);
}

export function forgetDomainRecord(runDir: string, domid: number): void {
  rmSync(join(domainsDir(runDir), String(domid)), { force: true });
}

export interface Cleanup {
  host: HostRecord;
  /** "name (domain N): state file" for each VM whose state file named the dead host. */
  vms: string[];
  sockets: string[];
}

/**
 * After a host died: remove its sockets, the state files that still name its pid, and its record.
 * `sockets` are the paths it listened on. Null if the run directory holds no dead host.
 */
export function cleanUpAfterDeadHost(runDir: string, sockets: readonly string[]): Cleanup | null {
  const host = deadHost(runDir);
  if (!host) return null;
  const vms: string[] = [];
  for (const domid of existsSync(domainsDir(runDir)) ? readdirSync(domainsDir(runDir)) : []) {
    let stateFile: string;
    try {
      stateFile = readFileSync(join(domainsDir(runDir), domid), 'utf8');
    } catch {
      continue;
    }
    const s = readRunState(stateFile);
    if (s && s.pid === host.pid) {
      removeRunState(stateFile);
      vms.push(`${s.name} (domain ${s.domid}): ${stateFile}`);
    }
  }
  const gone = sockets.filter((p) => existsSync(p));
  for (const p of gone) rmSync(p, { force: true });
  removeHostRecord(runDir);
  return { host, vms, sockets: gone };
}
