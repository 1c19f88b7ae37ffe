/*
 * The toolstack's domain lifecycle: create a VM from its config, destroy it, ask it to shut down,
 * and act when it has, as Xen's libxl does in Dom0 for `xl`.
 *
 * Xen: tools/libs/light/libxl_create.c (libxl_domain_create_new: build paused, devices, device
 * model, unpause), libxl_domain.c (libxl_domain_shutdown / _reboot: write control/shutdown;
 * libxl_domain_destroy → libxl__destroy_domid: device model, devices, the domain, its XenStore),
 * libxl_event.c's domain death watch, and xl's own loop that acts on it (tools/xl/xl_vmcontrol.c:
 * handle_domain_death applies on_poweroff / on_reboot / on_crash; a restart is a destroy followed
 * by a new create from the config xl kept).
 *
 * How the toolstack learns that a domain stopped, faithfully: the hypervisor raises VIRQ_DOM_EXC
 * when a domain shuts down and when it is destroyed (hypervisor/host.ts); Dom0's kernel has it
 * bound and calls domainException(). That only says "look", so this asks for every domain's info
 * (XEN_SYSCTL_getdomaininfolist) and compares with what it manages, as libxl's death watch does
 * after @releaseDomain. (Xen's xenstored binds the virq and fires @releaseDomain; here the one
 * Dom0 kernel runs both, and the toolstack is told directly.) The hypervisor itself does nothing
 * about on_poweroff & co. for these domains: they are built with `preserve`, so the decision is
 * made here, with the config in hand, and a restart brings back the devices too.
 *
 * Domains this toolstack did not create (a harness's, via ./control.ts) can be listed, paused,
 * destroyed; only its own are restarted or cleaned up after death.
 *
 * This file keeps the domains' records and their lifecycle in order. Its neighbours, one concern
 * each: the death watch and xl's on_poweroff / on_reboot / on_crash (./death-watch.ts), what a
 * create claims and how a refusal names its config line (./create-claims.ts), the shutdown request
 * (./shutdown-request.ts), find_domain and renames (./domain-names.ts), `xl list`/`xl info` rows
 * (./xl-list.ts), the save file's ends (./xl-save.ts), and XlError (./xl-error.ts).
 */
import { randomUUID } from 'node:crypto';
import type { SaveResult } from './migration/save-restore.ts';
import { restoreFromFile, saveToFile } from './xl-save.ts';
import type { MigrateHost } from './migration/migrate.ts';
import { EventEmitter } from 'node:events';
import type { DomainInfo } from '../../shared/public/hypercall.ts';
import { XS_RESUME } from '../../shared/public/io/xs_wire.ts';
import { XEN_ESRCH, errnoName, type ShutdownReason } from '../../shared/public/xen.ts';
import type { Dom0 } from '../dom0.ts';
import type { IdeModel } from '../device-models/ide/piix.ts';
import { domainConfigFields } from './config/vmconfig.ts';
import { validateForBoot } from './config/vmcheck.ts';
import { addVbd, removeBackends, startDiskModel } from './devices.ts';
import { addVif, nicFromVif, startNicModel } from './nic.ts';
import type { E1000Model } from '../device-models/e1000/e1000.ts';
import { prepareVm, type PreparedVm } from './prepare.ts';
import type { CreateResult, HostInfo, ListedDomain } from './protocol.ts';
import { removeRunState, writeRunState, type StateWrite } from './state-file.ts';
import { HypercallError } from './xenstore-home.ts';
import { forgetDomainRecord, recordDomain, recordDomainQueued } from './host-record.ts';
import type { ImageLock } from './image-lock.ts';
import { assignPci, buildFailure, diskBackends, lockImages } from './create-claims.ts';
import { XlError } from './xl-error.ts';
import { hostInfo, listedDomain } from './xl-list.ts';
import { requestShutdown } from './shutdown-request.ts';
import { DeathWatch, type WatchedDomain } from './death-watch.ts';
import { resetBackendsForResume } from './resume-reset.ts';
import { DomainNames } from './domain-names.ts';

export interface XlOptions {
  /** The DomU kernel every VM boots (a file URL; `ringvisor host` passes domu/kernel.ts). */
  guestKernel: string;
  /** The control socket, recorded in each VM's state file. */
  socket: string;
  /** The host's run directory, where it lists the state files it writes (./host-record.ts). */
  runDir: string;
  log: (line: string) => void;
}

