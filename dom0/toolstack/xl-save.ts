/*
 * `xl save` and `xl restore`: a domain's saved image written to, and read from, a file.
 *
 * Xen: tools/xl/xl_saverestore.c (main_save: libxl_domain_suspend to a file descriptor, then the
 * domain is destroyed; main_restore: libxl_domain_create_restore from one). The stream itself,
 * its records and the suspend, are ./migration/save-restore.ts's; this is the file's end of it.
 *
 * Apart from libxl.ts because it needs nothing of libxl's records beyond what ./migration asks
 * of any toolstack (MigrateHost).
 */
import { closeSync, fsyncSync, openSync, readFileSync, writeSync } from 'node:fs';
import type { MigrateHost } from './migration/migrate.ts';
import { SaveError, restoreFromStream, suspendAndSave, type SaveResult } from './migration/save-restore.ts';
import { SaveFileError } from './migration/stream-read.ts';
import { XlError } from './xl-error.ts';

/** xl save DOMAIN FILE: suspend it, write it out, destroy it (./migration/save-restore.ts). */
export async function saveToFile(host: MigrateHost, domid: number, file: string): Promise<SaveResult> {
  const out = openSync(file, 'w');
  try {
    const r = await suspendAndSave(host, domid, (chunk) => { writeSync(out, chunk); });
    fsyncSync(out);
    await host.destroy(domid);
    return r;
  } catch (e) {
    throw e instanceof SaveError ? new XlError('failed', e.message) : e;
  } finally {
    closeSync(out);
  }
}

/** xl restore FILE: the whole file checked first; a bad one starts nothing. */
export async function restoreFromFile(host: MigrateHost, file: string, opts: { paused?: boolean } = {}): Promise<{ domid: number; name: string; pages: number }> {
  let bytes: Uint8Array;
  try {
    bytes = readFileSync(file);
  } catch (e) {
    throw new XlError('failed', `cannot read ${file}: ${(e as Error).message}`);
  }
  try {
    return await restoreFromStream(host, bytes, file, opts);
  } catch (e) {
    throw e instanceof SaveError || e instanceof SaveFileError ? new XlError('failed', e.message) : e;
  }
}
