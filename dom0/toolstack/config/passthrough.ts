/*
 * `pci = [...]` and `driver_domain`: which of the host's devices a VM is given, and whether it
 * serves other guests' devices.
 *
 * Xen: xl.cfg(5) (pci, driver_domain) and xl-pci-configuration(5), parsed by xl_parse.c
 * (xlu_pci_parse_spec_string). A PCI_SPEC_STRING is `[DDDD:]BB:DD.F[@VSLOT][,KEY=VALUE...]`;
 * the device must be assignable (`xl pci-assignable-add`, which takes it from Dom0's driver) and
 * libxl assigns it while the domain is built and paused (XEN_DOMCTL_assign_device), so its first
 * instruction already finds it. driver_domain=1 (libxl's c_info->driver_domain) marks a domain
 * that runs backends; libxl gives it directories it may write and `xl devd` runs in it.
 *
 * ringvisor's devices are the storage controllers of shared/public/hw/sc.ts. The first one,
 * 0000:00:1f.0, is Dom0's: its blkback drives every disk Dom0 serves through it, so it is not
 * assignable (as a device still bound to a Dom0 driver is not, until pci-assignable-add); nor is
 * the network card behind the bridge's uplink (hw/nic.ts); the others are. VSLOT and the keys xl knows (permissive, msitranslate, seize, power_mgmt,
 * rdm_policy, name) are accepted and ignored with a warning: there is no guest PCI bus to place
 * the device on, and no config space to be permissive about. What a driver domain does with its
 * controller: domu/driver-domain.ts.
 */
import type { Report } from './config-error.ts';
import { getBool, getStringList, type Located } from './xlcfg-get.ts';
import type { XlConfig } from './xlcfg-parse.ts';
import { PCI_DEVICES, PCI_HELD_BY_DOM0 } from '../../../shared/public/hw/sc.ts';

export interface PciConfig {
  /** The device's index in the hypervisor's table (shared/public/hw/sc.ts PCI_DEVICES). */
  dev: number;
  /** Its full BDF, 0000:BB:DD.F. */
  bdf: string;
  spec: string;
  line: number;
  column: number;
}

export interface PassthroughConfig {
  pci: PciConfig[];
  /** driver_domain=1. */
  driverDomain: boolean;
}

const BDF = /^(?:([0-9a-fA-F]{1,4}):)?([0-9a-fA-F]{1,2}):([0-9a-fA-F]{1,2})\.([0-7])(?:@([0-9a-fA-F]{1,2}))?$/;
const XL_PCI_KEYS = ['permissive', 'msitranslate', 'seize', 'power_mgmt', 'rdm_policy', 'name'];

/** One PCI_SPEC_STRING: the device, or why not. */
export function parsePciSpec(text: string): { dev: number; bdf: string; ignored: string[] } | string {
  const [where, ...opts] = text.split(',');
  const m = BDF.exec(where.trim());
  if (m === null) return `\`${where}' is not a PCI address (expected [DDDD:]BB:DD.F, e.g. ${PCI_DEVICES[1]})`;
  const hex = (s: string | undefined, width: number) => parseInt(s ?? '0', 16).toString(16).padStart(width, '0');
  const bdf = `${hex(m[1], 4)}:${hex(m[2], 2)}:${hex(m[3], 2)}.${m[4]}`;
  const dev = (PCI_DEVICES as readonly string[]).indexOf(bdf);
  if (dev < 0) return `no PCI device ${bdf} on this host (expected one of ${PCI_DEVICES.join(', ')})`;
  const ignored: string[] = m[5] !== undefined ? [`@${m[5]} (no guest PCI bus)`] : [];
  for (const o of opts) {
    const key = o.split('=')[0].trim();
    if (!XL_PCI_KEYS.includes(key)) return `unknown option \`${o}' (expected ${XL_PCI_KEYS.map((k) => `${k}=`).join(', ')})`;
    ignored.push(o.trim());
  }
  return { dev, bdf, ignored };
}

export function interpretPassthrough(cfg: XlConfig, report: Report): PassthroughConfig {
  const items: Located[] = getStringList(cfg, 'pci', report, "pci = [ 'BB:DD.F', ... ]") ?? [];
  const pci: PciConfig[] = [];
  for (const item of items) {
    const { line, column } = item.loc;
    const r = parsePciSpec(item.text);
    if (typeof r === 'string') {
      report.error(line, `pci '${item.text}': ${r}`, column);
      continue;
    }
    const held = PCI_HELD_BY_DOM0.get(r.dev);
    if (held !== undefined) {
      report.error(line, `pci '${item.text}': ${r.bdf} is not assignable: ${held} ` +
        `(expected one of: ${PCI_DEVICES.filter((_, i) => !PCI_HELD_BY_DOM0.has(i)).join(', ')})`, column);
      continue;
    }
    const twice = pci.find((p) => p.dev === r.dev);
    if (twice) {
      report.error(line, `pci '${item.text}': ${r.bdf} is already given at line ${twice.line} (expected each device once)`, column);
      continue;
    }
    if (r.ignored.length > 0) report.warn(line, `pci '${item.text}': not modelled, ignored: ${r.ignored.join('; ')}`, column);
    pci.push({ dev: r.dev, bdf: r.bdf, spec: item.text, line, column });
  }
  return { pci, driverDomain: getBool(cfg, 'driver_domain', report) ?? false };
}
