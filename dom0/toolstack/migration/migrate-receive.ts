/*
 * Live migration, the receiving end: xl migrate-receive, one incoming guest per connection.
 *
 * Xen: tools/xl/xl_migrate.c (migrate_receive) and libxl_domain_create_restore, which makes the
 * domain before it reads libxc's stream (tools/libs/guest/xg_sr_restore.c). The handshake and the
 * sending end are in ./migrate.ts; the records are read by ./stream-receive.ts.
 */
import type { Socket } from 'node:net';
import { errnoName } from '../../../shared/public/xen.ts';
import { ForeignPages } from './foreign-pages.ts';
import { SaveError, builderPages, checkPages, checkSavedConfig, setVcpuContext, writeBatchStreamed } from './save-restore.ts';
import { StreamHoles, restoreBalloonTarget, restoreHoles } from './balloon-state.ts';
import { incomingName } from './sender-recovery.ts';
import { SocketInput } from './socket-input.ts';
import type { ImageRecords } from './stream-read.ts';
import { receiveStream } from './stream-receive.ts';
import { threadTime, threadTimeSince, type ThreadTime } from './thread-time.ts';
import type { SavedConfig } from './stream-write.ts';
import {
  MIGRATE_PERMISSION, MIGRATE_RECEIVER_BANNER, MIGRATE_RECEIVER_BUILT, MIGRATE_RECEIVER_READY, MIGRATE_REPORT, send, type MigrateHost,
} from './migrate.ts';

/**
 * xl migrate-receive: one incoming guest on `sock`. Resolves with its new domain id once it runs.
 * As libxl_domain_create_restore does, the domain is built (paused, its devices added) when the
 * stream's config arrives, and each PAGE_DATA batch goes into it as it comes, page by page from
 * the socket's chunks, from the moment its memory exists (xg_sr_restore.c writes into the domain
 * libxl has just made). Its vCPU threads start meanwhile (the host's spare, kernel loaded, or a
 * fresh one): they are needed at the unpause, not at the first page. MIGRATE_RECEIVER_BUILT says
 * they are up; the sender suspends the guest only after it, so that its stop-and-copy waits here
 * only for the last pages, the holes and the vCPU context: the balloon target as saved is set
 * with the build (libxl's order, ./balloon-state.ts), the state file is written by the thread
 * pool, and the rename back to the guest's name is checked at the build and only written at the
 * go, then the unpause, in xl's order (migrate_receive: libxl_domain_rename, libxl_domain_unpause).
 */
