/*
 * The command line's defaults: where a host's run directory is, and how much memory a host may
 * have. Apart from ./host.ts so that a verb that only talks to a running host loads none of the
 * code that builds one.
 *
 * Xen: /var/run/xen is one per machine; ringvisor's default run directory is one per user
 * ($XDG_RUNTIME_DIR/ringvisor, else <tmpdir>/ringvisor-<uid>), wherever the command is run from,
 * so `ringvisor list` from any directory finds the host that `ringvisor host` started from any
 * other. $RINGVISOR_RUN_DIR or --run-dir choose another (a second host, a test).
 */
import { tmpdir, totalmem, userInfo } from 'node:os';
import { join, resolve } from 'node:path';
import { MAX_HOST_MEMORY_MIB } from '../hypervisor/state.ts';

/** $RINGVISOR_RUN_DIR, else one per user: $XDG_RUNTIME_DIR/ringvisor, else <tmpdir>/ringvisor-<uid>. */
export function defaultRunDir(): string {
  if (process.env.RINGVISOR_RUN_DIR) return resolve(process.env.RINGVISOR_RUN_DIR);
  if (process.env.XDG_RUNTIME_DIR) return join(process.env.XDG_RUNTIME_DIR, 'ringvisor');
  return join(tmpdir(), `ringvisor-${userInfo().uid}`);
}

/** Dom0's RAM, MiB (the host's --memory includes it). */
export const DOM0_MEMORY_MIB = 64;
/** The smallest host worth running: Dom0 and room for one small guest (16 MiB). */
export const MIN_HOST_MEMORY_MIB = DOM0_MEMORY_MIB + 16;

/** Why `memoryMiB` cannot be a host's memory, or null if it can. */
export function hostMemoryProblem(memoryMiB: number): string | null {
  const machine = Math.floor(totalmem() / 1048576);
  const max = Math.min(MAX_HOST_MEMORY_MIB, machine);
  if (memoryMiB < MIN_HOST_MEMORY_MIB) {
    return `--memory ${memoryMiB}: a host needs at least ${MIN_HOST_MEMORY_MIB} MiB (Dom0 takes ${DOM0_MEMORY_MIB} MiB, ` +
      'and a guest needs room beside it)';
  }
  if (memoryMiB > max) {
    return `--memory ${memoryMiB}: at most ${max} MiB (${max === machine ? `this machine has ${machine} MiB` :
      `ringvisor's hypervisor manages at most ${MAX_HOST_MEMORY_MIB} MiB: each guest's RAM must fit its P2M window`})`;
  }
  return null;
}
