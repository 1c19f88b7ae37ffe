/*
 * A pool of ringvisor hosts on one machine: a small file naming them, so they know each other.
 *
 * Xen/XAPI: a XenServer/XCP-ng pool (`xe pool-join master-address=...`): hosts that share storage
 * and a network, any guest of one may be migrated to another, and the first host is the pool
 * master, which the others follow. ringvisor keeps what a pool is about and leaves out xapi's
 * database: the pool file lists the members (a name and the run directory whose xl socket reaches
 * its toolstack); `pool-join` adds the host it is run against, the first to join being the master;
 * `pool-eject` removes one. The VMs' directories are the shared storage, the bridges' UDP uplinks
 * the shared network (dom0/services/bridge/uplink.ts).
 *
 *   { "pool": "pool0", "master": "host-a", "members": [ { "name": "host-a", "runDir": "/..." }, ... ] }
 *
 * A file that is not such a pool gets an error naming the file and what is wrong in it.
 */
import { existsSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { resolve } from 'node:path';

export interface PoolMember { name: string; runDir: string }
export interface PoolFile { pool: string; master: string; members: PoolMember[] }

export class PoolFileError extends Error {
  constructor(file: string, message: string) {
    super(`${file}: ${message}`);
    this.name = 'PoolFileError';
  }
}

const NAME = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/;

export function readPool(file: string): PoolFile {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    throw new PoolFileError(file, `cannot read the pool file (${(e as Error).message}); make one with pool-join`);
  }
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch (e) {
    throw new PoolFileError(file, `not JSON: ${(e as Error).message}`);
  }
  const o = v as Partial<PoolFile>;
  if (typeof o !== 'object' || o === null || typeof o.pool !== 'string' || !NAME.test(o.pool)) {
    throw new PoolFileError(file, 'expected { "pool": NAME, "master": NAME, "members": [ { "name": NAME, "runDir": PATH }, ... ] }');
  }
  if (!Array.isArray(o.members)) throw new PoolFileError(file, '"members" must be a list');
  const seen = new Set<string>();
  o.members.forEach((m: Partial<PoolMember>, i) => {
    if (typeof m?.name !== 'string' || !NAME.test(m.name)) throw new PoolFileError(file, `members[${i}]: "name" must be a host name (letters, digits, . _ -)`);
    if (typeof m.runDir !== 'string' || m.runDir === '') throw new PoolFileError(file, `members[${i}] (${m.name}): "runDir" must be the host's run directory`);
    if (seen.has(m.name)) throw new PoolFileError(file, `members[${i}]: ${m.name} is listed twice`);
    seen.add(m.name);
  });
  if (o.members.length > 0 && !o.members.some((m) => m.name === o.master)) {
    throw new PoolFileError(file, `the master ${String(o.master)} is not a member`);
  }
  return { pool: o.pool, master: o.master ?? '', members: o.members as PoolMember[] };
}

function writePool(file: string, p: PoolFile): void {
  const tmp = `${file}.tmp`;
  writeFileSync(tmp, `${JSON.stringify(p, null, 2)}\n`);
  renameSync(tmp, file); // a reader never sees half a file
}

/** xe pool-join: add a host; the file is made if it does not exist, and its first member is the master. */
export function joinPool(file: string, member: PoolMember, poolName = 'pool0'): PoolFile {
  const p: PoolFile = existsSync(file) ? readPool(file) : { pool: poolName, master: member.name, members: [] };
  const runDir = resolve(member.runDir);
  const same = p.members.find((m) => m.name === member.name || resolve(m.runDir) === runDir);
  if (same) throw new PoolFileError(file, `${member.name} (${runDir}) is already in pool ${p.pool} as ${same.name}`);
  p.members.push({ name: member.name, runDir });
  if (p.members.length === 1) p.master = member.name;
  writePool(file, p);
  return p;
}

/** xe pool-eject: the host leaves; if it was the master, the next member becomes master. */
export function ejectFromPool(file: string, name: string): PoolFile {
  const p = readPool(file);
  if (!p.members.some((m) => m.name === name)) throw new PoolFileError(file, `${name} is not in pool ${p.pool}`);
  p.members = p.members.filter((m) => m.name !== name);
  if (p.master === name) p.master = p.members[0]?.name ?? '';
  writePool(file, p);
  return p;
}
