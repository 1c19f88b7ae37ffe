/*
 * What the sender of a live migration does when the receiver fails after the guest suspended, and
 * the names a guest carries while it moves.
 *
 * Xen: tools/xl/xl_migrate.c, migrate_domain's three endings. Until the sender has tried to say
 * "go" ("domain is yours, you are cleared to unpause"), the guest at the source is the only one
 * that may run: failed_resume renames it back if it was renamed and resumes it
 * (libxl_domain_resume → xc_domain_resume; here hypervisor/domain-resume.ts: the same domain id,
 * its kernel booting in resume mode, its devices reconnecting to this host's backends, which the
 * toolstack first makes let go of the suspended kernel's rings: ../resume-reset.ts). Once "go"
 * may have reached the target, the target may be running its copy: xl's failed_badly resumes
 * nothing, leaves the source as NAME--migratedaway, and tells the administrator to look at both
 * ends, because two running copies of one guest on one shared disk would corrupt it. The one way
 * back from there is the target saying its start failed and then, after destroying its copy,
 * giving the sender permission to resume (migrate.ts turns that into a failed_resume).
 *
 * The names: the receiver's copy is NAME--incoming until it is given the go, the sender's is
 * NAME--migratedaway from the target's "ready" until it is destroyed (or taken back).
 */
import { SaveError } from './save-restore.ts';

/** What recovery needs of the toolstack (a part of migrate.ts's MigrateHost). */
export interface RecoveryHost {
  log(line: string): void;
  rename(domid: number, from: string, to: string): Promise<void>;
  resume(domid: number): Promise<void>;
}

export const incomingName = (name: string): string => `${name}--incoming`;
export const migratedAwayName = (name: string): string => `${name}--migratedaway`;

/**
 * After a failure past the suspend: resume the guest here if that is safe, and return the error
 * for the caller to throw (it says what became of the guest).
 */
export async function recoverAtSender(h: RecoveryHost, domid: number, name: string,
  step: { renamedAway: boolean; goSent: boolean }, why: string): Promise<SaveError> {
  if (step.goSent) {
    h.log(`xl migrate: ${name}: ** migration failed during the final handshake ** (${why}); the domain's state is undefined: ` +
      `check both hosts for a running copy before resuming at most one`);
    return new SaveError(`migration of ${name} failed during the final handshake: ${why}; its state is undefined: check both ` +
      `hosts for a running copy, then resume at most one (it is kept here, suspended, as ${migratedAwayName(name)})`);
  }
  try {
    if (step.renamedAway) await h.rename(domid, migratedAwayName(name), name);
    await h.resume(domid);
  } catch (e) {
    h.log(`xl migrate: ${name}: migration failed after the suspend (${why}), and resuming it here failed too: ${(e as Error).message}`);
    return new SaveError(`migration of ${name} failed after it was suspended: ${why}; resuming it here failed: ${(e as Error).message}`);
  }
  h.log(`xl migrate: ${name}: migration failed after the suspend (${why}); resumed at the sender`);
  return new SaveError(`migration of ${name} failed after it was suspended: ${why}; the guest was resumed on this host`);
}