// Declared in ./xl-error.ts; exported here too, where the toolstack's other files import it from.
export { XlError };

interface XlDomain extends WatchedDomain {
  domid: number;
  uuid: string;
  prepared: PreparedVm;
  /** creating: devices being added; running: up (or paused); shutdown: stopped and kept (preserve); dying: being destroyed. */
  phase: 'creating' | 'running' | 'shutdown' | 'dying';
  dying: Promise<void> | null;
  model: IdeModel | null;
  /** The emulated NICs' device models (model=e1000), in slot order. */
  nics: E1000Model[];
  /** Its disk images, held until it is destroyed (./image-lock.ts). */
  locks: ImageLock[];
  started: string;
  /** Why it stopped, once it has (phase shutdown), as the death watch learned it. */
  shutdownReason?: ShutdownReason;
}

/** A restore's part in boot(): the saved vCPU context, and the memory filled before the unpause. */
interface RestoreHooks {
  /** Writes the memory and sets the vCPU context (XEN_DOMCTL_setvcpucontext). */
  fill(domid: number, nr_pages: number): Promise<void>;
  /** Take the image locks after fill (a migration: the source lets go of them at its suspend). */
  lateLocks?: boolean;
}

const PRESERVE = { on_poweroff: 'preserve', on_reboot: 'preserve', on_crash: 'preserve' } as const;

export class Libxl extends EventEmitter {
  private readonly domains = new Map<number, XlDomain>();
  /** find_domain and libxl_domain_rename, with the names migrations gave (./domain-names.ts). */
  private readonly names = new DomainNames(() => this.hc, () => this.xs, this.domains, (line) => this.opts.log(line));
  private readonly deaths: DeathWatch<XlDomain> = new DeathWatch<XlDomain>({
    records: () => [...this.domains.values()],
    current: (domid) => this.domains.get(domid),
    infoList: () => this.infoList(),
    gone: async (rec) => {
      rec.phase = 'dying';
      rec.dying = this.cleanup(rec.domid, rec);
      await rec.dying;
    },
    preserve: (rec, reason) => {
      rec.phase = 'shutdown';
      rec.shutdownReason = reason;
      // A suspend is a save's or a migration's, whose downtime it starts: the file is written by the thread pool.
      void this.writeState(rec, 'shutdown', reason, reason === 'suspend' ? 'queued' : 'now');
      this.emit('preserved', rec.domid);
    },
    destroy: (domid) => this.destroy(domid),
    restart: async (rec) => {
      const vm = rec.prepared.vm;
      validateForBoot(vm); // the images may have gone meanwhile
      const again = await this.boot(rec.prepared, false);
      this.opts.log(`xl: ${vm.name} restarted as domain ${again.domid}`);
      this.emit('restarted', { from: rec.domid, to: again.domid, name: vm.name });
    },
    log: (line) => this.opts.log(line),
  });
  private createLock: Promise<void> = Promise.resolve();

  constructor(private readonly dom0: Dom0, private readonly opts: XlOptions) {
    super();
  }

  private get hc() { return this.dom0.k.hypercall; }
  private get xs() { return this.dom0.xs; }

  /**
   * xl create: from a VM directory or a config file (an absolute path). One at a time (xl takes a
   * lock for the same reason): two configs naming one VM must not both pass the checks.
   */
  create(path: string, opts: { paused?: boolean } = {}): Promise<CreateResult> {
    const run = this.createLock.then(() => this.createOne(path, opts));
    this.createLock = run.then(() => undefined, () => undefined);
    return run;
  }

  private async createOne(path: string, opts: { paused?: boolean }): Promise<CreateResult> {
    const prepared = await this.prepare(path);
    const rec = await this.boot(prepared, opts.paused ?? false);
    const vm = prepared.vm;
    this.opts.log(`xl: created ${vm.name} as domain ${rec.domid} from ${vm.file}`);
    return {
      domid: rec.domid, name: vm.name, warnings: prepared.warnings, imagesCreated: prepared.imagesCreated,
      consoleLog: prepared.files.consoleLog,
    };
  }

