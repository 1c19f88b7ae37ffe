/*
 * The host: one Node process, whose main thread is the hypervisor's control thread.
 *
 * Xen: the parts of Xen that start and stop CPUs' work (domain_create, vcpu creation,
 * domain_pause, domain_shutdown, domain_kill).
 *
 * The control thread builds domains, starts one worker thread per vCPU, and tears them down;
 * it is never on a data path. It talks to vCPU threads only with lifecycle messages: a vCPU
 * reports a shutdown or forwards a privileged domctl; the control thread asks a vCPU to pause
 * or stop by setting a request bit in shared memory and kicking it (see schedule.ts). When a
 * domain has shut down, and again when it has been destroyed, it raises VIRQ_DOM_EXC for Dom0
 * (Xen: send_global_virq in domain_shutdown's finalisation and in domain_kill), so Dom0's
 * toolstack learns of it without being told by anyone else.
 *
 * on_poweroff / on_reboot / on_crash: as in Xen, the hypervisor only records the shutdown (the
 * domain stays, stopped, in state shutdown) and raises VIRQ_DOM_EXC; acting on it is the job of
 * whoever created the domain: Dom0's toolstack (dom0/toolstack/libxl.ts for `xl`'s VMs,
 * dom0/toolstack/control.ts for a harness's), or, for domains a harness creates here directly
 * with no Dom0 toolstack, the harness (scenarios/bare-toolstack.ts). The one exception is Dom0
 * itself, which has no toolstack above it: when the control domain shuts down, Xen reboots or
 * halts the machine; here the host destroys it and carries on for its owner to close.
 *
 * Its neighbours, each one concern: the domctl dispatch (./domctl.ts) and its argument checks
 * (./domctl-checks.ts), getdomaininfo (./domain-info.ts), the boot options (./host-options.ts),
 * the leak accounting (./host-usage.ts), starting and stopping the vCPU threads (./vcpu-threads.ts).
 * This file keeps the lifecycle.
 */
import { EventEmitter } from 'node:events';
import { availableParallelism } from 'node:os';
import { VIRQ_DOM_EXC } from '../shared/public/event_channel.ts';
import type { CreatedDomain, DomainConfig, DomainInfo, PhysInfo } from '../shared/public/hypercall.ts';
import { SHUTDOWN_NAMES, XEN_EINVAL, XEN_ENOMEM, XEN_ESRCH, errnoName, type ShutdownReason } from '../shared/public/xen.ts';
import { DomctlError, validateConfig } from './domctl-checks.ts';
import { do_domctl, type DomainRecords } from './domctl.ts';
import { domainCounters, getdomaininfo } from './domain-info.ts';
import { defaultDom0VcpusPin, defaultPcpus, defaultScrub, type HostOptions } from './host-options.ts';
import { IdleScrubber, scrubStats } from './mm/scrub.ts';
import { hostUsage, type HostUsage } from './host-usage.ts';
import { build_domain, domain_abort, domain_create, domain_kill_begin, domain_kill_finish, relinquish_memory } from './domain-build.ts';
import { domain_resume_prepare } from './domain-resume.ts';
import { send_global_virq, vcpu_kick } from './event-channel.ts';
import { freeFrames, initAllocator } from './page-alloc.ts';
import {
  D, DOMSTATE_FREE, DOMSTATE_RUNNING, DOMSTATE_SHUTDOWN, MAX_DOMAINS, RUNSTATE_running, V, VREQ_CHECK, XENHEAP_FRAMES,
  HypervisorState, allocateBuffers,
} from './state.ts';
import { HostScheduler } from './sched/host-sched.ts';
import { pci_init, pci_reassign_to_dom0 } from './passthrough/pci.ts';
import { sc_detach_all } from './passthrough/storage-controller.ts';
import { PCI_DEVICES, PCI_NIC0 } from '../shared/public/hw/sc.ts';
import { PassthroughNic } from './passthrough/nic.ts';
import { MD, md } from './mm/mm-state.ts';
import { MmDaemons } from './mm/mm-daemons.ts';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { mmCounters } from './mm/counters.ts';
import { VcpuSpares } from './vcpu-spares.ts';
import { VCPU_ENTRY, startVcpus, stopVcpus, vcpuLeft, type DomainEntry, type VcpuThreadHost } from './vcpu-threads.ts';
import { DEFAULT_WAIT_POLICY, type WaitPolicy } from '../shared/wait.ts';


