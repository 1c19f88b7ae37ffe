/*
 * A lock in shared memory for code running on several threads at once.
 *
 * Xen: spin_lock / spin_unlock (xen/common/spinlock.c); Linux's futex-backed mutex for the
 * waiting half. Hypercalls from different vCPU threads touch the same hypervisor state (two
 * domains binding an event channel, a backend mapping a grant while the granter ends it), so
 * those structures carry a lock word, as Xen's do.
 *
 * The word holds 0 (free), 1 (held) or 2 (held, someone may be sleeping on it). Taking it spins
 * a few hundred compare-and-swaps first, because the sections it guards are a handful of
 * loads and stores and the holder is almost always running on the other core; only if that
 * fails does the taker sleep with Atomics.wait, so a holder that was descheduled by the host OS
 * does not make everyone else burn a core. This is the classic futex mutex of Drepper's
 * "Futexes Are Tricky" (mutex3). Atomics are sequentially consistent, so everything written
 * inside the lock is visible to the next holder.
 */

const FREE = 0;
const HELD = 1;
const CONTENDED = 2;
const SPINS = 200;

/** Take the lock at `words[index]`. */
export function spin_lock(words: Int32Array, index: number): void {
  if (Atomics.compareExchange(words, index, FREE, HELD) === FREE) return;
  for (let i = 0; i < SPINS; i++) {
    if (Atomics.load(words, index) === FREE && Atomics.compareExchange(words, index, FREE, HELD) === FREE) return;
  }
  // Slow path: mark contended and sleep until the holder hands it over.
  while (Atomics.exchange(words, index, CONTENDED) !== FREE) {
    Atomics.wait(words, index, CONTENDED);
  }
}

/** Release the lock at `words[index]`, waking one sleeper if there may be one. */
export function spin_unlock(words: Int32Array, index: number): void {
  if (Atomics.exchange(words, index, FREE) === CONTENDED) Atomics.notify(words, index, 1);
}

/** Take two locks of the same table in a fixed order (lowest index first), so two threads never deadlock. */
export function double_lock(words: Int32Array, a: number, b: number): void {
  if (a === b) return spin_lock(words, a);
  spin_lock(words, Math.min(a, b));
  spin_lock(words, Math.max(a, b));
}

export function double_unlock(words: Int32Array, a: number, b: number): void {
  spin_unlock(words, a);
  if (a !== b) spin_unlock(words, b);
}