  /* xl's config checks (./prepare.ts), against the domains running and the memory free now. */
  private async prepare(path: string): Promise<PreparedVm> {
    const infos = await this.infoList();
    const phys = await this.hc.sysctl_physinfo();
    if (typeof phys === 'number') throw new XlError('failed', `physinfo: ${errnoName(phys)}`);
    // A dying domain's name is free, as at find_domain (see resolve): a migration's source copy still being destroyed must not refuse the guest's return.
    const running = infos.filter((i) => i.state !== 'dying').map((i) => ({ domid: i.domid, name: i.name, vm: this.domains.get(i.domid)?.prepared.vm }));
    return prepareVm(path, running, phys.free_pages, this.dom0.k.wait);
  }

  /**
   * libxl_domain_create_new after the checks: build paused, devices, device model, state file, unpause.
   * A restore (libxl_domain_create_restore) passes the saved vCPU context and fills the memory
   * before the unpause (./migration/save-restore.ts).
   */
  private async boot(prepared: PreparedVm, paused: boolean, restore?: RestoreHooks): Promise<XlDomain> {
    const vm = prepared.vm;
    const uuid = vm.uuid ?? randomUUID(); // libxl makes one per boot when the config has none
    const backends = await diskBackends(prepared, () => this.infoList());
    const locks = restore?.lateLocks ? [] : lockImages(prepared, this.opts.socket, (line) => this.opts.log(line));
    const built = await this.dom0.toolstack.buildDomain(
      { ...domainConfigFields(vm), kernel: this.opts.guestKernel, cmdline: prepared.cmdline, paused: true, ...PRESERVE },
      { consoleLog: prepared.files.consoleLog, uuid },
    ).catch(async (e: unknown) => {
      for (const l of locks) l.release();
      throw e instanceof HypercallError ? await buildFailure(this.hc, vm, e) : e;
    });
    const rec: XlDomain = {
      domid: built.domid, uuid, prepared, phase: 'creating', dying: null, model: null, nics: [], locks, started: new Date().toISOString(),
    };
    this.domains.set(rec.domid, rec);
    try {
      await assignPci(this.dom0.toolstack, vm, rec.domid);
      for (const [i, disk] of prepared.pvDisks.entries()) await addVbd(this.dom0.toolstack, this.xs, rec.domid, disk, backends[i]);
      for (const vif of prepared.vifs) await addVif(this.dom0.toolstack, this.xs, rec.domid, nicFromVif(vif));
      // libxl starts QEMU before it unpauses an HVM guest: the guest's first port access must find it.
      if (prepared.emulatedDisk) rec.model = startDiskModel(this.dom0.k, rec.domid, vm.maxvcpus, prepared.emulatedDisk);
      prepared.emulatedNics.forEach((v, index) => rec.nics.push(startNicModel(this.dom0.k, rec.domid, vm.maxvcpus, index, v)));
      if (restore) await restore.fill(rec.domid, built.nr_pages);
      if (restore?.lateLocks) rec.locks = lockImages(prepared, this.opts.socket, (line) => this.opts.log(line));
      // A migration's target (lateLocks) is in the guest's downtime here: the file is written by the thread pool.
      void this.writeState(rec, 'running', undefined, restore?.lateLocks ? 'queued' : 'now');
      if (!paused) await this.dom0.toolstack.unpause(rec.domid, vm.name);
      // A driver domain named as a dead one was: it serves the devices that were waiting for it.
      if (vm.driverDomain) await this.dom0.toolstack.driverDomains.adopt(vm.name, rec.domid);
      rec.phase = 'running';
    } catch (e) {
      await this.destroy(rec.domid).catch(() => undefined); // nothing half-made stays behind
      throw e;
    }
    return rec;
  }


  /** xl destroy: the domain stops now; then its device model, XenStore, backends and state file go. */
  destroy(domid: number): Promise<void> {
    if (domid === 0) return Promise.reject(new XlError('domain', 'Domain-0 cannot be destroyed: it is the host\'s control domain'));
    const rec = this.domains.get(domid);
    if (rec?.dying) return rec.dying;
    const work = (async () => {
      const rc = await this.hc.domctl_destroydomain(domid);
      if (rc < 0 && !(rc === -XEN_ESRCH && rec)) throw new XlError('failed', `cannot destroy domain ${domid}: ${errnoName(rc)}`);
      await this.cleanup(domid, rec);
    })();
    if (rec) {
      rec.phase = 'dying';
      rec.dying = work;
    }
    return work;
  }