// Declared in their own files (see the header); exported here too, where callers import them from.
export { DomctlError, defaultPcpus, type HostOptions, type HostUsage };



export interface ShutdownEvent { domid: number; name: string; reason: ShutdownReason; detail: string }

export class Host extends EventEmitter {
  readonly hv: HypervisorState;
  /** The pCPU slots and the credit scheduler's controls. */
  readonly sched: HostScheduler;
  /** The host's network card (PCI_NIC0), Dom0's until assigned elsewhere. */
  readonly nic: PassthroughNic;
  /** The sharing scanner and the pager (mm/mm-daemons.ts), off until the toolstack turns them on. */
  readonly mm: MmDaemons;
  private readonly pagingDir: string;
  private readonly ownPagingDir: boolean;
  private readonly entries = new Map<number, DomainEntry>();
  private threads = 0;
  private readonly spares: VcpuSpares;
  /** The idle scrubber (./mm/scrub.ts), none in scrub mode 'free'. */
  private readonly scrubber: IdleScrubber | null;
  private closing = false;
  private readonly log: (line: string) => void;
  /** The waiting policy this hypervisor's trapping vCPUs follow (HostOptions.wait). */
  readonly wait: WaitPolicy;
  /** What ./vcpu-threads.ts may use of this host. */
  private readonly threadHost: VcpuThreadHost;
  /** What ./domctl.ts may see of `entries`. */
  private readonly records: DomainRecords = {
    exists: (d) => this.entries.has(d),
    loaded: (d) => this.entries.get(d)?.loaded ?? null,
    vcpuThreads: (d) => this.entries.get(d)?.workers.length ?? -1,
    log: (line) => this.log(line),
  };

  constructor(opts: HostOptions = {}) {
    super();
    this.wait = opts.wait ?? DEFAULT_WAIT_POLICY;
    this.hv = new HypervisorState(allocateBuffers(opts.memoryMiB ?? 256));
    this.spares = new VcpuSpares(VCPU_ENTRY, this.hv.buffers);
    if (opts.spareKernel) this.spares.prepare(opts.spareKernel);
    initAllocator(this.hv, opts.scrub ?? defaultScrub());
    this.scrubber = scrubStats(this.hv).mode === 'idle' ? IdleScrubber.start(this.hv, (l) => this.log(l)) : null;
    pci_init(this.hv);
    this.sched = new HostScheduler(this.hv, opts.pcpus ?? defaultPcpus(), (l) => this.log(l), opts.dom0_vcpus_pin ?? defaultDom0VcpusPin());
    this.pagingDir = opts.pagingDir ?? mkdtempSync(join(tmpdir(), 'ringvisor-paging-'));
    this.ownPagingDir = opts.pagingDir === undefined;
    this.mm = new MmDaemons(this.hv, {
      domUs: () => [...this.entries.values()].filter((e) => !e.privileged && Atomics.load(this.hv.domains, e.domid * D.WORDS + D.STATE) === DOMSTATE_RUNNING)
        .map((e) => ({ domid: e.domid, pages: e.built.nr_pages })),
      pause: (d) => this.pause(d),
      unpause: (d) => this.unpause(d),
      isQuiescent: (d) => this.isQuiescent(d),
    }, this.pagingDir);
    this.log = opts.log ?? ((line) => process.stderr.write(`${line}\n`));
    this.nic = new PassthroughNic(this.hv, PCI_NIC0, (line) => this.log(line));
    this.threadHost = {
      hv: this.hv, wait: this.wait, sched: this.sched, spare: (kernel, boot) => this.spares.take(kernel, boot),
      threads: (delta) => { this.threads += delta; }, log: (line) => this.log(line),
      console: (entry, text) => {
        this.emit('console', { domid: entry.domid, text });
        if (this.listenerCount('console') === 0) this.log(`(d${entry.domid}) ${text.replace(/\n$/, '')}`);
      },
      xenLog: (entry, text) => {
        this.log(text);
        this.emit('xen-log', { domid: entry.domid, text });
      },
      shutdown: (entry, reason, detail) => void this.onShutdown(entry, reason, detail),
      domctl: (op, args) => this.domctl(op, args),
    };
  }

