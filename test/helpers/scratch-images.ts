/*
 * Scratch disk images for a test file: sparse files of a given size in the temporary directory,
 * removed after the file's tests whatever happened, and the checksums a guest's data must match.
 * (The set-up the block tests used to repeat, each with its own copy.)
 */
import type { TestFn } from 'ava';
import { randomUUID } from 'node:crypto';
import { closeSync, ftruncateSync, openSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { checksum } from '../../shared/checksum.ts';

const MIB = 1 << 20;

export interface ScratchImages {
  /** A new image of `mib` MiB, all zeros (sparse). */
  image(mib: number): string;
  /** checksum() of each MiB of the file over its first `bytes`: what the guest's model must equal. */
  fileSums(path: string, bytes: number): number[];
}

export function scratchImages(test: TestFn, prefix: string): ScratchImages {
  const images: string[] = [];
  test.after.always(() => {
    for (const p of images) rmSync(p, { force: true });
  });
  return {
    image(mib) {
      const path = join(tmpdir(), `${prefix}${randomUUID()}.img`);
      const fd = openSync(path, 'w');
      ftruncateSync(fd, mib * MIB);
      closeSync(fd);
      images.push(path);
      return path;
    },
    fileSums(path, bytes) {
      const data = readFileSync(path);
      const out: number[] = [];
      for (let off = 0; off < bytes; off += MIB) out.push(checksum(new Uint8Array(data.buffer, data.byteOffset + off, Math.min(MIB, bytes - off))));
      return out;
    },
  };
}