  /* libxl__destroy_domid's Dom0 half, for a domain the hypervisor no longer runs. */
  private async cleanup(domid: number, rec: XlDomain | undefined): Promise<void> {
    rec?.model?.stop();
    for (const nic of rec?.nics ?? []) nic.stop();
    // Releasing the domain removes every node it owned: its device/ directories, so each backend
    // sees its frontend gone and lets go of rings and grants (shared/kernel/xenbus/backend.ts).
    await this.dom0.toolstack.forgetDomain(domid);
    await removeBackends(this.xs, domid, this.opts.log);
    // The backends have let go (or were removed anyway): the images are free for others.
    for (const l of rec?.locks ?? []) l.release();
    if (rec && this.domains.get(domid) === rec) {
      // By the thread pool: a migration's source destroys its copy while the guest's peers look for it on the target.
      const removed = removeRunState(rec.prepared.files.stateFile, 'queued');
      forgetDomainRecord(this.opts.runDir, domid);
      this.domains.delete(domid);
      this.names.forget(domid);
      this.opts.log(`xl: domain ${domid} (${rec.prepared.vm.name}) destroyed`);
      await removed.catch((e: unknown) => this.opts.log(`xl: domain ${domid}'s state file: ${(e as Error).message}`));
    }
    this.emit('gone', domid);
  }

  /** xl shutdown / xl reboot (./shutdown-request.ts). */
  shutdown(domid: number, kind: 'poweroff' | 'reboot', force: boolean): Promise<'requested' | 'forced'> {
    const hvm = this.domains.get(domid)?.prepared.vm.type === 'hvm';
    return requestShutdown(this.hc, this.xs, domid, kind, force, hvm, (line) => this.opts.log(line));
  }

  /** Resolves once `domid` no longer runs: destroyed, shut down and kept (preserve), or restarted. */
  async waitStopped(domid: number): Promise<void> {
    const stopped = async () => {
      const rec = this.domains.get(domid);
      if (rec) return rec.phase === 'shutdown';
      const info = await this.hc.domctl_getdomaininfo(domid);
      return typeof info === 'number' || info.state === 'shutdown' || info.state === 'dying';
    };
    await new Promise<void>((resolve) => {
      const check = () => void stopped().then((yes) => {
        if (!yes) return;
        this.off('gone', check);
        this.off('preserved', check);
        resolve();
      });
      this.on('gone', check);
      this.on('preserved', check);
      check();
    });
  }

  async pause(domid: number): Promise<void> {
    const rc = await this.hc.domctl_pausedomain(domid);
    if (rc < 0) throw new XlError('failed', `cannot pause domain ${domid}: ${errnoName(rc)}${domid === 0 ? ' (Dom0 is never paused)' : ''}`);
  }

  async unpause(domid: number): Promise<void> {
    const rc = await this.hc.domctl_unpausedomain(domid);
    if (rc < 0) throw new XlError('failed', `cannot unpause domain ${domid}: ${errnoName(rc)}`);
  }

  /** xl's find_domain: a domid or a name (./domain-names.ts). */
  resolve(domain: string): Promise<number> {
    return this.names.resolve(domain);
  }

  async list(): Promise<ListedDomain[]> {
    return (await this.infoList()).map(listedDomain);
  }

  async info(runDir: string): Promise<HostInfo> {
    const p = await this.hc.sysctl_physinfo();
    if (typeof p === 'number') throw new XlError('failed', `physinfo: ${errnoName(p)}`);
    return hostInfo(p, runDir, this.dom0.socketPath, this.opts.socket);
  }

  /** A line in the toolstack's log (the host's), for the daemons beside it (./mem-policy.ts). */
  logLine(line: string): void {
    this.opts.log(line);
  }

  /** Every domain's info, from the hypervisor, under the names it has now. */
  private infoList(): Promise<DomainInfo[]> {
    return this.names.infoList();
  }

  /** VIRQ_DOM_EXC: some domain shut down or was destroyed (./death-watch.ts looks and acts). */
  domainException(): void {
    this.deaths.exception();
  }