  /**
   * domctl createdomain + build + start the vCPUs. `privileged` makes the control domain,
   * which must be the first, Dom0, as Xen's boot creates it.
   */
  async createDomain(config: DomainConfig, opts: { privileged?: boolean } = {}): Promise<number> {
    const privileged = opts.privileged ?? false;
    validateConfig(config);
    const slots = this.sched.pcpus;
    for (const c of [...(config.cpus ?? []), ...(config.cpus_soft ?? []), ...(config.vcpu_hard_affinity ?? []).flat(), ...(config.vcpu_soft_affinity ?? []).flat()]) {
      if (slots > 0 && c >= slots) throw new RangeError(`domain config ${config.name}: cpus names pCPU ${c}, but this host has pCPUs 0..${slots - 1}`);
    }
    const initdomain = privileged && Atomics.load(this.hv.domains, D.STATE) === DOMSTATE_FREE;
    if (privileged && !initdomain) throw new DomctlError(XEN_EINVAL, 'only Dom0 is privileged in ringvisor, and it already exists');
    // Every vCPU it may ever have is built now (Xen: max_vcpus); the first `vcpus` are up.
    const maxVcpus = config.max_vcpus ?? config.vcpus;
    const domid = domain_create(this.hv, privileged, initdomain, maxVcpus, config.vcpus);
    // Xen's createdomain answers ENOMEM when no domain id is free.
    if (domid < 0) throw new DomctlError(XEN_ENOMEM, `no free domain slot (all ${MAX_DOMAINS} in use)`);
    // The guest sees maxmem; its balloon gives back what is above memory. max_pages gets xl's slack.
    const physKiB = Math.max(config.memoryKiB, config.maxmemKiB ?? 0);
    // max_pages starts at the physmap's size (the save code walks gfns up to it); mem-set and
    // mem-max add xl's slack (LIBXL_MAXMEM_CONSTANT) when they move it.
    const built = build_domain(this.hv, domid, physKiB, config.cmdline ?? '');
    if (typeof built !== 'number') Atomics.store(this.hv.mm, md(domid, MD.POD_TARGET), Math.ceil(config.memoryKiB / 4));
    if (typeof built === 'number') {
      domain_abort(this.hv, domid);
      throw new DomctlError(-built, `cannot build ${config.name}: ${errnoName(built)} (${config.memoryKiB} KiB asked, ` +
        `${freeFrames(this.hv) * 4} KiB free)`);
    }
    const entry: DomainEntry = { domid, built, config, privileged, workers: [], exited: [], loaded: [], loadedNow: [], createdAt: Date.now(), stopping: false, destroying: null };
    this.sched.domainCreated(domid, maxVcpus, config);
    this.entries.set(domid, entry);
    Atomics.store(this.hv.domains, domid * D.WORDS + D.STATE, DOMSTATE_RUNNING);
    // A restore's saved vCPU context (XEN_DOMCTL_setvcpucontext at build; a migration sets it later).
    if (config.resume_gfn !== undefined) Atomics.store(this.hv.domains, domid * D.WORDS + D.RESUME_GFN, config.resume_gfn + 1);
    if (config.paused) {
      Atomics.store(this.hv.domains, domid * D.WORDS + D.PAUSE_COUNT, 1);
      for (let v = 0; v < maxVcpus; v++) Atomics.store(this.hv.vcpus, this.hv.vcpu(domid, v, V.REQUEST), VREQ_CHECK);
    }
    startVcpus(this.threadHost, entry, maxVcpus);
    this.emit('created', { domid, name: config.name });
    return domid;
  }


