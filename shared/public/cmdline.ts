/*
 * The kernel command line: what ringvisor's toolstack tells a DomU kernel at boot, in
 * start_info.cmd_line.
 *
 * Xen: a PV guest's command line is the config's `extra` (plus `root=`), passed verbatim by the
 * domain builder; Linux parses it as space-separated words, each KEY=VALUE or a bare KEY
 * (Documentation/admin-guide/kernel-parameters.txt). An HVM guest would learn about its
 * emulated devices by probing PCI and from ACPI tables; ringvisor's guests cannot probe (a port
 * nobody emulates is a fault for a DomU, hypervisor/trap.ts), so the toolstack says on the
 * command line what firmware would have told them. The words, and who reads them:
 *
 *   workload=NAME [KEY=VALUE ...]  what to run once booted, and its arguments
 *                                  (dom0/toolstack/config/workload.ts writes them, domu/workloads reads)
 *   xen_guest=pv|pvh|hvm           the guest type: how the machine is powered off (an HVM guest
 *                                  has ACPI and a reset register; a PV guest asks Xen directly)
 *   ide=VDEV                       an emulated IDE disk on the primary channel's master, which
 *                                  the guest names VDEV (e.g. hda): probe it (HVM guests only)
 *   e1000=IP[,IP...]               emulated e1000 NICs at slots 0, 1, ... (shared/public/hw/e1000.ts),
 *                                  each with the address its vif's ip= gave ('-': none) (HVM only)
 *   wait=irq|poll                  how the kernel's drivers wait for the other side: sleep on the
 *                                  event, or spin a bounded time first (shared/wait.ts); Dom0 and
 *                                  DomU alike (shared/kernel/kernel.ts reads it; default irq)
 *   driver_domain=1                xl.cfg's driver_domain=1: this DomU serves other guests' devices,
 *                                  so its kernel loads the backend drivers (domu/driver-domain.ts)
 *
 * Both ends use this module, so the names are written once. Unknown words are kept: they are the
 * workload's arguments.
 */

export const CMDLINE_WORKLOAD = 'workload';
export const CMDLINE_GUEST_TYPE = 'xen_guest';
export const CMDLINE_IDE = 'ide';
export const CMDLINE_E1000 = 'e1000';
export const CMDLINE_WAIT = 'wait';
export const CMDLINE_DRIVER_DOMAIN = 'driver_domain';
/** Words the toolstack owns: a workload argument may not use these names. */
export const CMDLINE_RESERVED: readonly string[] = [CMDLINE_WORKLOAD, CMDLINE_GUEST_TYPE, CMDLINE_IDE, CMDLINE_E1000, CMDLINE_WAIT, CMDLINE_DRIVER_DOMAIN];

export type CmdlineGuestType = 'pv' | 'pvh' | 'hvm';

/** The words of a command line as KEY → VALUE (a bare KEY maps to ""); a later word wins, as in Linux. */
export function parseCmdline(line: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const word of line.split(/\s+/)) {
    if (word === '') continue;
    const eq = word.indexOf('=');
    if (eq < 0) out.set(word, '');
    else out.set(word.slice(0, eq), word.slice(eq + 1));
  }
  return out;
}

/** The words back into a line (values must hold no blanks). */
export function formatCmdline(words: Iterable<[string, string]>): string {
  return [...words].map(([k, v]) => (v === '' ? k : `${k}=${v}`)).join(' ');
}
