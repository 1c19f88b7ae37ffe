/*
 * Domain names in the toolstack: xl's find_domain (a domid or a name) and libxl_domain_rename.
 *
 * Xen: tools/xl/xl_utils.c find_domain → libxl_name_to_domid, which reads each domain's name from
 * xenstore (/local/domain/N/name), and tools/libs/light/libxl_domain.c libxl_domain_rename, which
 * checks that the old name is the domain's and the new one nobody's, then writes it. A migration
 * renames on both sides (xl's NAME--incoming on the target until the go, NAME--migratedaway on
 * the source until its copy is destroyed), so a name is not fixed by the config: the renames are
 * kept here, by domid, over the config's name that the hypervisor's list carries.
 *
 * A dying domain has no name to find and holds none (its /local/domain/N is gone by then): a
 * migration's source copy, destroyed but still a zombie while its backends let go, must not be
 * taken for the guest that has just come back, nor stop it being renamed to its own name.
 */
import type { DomainInfo, Hypercalls } from '../../shared/public/hypercall.ts';
import { domainPath } from '../../shared/public/io/xenbus.ts';
import { errnoName } from '../../shared/public/xen.ts';
import type { XenbusClient } from '../../shared/kernel/xenbus/client.ts';
import { XlError } from './xl-error.ts';

/** What a toolstack record must say for its name to be checked: the config's name. */
export interface NamedRecord {
  prepared: { vm: { name: string } };
}

export class DomainNames {
  /* Names given by libxl_domain_rename (xl migrate's NAME--incoming, NAME--migratedaway), by domid. */
  readonly #renamed = new Map<number, string>();

  /** `records`: the toolstack's own domains (the write at the go checks against them). */
  constructor(
    private readonly hc: () => Hypercalls,
    private readonly xs: () => XenbusClient,
    private readonly records: Map<number, NamedRecord>,
    private readonly log: (line: string) => void,
  ) {}

  /** Every domain's info from the hypervisor, each under its name now. */
  async infoList(): Promise<DomainInfo[]> {
    const infos = await this.hc().sysctl_getdomaininfolist();
    if (typeof infos === 'number') throw new XlError('failed', `getdomaininfolist: ${errnoName(infos)}`);
    for (const i of infos) i.name = this.#renamed.get(i.domid) ?? i.name;
    return infos;
  }

  /** xl's find_domain: a domid, or the name of a domain that is not dying. */
  async resolve(domain: string): Promise<number> {
    const infos = await this.infoList();
    const hit = /^[0-9]+$/.test(domain) ? infos.find((i) => i.domid === Number(domain)) : infos.find((i) => i.name === domain && i.state !== 'dying');
    if (!hit) throw new XlError('domain', `${domain} is an invalid domain identifier`);
    return hit.domid;
  }

  /** The domain has gone: its rename with it. */
  forget(domid: number): void {
    this.#renamed.delete(domid);
  }

  /** libxl_domain_rename: `from`, which must be the domain's name now, becomes `to`, which no other domain may have. */
  async rename(domid: number, from: string, to: string): Promise<void> {
    await (await this.renameChecked(domid, from, to))();
  }

  /**
   * rename's checks now (the hypervisor's list of domains), its write when the returned function
   * is called: a migration's target checks while it waits for the sender's go and renames at it.
   * A domain made in between went through this toolstack, whose records the write checks again.
   */
  async renameChecked(domid: number, from: string, to: string): Promise<() => Promise<void>> {
    const infos = await this.infoList();
    const me = infos.find((i) => i.domid === domid);
    const rec = this.records.get(domid);
    if (!me || !rec) throw new XlError('domain', `no domain ${domid} of this toolstack to rename`);
    if (me.name !== from) throw new XlError('failed', `domain ${domid} is called ${me.name}, not ${from}`);
    const taken = (others: Iterable<[number, string]>) => {
      for (const [d, name] of others) if (d !== domid && name === to) throw new XlError('failed', `cannot rename ${from}: a domain called ${to} exists`);
    };
    taken(infos.filter((i) => i.state !== 'dying').map((i) => [i.domid, i.name])); // a dying domain's name is free (see the header)
    return async () => {
      if (this.records.get(domid) !== rec) throw new XlError('domain', `domain ${domid} is gone`);
      taken([...this.records].map(([d, r]) => [d, this.#renamed.get(d) ?? r.prepared.vm.name]));
      await this.xs().write(`${domainPath(domid)}/name`, to);
      if (to === rec.prepared.vm.name) this.#renamed.delete(domid);
      else this.#renamed.set(domid, to);
      this.log(`xl: domain ${domid} renamed from ${from} to ${to}`);
    };
  }
}