  /**
   * XEN_DOMCTL_resumedomain for a domain that suspended (./domain-resume.ts): same id, same memory,
   * fresh vCPU threads booting the kernel in resume mode. EINVAL if it is not suspended.
   */
  async resumeDomain(domid: number): Promise<void> {
    const entry = this.entries.get(domid);
    if (!entry) throw new DomctlError(XEN_ESRCH, `no domain ${domid}`);
    if (entry.destroying) throw new DomctlError(XEN_EINVAL, `domain ${domid} is being destroyed`);
    await Promise.all(entry.exited); // the suspended kernel's threads are gone (they stopped at the shutdown)
    const nr = entry.workers.length;
    const saved = domain_resume_prepare(this.hv, entry.built, entry.config.vcpus);
    if (saved < 0) throw new DomctlError(XEN_EINVAL, `domain ${domid} (${entry.config.name}) is not suspended`);
    entry.workers = [];
    entry.exited = [];
    entry.loaded = [];
    entry.loadedNow = [];
    entry.stopping = false;
    this.sched.domainCreated(domid, nr, entry.config);
    startVcpus(this.threadHost, entry, nr); // D.RESUME_GFN still names the saved context
    this.log(`(XEN) d${domid} (${entry.config.name}) resumed from its suspend (context at gfn ${saved})`);
    this.emit('resumed', { domid, name: entry.config.name });
  }


  /** A domain shut itself down (or crashed): stop its other vCPUs, record it, tell Dom0 (VIRQ_DOM_EXC). */
  private async onShutdown(entry: DomainEntry, reason: ShutdownReason, detail: string): Promise<void> {
    const c = entry.config;
    if (reason === 'crash') this.log(`(XEN) domain ${entry.domid} (${c.name}) crashed: ${detail}`);
    const gone = stopVcpus(this.hv, this.sched, entry);
    // __domain_finalise_shutdown: the toolstack is told once every vCPU has stopped running guest
    // code; the threads' own teardown (host business, tens of ms) goes on meanwhile.
    await Promise.race([gone, Promise.all(entry.workers.map((_, v) => vcpuLeft(this.hv, entry.domid, v)))]);
    send_global_virq(this.hv, VIRQ_DOM_EXC);
    await gone;
    const event: ShutdownEvent = { domid: entry.domid, name: c.name, reason, detail };
    this.emit('shutdown', event);
    // The control domain has no toolstack above it (see the header).
    if (entry.privileged && !entry.destroying) await this.destroy(entry.domid);
  }



  /** xl destroy: stop the threads, tear the domain down. Destroying twice waits for the first. */
  destroy(domid: number): Promise<void> {
    const entry = this.entries.get(domid);
    if (!entry) return Promise.reject(new DomctlError(XEN_ESRCH, `no domain ${domid}`));
    entry.destroying ??= (async () => {
      await stopVcpus(this.hv, this.sched, entry);
      // XEN_DOMCTL_destroydomain, continued until done (./domain-build.ts domain_kill): this
      // thread's other work (the network card, the other domains' domctls) runs between pieces.
      domain_kill_begin(this.hv, domid);
      for (let gfn = 0; (gfn = relinquish_memory(this.hv, domid, gfn, 1)) >= 0;) await new Promise(setImmediate);
      domain_kill_finish(this.hv, domid);
      // Xen reassigns a dead domain's devices to the hardware domain (its DMA was confined to
      // frames that are now freed, and it has no owner left to program it).
      for (const dev of pci_reassign_to_dom0(this.hv, domid)) this.log(`(XEN) d${domid} is gone: ${PCI_DEVICES[dev]} reassigned to Dom0`);
      this.mm.forget(domid);
      this.entries.delete(domid);
      send_global_virq(this.hv, VIRQ_DOM_EXC);
      this.emit('destroyed', { domid, name: entry.config.name });
    })();
    return entry.destroying;
  }

  /** xl pause: the vCPUs stop at their next preemption point and stay stopped. */
  pause(domid: number): void {
    const entry = this.entries.get(domid);
    if (!entry) throw new DomctlError(XEN_ESRCH, `no domain ${domid}`);
    Atomics.add(this.hv.domains, domid * D.WORDS + D.PAUSE_COUNT, 1);
    for (let v = 0; v < entry.workers.length; v++) {
      Atomics.or(this.hv.vcpus, this.hv.vcpu(domid, v, V.REQUEST), VREQ_CHECK);
      vcpu_kick(this.hv, domid, v);
      this.sched.kickWaiter(domid, v); // one queued for a slot leaves the runqueue (schedule.ts waitForSlot)
    }
  }

