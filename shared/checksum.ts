/*
 * A 32-bit checksum for data that crosses a ring, so tests and workloads can prove that what
 * arrived is what was sent.
 *
 * Not a Xen interface: blkif and netif carry no checksums of their own (netif's checksum flags
 * are about TCP/IP offload). This is FNV-1a taken a 32-bit word at a time, with the odd bytes
 * at the end folded in one by one: fast enough to run on every request of a million-request
 * test, and sensitive to position, so a swapped or shifted page is caught.
 */
import { wordsOf } from './view.ts';

const FNV_OFFSET = 0x811c9dc5;
const FNV_PRIME = 0x01000193;

export function checksum(bytes: Uint8Array, len = bytes.length, seed = FNV_OFFSET): number {
  let h = seed | 0;
  const whole = len & ~3;
  if ((bytes.byteOffset & 3) === 0) {
    const words = wordsOf(bytes.subarray(0, whole));
    for (let i = 0; i < words.length; i++) h = Math.imul(h ^ words[i], FNV_PRIME);
  } else {
    for (let i = 0; i < whole; i += 4) {
      h = Math.imul(h ^ (bytes[i] | (bytes[i + 1] << 8) | (bytes[i + 2] << 16) | (bytes[i + 3] << 24)), FNV_PRIME);
    }
  }
  for (let i = whole; i < len; i++) h = Math.imul(h ^ bytes[i], FNV_PRIME);
  return h >>> 0;
}

/** Fill `bytes` with a pattern derived from `seed` (xorshift32), cheaply and reproducibly. */
export function fillPattern(bytes: Uint8Array, seed: number, len = bytes.length): void {
  let x = (seed | 0) || 0x9e3779b9;
  const whole = len & ~3;
  if ((bytes.byteOffset & 3) === 0) {
    const words = wordsOf(bytes.subarray(0, whole));
    for (let i = 0; i < words.length; i++) {
      x ^= x << 13; x ^= x >>> 17; x ^= x << 5;
      words[i] = x;
    }
  } else {
    for (let i = 0; i < whole; i++) {
      x ^= x << 13; x ^= x >>> 17; x ^= x << 5;
      bytes[i] = x;
    }
  }
  for (let i = whole; i < len; i++) {
    x ^= x << 13; x ^= x >>> 17; x ^= x << 5;
    bytes[i] = x;
  }
}
