/*
 * Image locks: a disk image attached read-write is used by nothing else, on any ringvisor host on
 * this machine; one attached read-only has no read-write user.
 *
 * Xen: the block hotplug script's check_sharing (tools/hotplug/Linux/block): "To use the device
 * in read-only mode, it may be in use in read-only mode, but may not be in use in read-write
 * anywhere at all. To use the device in read-write mode, it must not be in use anywhere at all."
 * It looks through XenStore for other vbds on the same file, and a mode of `w!` skips the check.
 * ringvisor's hosts are separate processes, each with its own XenStore, so the record of who uses
 * an image lives in the file system instead, where every host on the machine sees it.
 *
 * The mechanism, and why: Node has no flock(2) or fcntl locks, so a lock is a file. Each attach
 * creates one holder file, with O_CREAT|O_EXCL ('wx'), in a machine-wide directory
 * (<tmpdir>/ringvisor-image-locks, sticky and world-writable like /tmp itself):
 *
 *   <dev>-<ino>.<pid>.<token>.<r|w>      JSON: the image path, the domain, the host's socket
 *
 * keyed by the image's device and inode, so every path to one file (a symlink, a copy of the
 * config elsewhere naming it by another path) is the same image. To attach: remove holders whose
 * process is gone (a host killed with -9 leaves them; they are stale), refuse if a live holder
 * conflicts, create ours, then look again: two hosts attaching at the same instant both see each
 * other's file and both back off (a refusal, never two writers). A holder is removed when its
 * domain is destroyed. What this does not give: a lock the kernel drops when the process dies
 * (flock's great virtue), hence the pid check; and protection from programs other than ringvisor,
 * which never look here (nor do they look at Xen's XenStore).
 */
import { randomBytes } from 'node:crypto';
import { chmodSync, mkdirSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { processAlive } from './state-file.ts';

/** Where every ringvisor host on this machine records image use ($RINGVISOR_LOCK_DIR overrides). */
export function imageLockDir(): string {
  return process.env.RINGVISOR_LOCK_DIR ?? join(tmpdir(), 'ringvisor-image-locks');
}

export type LockMode = 'r' | 'w';

/** Who holds an image, as its holder file says. */
export interface ImageHolder {
  image: string;
  mode: LockMode;
  domain: string;
  pid: number;
  host: string;
  since: string;
}

export interface ImageLock {
  readonly image: string;
  release(): void;
}

/** The image is in use in a way that forbids this attach; `holders` are the ones in the way. */
export class ImageInUseError extends Error {
  constructor(readonly image: string, readonly mode: LockMode, readonly holders: readonly ImageHolder[]) {
    const who = [...holders].sort((a, b) => a.since.localeCompare(b.since)).map((h) => `${h.mode === 'w' ? 'read-write' : 'read-only'} by ${h.domain} ` +
      `(host pid ${h.pid}${h.host ? `, ${h.host}` : ''})`).join('; ');
    super(`image ${image} is in use ${who}`);
    this.name = 'ImageInUseError';
  }
}

interface Entry { file: string; holder: ImageHolder | null; pid: number; mode: LockMode }

const conflicts = (mode: LockMode, other: LockMode) => mode === 'w' || other === 'w';

/**
 * Record that `domain` uses `image` (an existing file) in `mode`, or throw ImageInUseError.
 * `force` is xl's `w!`: record it whatever else holds the image. `onStale` hears of each stale
 * holder removed on the way.
 */
export function lockImage(image: string, mode: LockMode, who: { domain: string; host: string }, opts: {
  force?: boolean; onStale?: (h: ImageHolder) => void;
} = {}): ImageLock {
  const dir = imageLockDir();
  ensureLockDir(dir);
  const st = statSync(image);
  const key = `${st.dev}-${st.ino}`;
  const ours = `${key}.${process.pid}.${randomBytes(6).toString('hex')}.${mode}`;
  const inTheWay = (): ImageHolder[] => holders(dir, key, opts.onStale)
    .filter((e) => e.file !== ours && conflicts(mode, e.mode))
    .map((e) => e.holder ?? { image, mode: e.mode, domain: 'an unknown domain', pid: e.pid, host: '', since: '' });
  if (!opts.force) {
    const before = inTheWay();
    if (before.length > 0) throw new ImageInUseError(image, mode, before);
  }
  const holder: ImageHolder = { image, mode, domain: who.domain, pid: process.pid, host: who.host, since: new Date().toISOString() };
  writeFileSync(join(dir, ours), `${JSON.stringify(holder)}\n`, { flag: 'wx', mode: 0o644 });
  if (!opts.force) {
    const after = inTheWay(); // someone created theirs while we created ours: both back off
    if (after.length > 0) {
      rmSync(join(dir, ours), { force: true });
      throw new ImageInUseError(image, mode, after);
    }
  }
  let held = true;
  return {
    image,
    release() {
      if (!held) return;
      held = false;
      rmSync(join(dir, ours), { force: true });
    },
  };
}

/* The live holders of image `key`; stale ones (their process is gone) are removed and reported. */
function holders(dir: string, key: string, onStale?: (h: ImageHolder) => void): Entry[] {
  const live: Entry[] = [];
  for (const file of readdirSync(dir)) {
    if (!file.startsWith(`${key}.`)) continue;
    const [, pidText, , mode] = file.split('.');
    if (mode !== 'r' && mode !== 'w') continue;
    const pid = Number(pidText);
    let holder: ImageHolder | null = null;
    try {
      holder = JSON.parse(readFileSync(join(dir, file), 'utf8')) as ImageHolder;
    } catch {
      // being written right now, or removed: judged by its name alone
    }
    if (!processAlive(pid)) {
      rmSync(join(dir, file), { force: true });
      if (holder) onStale?.(holder);
      continue;
    }
    live.push({ file, holder, pid, mode });
  }
  return live;
}

function ensureLockDir(dir: string): void {
  try {
    mkdirSync(dir, { mode: 0o1777 });
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
    return;
  }
  chmodSync(dir, 0o1777); // mkdir's mode is masked by the umask; a machine-wide directory needs the shared, sticky one
}
