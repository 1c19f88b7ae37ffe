/*
 * The toolstack's domain death watch, and xl's handling of a death: which of our domains stopped,
 * and what its config says to do about it.
 *
 * Xen: libxl_event.c's domain death watch (libxl_evenable_domain_death: on @releaseDomain, ask
 * for every domain's info and compare with what is watched) and xl's handle_domain_death
 * (tools/xl/xl_vmcontrol.c): on_poweroff / on_reboot / on_crash say destroy, restart or preserve;
 * a restart is a destroy followed by a new create from the config xl kept. A suspended domain is
 * kept (a save or a migration is in hand), whatever the config says.
 *
 * The hypervisor raises VIRQ_DOM_EXC when a domain shuts down and when it is destroyed; Dom0's
 * kernel calls exception() for it. That only says "look": looks are serialised, and an exception
 * during one causes another, so no death is missed and none is judged twice. The domains'
 * records and their lifecycle are ./libxl.ts's; this file only decides, through DeathWatchHost.
 */
import type { DomainInfo } from '../../shared/public/hypercall.ts';
import type { ShutdownReason } from '../../shared/public/xen.ts';
import type { PreparedVm } from './prepare.ts';

/** What the death watch needs to know of a domain record (./libxl.ts's XlDomain). */
export interface WatchedDomain {
  readonly domid: number;
  readonly prepared: PreparedVm;
  phase: 'creating' | 'running' | 'shutdown' | 'dying';
}

export interface DeathWatchHost<R extends WatchedDomain> {
  /** The toolstack's records now. */
  records(): R[];
  /** The record for `domid` now (a destroyed and recreated id has a new one). */
  current(domid: number): R | undefined;
  /** Every domain's info (XEN_SYSCTL_getdomaininfolist). */
  infoList(): Promise<DomainInfo[]>;
  /** The hypervisor no longer has it: clean up its Dom0 half. */
  gone(rec: R): Promise<void>;
  /** Keep it, stopped (preserve). */
  preserve(rec: R, reason: ShutdownReason): void;
  destroy(domid: number): Promise<void>;
  /** Create it again from its config (and say so). */
  restart(rec: R): Promise<void>;
  log(line: string): void;
}

export class DeathWatch<R extends WatchedDomain> {
  private scanning = false;
  private rescan = false;

  constructor(private readonly h: DeathWatchHost<R>) {}

  /** VIRQ_DOM_EXC: some domain shut down or was destroyed. */
  exception(): void {
    if (this.h.records().length === 0) return;
    if (this.scanning) {
      this.rescan = true;
      return;
    }
    this.scanning = true;
    void (async () => {
      try {
        do {
          this.rescan = false;
          await this.scan();
        } while (this.rescan);
      } catch (e) {
        this.h.log(`xl: handling a domain's death failed: ${(e as Error).stack ?? e}`); // a host bug, not a guest's doing
      } finally {
        this.scanning = false;
      }
    })();
  }

  /* One look: which of our domains died or stopped? (Records made after the look are not judged by it.) */
  private async scan(): Promise<void> {
    const ours = this.h.records();
    const infos = await this.h.infoList();
    for (const rec of ours) {
      if (this.h.current(rec.domid) !== rec || rec.phase !== 'running') continue;
      const info = infos.find((i) => i.domid === rec.domid);
      if (!info) {
        this.h.log(`xl: domain ${rec.domid} (${rec.prepared.vm.name}) is gone; cleaning up after it`);
        await this.h.gone(rec);
      } else if (info.state === 'shutdown') {
        await this.actOnShutdown(rec, info.shutdown_reason ?? 'poweroff');
      }
    }
  }

  /* xl's handle_domain_death: what the config says for this reason. */
  private async actOnShutdown(rec: R, reason: ShutdownReason): Promise<void> {
    const vm = rec.prepared.vm;
    const setting = reason === 'reboot' ? vm.on_reboot : reason === 'crash' ? vm.on_crash : reason === 'poweroff' ? vm.on_poweroff : null;
    const action = setting?.action ?? (reason === 'suspend' ? 'preserve' : 'destroy');
    const key = reason === 'reboot' ? 'on_reboot' : reason === 'crash' ? 'on_crash' : 'on_poweroff';
    this.h.log(`xl: domain ${rec.domid} (${vm.name}) has shut down, reason ${reason}; ${key} = ${setting?.xen ?? action}: ${action}`);
    if (action === 'preserve') {
      this.h.preserve(rec, reason);
      return;
    }
    await this.h.destroy(rec.domid);
    if (action !== 'restart') return;
    try {
      await this.h.restart(rec);
    } catch (e) {
      this.h.log(`xl: restarting ${vm.name} failed: ${(e as Error).message}`);
    }
  }
}