  /** xl save DOMAIN FILE (./xl-save.ts). */
  save(domid: number, file: string): Promise<SaveResult> {
    return saveToFile(this.saveHost(), domid, file);
  }

  /** xl restore FILE (./xl-save.ts). */
  restore(file: string, opts: { paused?: boolean } = {}): Promise<{ domid: number; name: string; pages: number }> {
    return restoreFromFile(this.saveHost(), file, opts);
  }

  /** What ./migration needs of this toolstack. */
  saveHost(): MigrateHost {
    return {
      k: this.dom0.k,
      xs: this.xs,
      log: (line) => this.opts.log(line),
      preparedOf: (domid) => this.domains.get(domid)?.prepared ?? null,
      waitStopped: (domid) => this.waitStopped(domid),
      destroy: (domid) => this.destroy(domid),
      rename: (domid, from, to) => this.names.rename(domid, from, to), // libxl_domain_rename (./domain-names.ts)
      renameChecked: (domid, from, to) => this.names.renameChecked(domid, from, to),
      stoppedReason: (domid) => this.domains.get(domid)?.shutdownReason ?? null,
      resume: (domid) => this.resumeSuspended(domid),
      releaseLocks: (domid) => {
        const rec = this.domains.get(domid);
        for (const l of rec?.locks ?? []) l.release();
        if (rec) rec.locks = [];
      },
      bootRestored: (path, fill, paused, opts) => {
        const run = this.createLock.then(async () => {
          const prepared = await this.prepare(path);
          return (await this.boot(prepared, paused, { fill, lateLocks: opts?.lateLocks })).domid;
        });
        this.createLock = run.then(() => undefined, () => undefined);
        return run;
      },
    };
  }

  /**
   * libxl_domain_resume: a domain that suspended for a save or a migration that did not complete
   * runs again here, with the same id (hypervisor/domain-resume.ts). Its images are locked again
   * first: if another host holds them now (the target got as far as starting), it stays suspended.
   */
  async resumeSuspended(domid: number): Promise<void> {
    const rec = this.domains.get(domid);
    if (!rec) throw new XlError('domain', `no domain ${domid} of this toolstack to resume`);
    if (rec.locks.length === 0) rec.locks = lockImages(rec.prepared, this.opts.socket, (line) => this.opts.log(line));
    await this.xs.request(XS_RESUME, [String(domid)]); // xs_resume_domain: xenstored forgets it was shut down
    await resetBackendsForResume(this.xs, domid, (line) => this.opts.log(line)); // the old kernel's rings let go first (./resume-reset.ts)
    const rc = await this.hc.domctl_resumedomain(domid);
    if (rc < 0) throw new XlError('failed', `cannot resume domain ${domid}: ${errnoName(rc)}`);
    rec.phase = 'running';
    rec.shutdownReason = undefined;
    this.writeState(rec, 'running');
    this.opts.log(`xl: domain ${domid} (${rec.prepared.vm.name}) resumed here`);
  }

  /** Destroy every domain this toolstack created (a host going down, as the xendomains script does). */
  async destroyAll(): Promise<number> {
    const ids = [...this.domains.keys()];
    await Promise.all(ids.map((d) => this.destroy(d).catch(() => undefined)));
    return ids.length;
  }

  private writeState(rec: XlDomain, state: 'running' | 'shutdown', reason?: string, how: StateWrite = 'now'): Promise<void> {
    const vm = rec.prepared.vm;
    // The host's record of its domains (./host-record.ts) names the same file all the domain's life.
    if (how === 'now') recordDomain(this.opts.runDir, rec.domid, rec.prepared.files.stateFile);
    else if (state === 'running') void recordDomainQueued(this.opts.runDir, rec.domid, rec.prepared.files.stateFile).catch(() => undefined);
    return writeRunState(rec.prepared.files.stateFile, {
      name: vm.name, config: vm.file, uuid: rec.uuid, domid: rec.domid, state, ...(reason ? { shutdownReason: reason } : {}),
      pid: process.pid, socket: this.opts.socket, started: rec.started,
    }, how).catch((e: unknown) => this.opts.log(`xl: domain ${rec.domid}'s state file: ${(e as Error).message}`));
  }
}