export async function migrateReceive(h: MigrateHost, sock: Socket, paused = false): Promise<{ domid: number; name: string; pages: number }> {
  const input = new SocketInput(sock);
  await send(sock, MIGRATE_RECEIVER_BANNER);
  const what = 'migration stream';
  const domain = deferred<{ domid: number; nr_pages: number }>();
  const ended = deferred<number>(); // vCPU 0's resume_gfn, at the stream's END
  let built: Promise<number> | null = null;
  let fp: ForeignPages | null = null;
  let name = '';
  let records!: ImageRecords;
  let saved!: SavedConfig;
  const holes = new StreamHoles(); // the balloon's holes as the batches name them, ready at the END
  let tConfig = 0;
  let tMemory = 0;
  let tReady = 0;
  let tFilled = 0;
  // The rename back to the guest's name, checked once the domain is built (see below).
  let renaming: Promise<() => Promise<void>> | null = null;
  let tEnd = 0;
  const buildMs = [NaN, NaN, NaN]; // after the memory: the rename to NAME--incoming, the balloon target, the vCPU threads loaded
  let [tt0, ttStream] = [null, null] as (ThreadTime | null)[]; // this thread's CPU and waits for one, over the stream (./thread-time.ts)
  try {
    records = await receiveStream(input, what, {
      config(c) {
        tConfig = performance.now();
        checkSavedConfig(c);
        saved = c;
        name = c.name;
        built = h.bootRestored(c.file, async (d, nr_pages) => {
          checkPages(c, nr_pages);
          // The domain and its memory exist (domctl createdomain populated it): pages go in from
          // now on, as libxc's restore writes into the domain libxl has just made. Its vCPU
          // threads load their kernel meanwhile (host business: a fresh thread, a few hundred ms
          // here, nothing in Xen); they must be up before the unpause, not before the first page.
          tMemory = performance.now();
          tt0 = threadTime();
          domain.resolve({ domid: d, nr_pages });
          // xl creates it as NAME--incoming; here it is renamed as soon as it is built.
          // The balloon target as saved goes with the build, as libxl sets it (./balloon-state.ts):
          // two domctls and a xenstore write, not in the downtime.
          const timed = <T>(p: Promise<T>, i: number): Promise<T> => p.finally(() => { buildMs[i] = performance.now() - tMemory; });
          const [, , rc] = await Promise.all([
            timed(h.rename(d, c.name, incomingName(c.name)), 0), timed(restoreBalloonTarget(h.k, h.xs, d, saved.targetKiB), 1),
            timed(h.k.hypercall.domctl_vcpus_loaded(d), 2),
          ]);
          if (rc < 0) throw new SaveError(`the new domain's vCPUs did not start: ${errnoName(rc)}`);
          // libxl_domain_rename's checks for the go (a domain list from the hypervisor, through the
          // control thread), made now, not at "ready": the control thread may be busy then (the
          // source's destroy of the last move, the hosts' network cards) and the go would wait for
          // it (289 ms once, at load 20). At the go the write re-checks the name against this
          // toolstack's own domains (libxl.ts renameChecked), so nothing named NAME since is missed.
          renaming = h.renameChecked(d, incomingName(c.name), c.name);
          renaming.catch(() => undefined); // a failure is met at the go
          tReady = performance.now();
          // The sender suspends the guest only after this line (MIGRATE_RECEIVER_BUILT): the
          // unpause will not wait for a thread.
          void send(sock, MIGRATE_RECEIVER_BUILT).catch(() => undefined); // a dead sender shows in the stream
          const resume_gfn = await ended.promise;
          // What the restore of a save file does (./save-restore.ts): holes stay holes.
          restoreHoles(h.k, d, holes.list(), builderPages(nr_pages));
          setVcpuContext(h.k, d, resume_gfn);
          tFilled = performance.now();
        }, true, { lateLocks: true });
        built.catch((e: unknown) => domain.reject(e as Error)); // a failed build ends the receiving
      },
      async pageData(head, data) {
        const d = await domain.promise;
        fp ??= new ForeignPages(h.k, d.domid);
        await writeBatchStreamed(fp, d.nr_pages, head, data);
        holes.note(head);
      },
    });
    const vcpu0 = records.vcpus.find((v) => v.vcpu === 0);
    if (!vcpu0) throw new SaveError('the stream has no context for vCPU 0');
    ended.resolve(vcpu0.resume_gfn);
    tEnd = performance.now();
    ttStream = threadTimeSince(tt0);
  } catch (e) {
    ended.reject(e as Error); // the half-built domain goes (boot destroys what fill failed in)
    await (built as Promise<number> | null)?.catch(() => undefined);
    throw e;
  } finally {
    (fp as ForeignPages | null)?.close();
  }
  const domid = await built!;
  const tBuilt = performance.now();
  // The rename to the guest's own name was checked at the build (above), and is done at the go:
  // the downtime keeps only its xenstore write. A check that failed then is made again now, while
  // the go is on its way, as it was before: a migration to the same host (xl migrate NAME
  // localhost) finds the source still called NAME at the build; it is NAME--migratedaway by the go.
  let checkedAt = renaming === null ? '"ready"' : 'the build';
  const again = () => { checkedAt = '"ready" (again)'; return h.renameChecked(domid, incomingName(name), name); };
  const renamed = renaming === null ? again() : (renaming as Promise<() => Promise<void>>).catch(again);
  renamed.catch(() => undefined); // a failure is met at the go
  try {
    await send(sock, MIGRATE_RECEIVER_READY);
    await input.expect(MIGRATE_PERMISSION);
  } catch (e) {
    // The sender is gone before it cleared us: its copy is the guest; ours goes (xl does the same).
    await renamed.catch(() => undefined);
    await h.destroy(domid);
    throw e;
  }
  // Given the go: our copy takes the guest's name and runs. If that fails, xl reports it, destroys
  // its copy and gives the sender permission to resume the guest at its end.
  let failed: string | null = null;
  const tGo = performance.now();
  let tRenamed = tGo;
  try {
    await (await renamed)();
    tRenamed = performance.now();
    if (!paused) {
      const rc = await h.k.hypercall.domctl_unpausedomain(domid);
      if (rc < 0) throw new Error(`unpause: ${errnoName(rc)}`);
    }
  } catch (e) {
    failed = (e as Error).message;
  }
  const tRunning = performance.now();
  await send(sock, MIGRATE_REPORT);
  await send(sock, new Uint8Array([failed === null ? 0 : 1]));
  if (failed !== null) {
    await h.destroy(domid);
    await send(sock, MIGRATE_PERMISSION);
    sock.end();
    throw new SaveError(`${name} could not be started here (${failed}); the sender may resume it`);
  }
  sock.end();
  // The stream's own times, for the migrate bench: how long it waited for the domain's memory
  // (no page is read before), how long until its vCPU threads were up (pages meanwhile), and from
  // the domain made to the stream's END.
  h.log(`xl migrate-receive: ${name} is domain ${domid} here: ${records.pages} pages received; the stream waited ` +
    `${(tMemory - tConfig).toFixed(1)} ms for the domain to be built, its vCPUs were up ${(tReady - tConfig).toFixed(1)} ms after the config, ` +
    `then took ${(tEnd - tMemory).toFixed(1)} ms to its END; from the END, ${(tFilled - tEnd).toFixed(1)} ms to the holes given back and the vCPU context set, ` +
    `${(tBuilt - tEnd).toFixed(1)} ms to "ready", ${(tRunning - tBuilt).toFixed(1)} ms from "ready" to unpaused; ` +
    `the go: its rename checked at ${checkedAt}, renamed ${(tRenamed - tGo).toFixed(2)} ms after it, unpaused ${(tRunning - tRenamed).toFixed(2)} ms after that` +
    `; after the memory existed: renamed ${buildMs[0].toFixed(1)} ms, balloon target set ${buildMs[1].toFixed(1)}, vCPU threads loaded ${buildMs[2].toFixed(1)}` +
    (ttStream ? `; over the stream this thread ran ${ttStream.cpuMs.toFixed(1)} ms and waited ${ttStream.runqMs.toFixed(1)} ms for a CPU` : ''));
  return { domid, name, pages: records.pages };
}


function deferred<T>(): { promise: Promise<T>; resolve(v: T): void; reject(e: Error): void } {
  let resolve!: (v: T) => void;
  let reject!: (e: Error) => void;
  const promise = new Promise<T>((res, rej) => { resolve = res; reject = rej; });
  promise.catch(() => undefined); // a rejection nobody waits for is not unhandled
  return { promise, resolve, reject };
}
