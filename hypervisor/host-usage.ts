/*
 * What the host holds right now (domains, frames, grants, event channels, threads), so a test or
 * a soak can prove that a domain's death gives everything back.
 *
 * Xen: no single call; the same figures an administrator reads from `xl info` (free memory),
 * `xl debug-keys g` (grant tables) and `xl debug-keys e` (event channels) after a domain is gone.
 *
 * Apart from host.ts because it is a read-only walk over the shared tables, used by tests and
 * scenarios, not by the lifecycle.
 */
import { portsInUse } from './event-channel.ts';
import { grantsActive, mappingsHeld } from './grant-table.ts';
import { usedFrames } from './page-alloc.ts';
import { D, DOMSTATE_FREE, MAX_DOMAINS, type HypervisorState } from './state.ts';

/** What the host holds, so a test can prove nothing leaks. */
export interface HostUsage {
  domains: number;       // slots not free (includes zombies)
  framesUsed: number;    // guest RAM frames allocated
  grantsActive: number;  // grant entries pinned by a mapping or a copy in progress
  grantMappings: number; // maptrack handles in use
  portsBound: number;    // event-channel ports not closed
  threadsAlive: number;  // vCPU threads running
}

/** `threadsAlive`: the host's count of vCPU threads not yet exited (only it knows). */
export function hostUsage(hv: HypervisorState, threadsAlive: number): HostUsage {
  const u: HostUsage = { domains: 0, framesUsed: usedFrames(hv), grantsActive: 0, grantMappings: 0, portsBound: 0, threadsAlive };
  for (let d = 0; d < MAX_DOMAINS; d++) {
    if (Atomics.load(hv.domains, d * D.WORDS + D.STATE) === DOMSTATE_FREE) continue;
    u.domains++;
    u.grantsActive += grantsActive(hv, d);
    u.grantMappings += mappingsHeld(hv, d);
    u.portsBound += portsInUse(hv, d);
  }
  return u;
}