  unpause(domid: number): void {
    if (!this.entries.has(domid)) throw new DomctlError(XEN_ESRCH, `no domain ${domid}`);
    const w = domid * D.WORDS + D.PAUSE_COUNT;
    if (Atomics.load(this.hv.domains, w) > 0) Atomics.sub(this.hv.domains, w, 1);
    Atomics.notify(this.hv.domains, w);
  }

  /** True once no vCPU of the domain is running (paused ones wait, blocked ones sleep). */
  isQuiescent(domid: number): boolean {
    const entry = this.entries.get(domid);
    if (!entry) return true;
    return entry.workers.every((_, v) => Atomics.load(this.hv.vcpus, this.hv.vcpu(domid, v, V.RUNSTATE)) !== RUNSTATE_running);
  }

  /** xl shutdown / reboot, the forced form (SCHEDOP_remote_shutdown): the domain stops now. */
  async shutdown(domid: number, reason: ShutdownReason = 'poweroff'): Promise<void> {
    const entry = this.entries.get(domid);
    if (!entry) throw new DomctlError(XEN_ESRCH, `no domain ${domid}`);
    const base = domid * D.WORDS;
    if (Atomics.compareExchange(this.hv.domains, base + D.STATE, DOMSTATE_RUNNING, DOMSTATE_SHUTDOWN) !== DOMSTATE_RUNNING) return;
    Atomics.store(this.hv.domains, base + D.SHUTDOWN_REASON, SHUTDOWN_NAMES.indexOf(reason));
    await this.onShutdown(entry, reason, 'shut down by the toolstack');
  }

  /** The config a domain was created with (a harness's toolstack reads its on_* and restarts from it). */
  domainConfig(domid: number): DomainConfig | null {
    return this.entries.get(domid)?.config ?? null;
  }

  /** The builder's record of a domain: its store and console pages and ports. */
  built(domid: number): CreatedDomain | null {
    return this.entries.get(domid)?.built ?? null;
  }

  info(domid: number): DomainInfo | null {
    const entry = this.entries.get(domid);
    if (!entry) return null;
    return getdomaininfo(this.hv, domid, entry.config.name, entry.workers.length, entry.built.nr_pages);
  }

  /** XEN_SYSCTL_physinfo, for `xl info`. */
  physinfo(): PhysInfo {
    const hv = this.hv;
    return {
      nr_cpus: this.sched.pcpus || availableParallelism(),
      total_pages: hv.nrFrames - XENHEAP_FRAMES,
      free_pages: freeFrames(hv),
      scrub_pages: scrubStats(hv).dirty,
      nr_domains: this.usage().domains,
      max_domains: MAX_DOMAINS,
      mm: mmCounters(hv),
      pcpus: this.sched.pcpuLoad(),
    };
  }

  list(): DomainInfo[] {
    return [...this.entries.keys()].sort((a, b) => a - b).map((d) => this.info(d)!);
  }

  usage(): HostUsage {
    return hostUsage(this.hv, this.threads);
  }

  /** Hypervisor counters summed over a domain's vCPUs. */
  counters(domid: number): Record<string, number> {
    return domainCounters(this.hv, domid);
  }

  /** domctl from a privileged vCPU (./domctl.ts; the privilege check was made in the caller's thread). */
  private domctl(op: string, args: unknown[]): Promise<unknown> {
    return do_domctl(this, this.records, op, args);
  }

  /** Settles when the host's spare vCPU thread is loaded and no replaced one is still leaving (./vcpu-spares.ts). */
  sparesSettled(): Promise<void> {
    return this.spares.settled();
  }

  /** True once close() has begun: a toolstack restarts nothing from then on. */
  get isClosing(): boolean {
    return this.closing;
  }

  /** Destroy every domain, DomUs first, Dom0 last. */
  async close(): Promise<void> {
    this.closing = true;
    await this.spares.close();
    while (this.entries.size > 0) {
      const d = Math.max(...this.entries.keys());
      await this.destroy(d);
    }
    await this.mm.close();
    if (this.ownPagingDir) rmSync(this.pagingDir, { recursive: true, force: true });
    this.sched.close();
    sc_detach_all(this.hv);
    this.nic.close();
    this.scrubber?.close();
  }
}
