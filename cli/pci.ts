/*
 * The passthrough verbs of the command line: pci-list DOMAIN and pci-assignable-list.
 *
 * Xen: tools/xl/xl_pci.c (main_pcilist, main_pciassignable_list). The toolstack's side is
 * dom0/toolstack/pci.ts; a device is given to a domain by its config's pci = [...] at create
 * (dom0/toolstack/config/passthrough.ts). pci-list's columns: the device, then what the IOMMU
 * saw of it (DMA operations; faults, DMA to an address outside its owner's frames).
 */
import type { Command } from 'commander';
import type { XlClient } from './client.ts';
import type { PciListRow } from '../dom0/toolstack/pci.ts';

interface Wiring {
  withClient<T>(cmd: Command, f: (c: XlClient) => Promise<T>): Promise<T>;
  out(s: string): void;
}

export function formatPciList(rows: readonly PciListRow[]): string {
  const lines = ['Device        DMA-ops  IOMMU-faults'];
  for (const r of rows) lines.push(`${r.bdf.padEnd(12)}  ${String(r.dmaOps).padStart(7)}  ${String(r.faults).padStart(12)}`);
  return `${lines.join('\n')}\n`;
}

export function registerPciVerbs(program: Command, w: Wiring): void {
  program.command('pci-list').description('the host devices a domain was given (pci = [...]), with its DMA operations and IOMMU faults (xl pci-list)')
    .argument('<domain>', 'domain name or id')
    .action(async (domain: string, _o: unknown, cmd: Command) => {
      w.out(formatPciList(await w.withClient(cmd, (c) => c.call<PciListRow[]>({ verb: 'pci-list', domain }))));
    });
  program.command('pci-assignable-list').description('the devices a config\'s pci = [...] may name now (xl pci-assignable-list)')
    .action(async (_o: unknown, cmd: Command) => {
      const bdfs = await w.withClient(cmd, (c) => c.call<string[]>({ verb: 'pci-assignable-list' }));
      w.out(bdfs.map((b) => `${b}\n`).join(''));
    });
}
