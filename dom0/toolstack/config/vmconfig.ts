/*
 * A VM's configuration, interpreted: from the settings of an xl.cfg file to a typed VmConfig.
 *
 * Xen: parse_config_data in tools/xl/xl_parse.c (which keys mean what, their defaults, what is
 * fatal) and xl.cfg(5). libxl's domain config is the C equivalent of VmConfig; the hypervisor's
 * part of it is shared/public/hypercall.ts's DomainConfig, which domainConfigFields() fills.
 *
 * Keys, with xl's defaults:
 *   name (required)  uuid (none: Xen makes one per boot)  type "pv" | "pvh" | "hvm" (pv; the
 *   deprecated builder = "generic" | "hvm" also works)  memory MiB (32, or maxmem)  maxmem MiB
 *   (memory)  vcpus (1)  maxvcpus (vcpus)  disk [...]  vif [...]  on_poweroff (destroy)
 *   on_reboot (restart)  on_crash (destroy)  on_watchdog, on_soft_reset (checked, not modelled).
 *   pci [...] (none: Dom0 keeps every device)  driver_domain (0) (./passthrough.ts).
 * ringvisor's own keys (README.md in this folder): workload, workload_args, template, create_images.
 * Every other key of Xen's is accepted with a warning saying why it is ignored (xl-keys.ts); a key
 * nobody knows gets a warning with the nearest known key.
 *
 * Loading is for inspection and needs nothing but the file: disk images need not exist. Whether
 * the VM can start is validateForBoot's question (vmcheck.ts).
 */
import { readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import type { DomainConfig, ShutdownAction } from '../../../shared/public/hypercall.ts';
import { configError, Report, type Diagnostic } from './config-error.ts';
import { interpretDisks, interpretVifs, type DiskConfig, type GuestType, type VifConfig } from './devices.ts';
import { ignoredReason, nearestKey, ALL_KNOWN_KEYS } from './xl-keys.ts';
import { getBool, getLong, getString, getStringList, keyLine } from './xlcfg-get.ts';
import { parseXlConfig, type XlConfig } from './xlcfg-parse.ts';
import { interpretWorkload, workloadCmdline, type WorkloadConfig } from './workload.ts';
import { interpretSched, type SchedConfig } from './sched-keys.ts';
import { interpretPassthrough, type PciConfig } from './passthrough.ts';

export type { GuestType };

/** xl.cfg's event actions (xl_parse.c action_on_shutdown_names). */
export const XEN_SHUTDOWN_ACTIONS = [
  'destroy', 'restart', 'rename-restart', 'preserve', 'coredump-destroy', 'coredump-restart', 'soft-reset',
] as const;
export type XenShutdownAction = typeof XEN_SHUTDOWN_ACTIONS[number];

/*
 * ringvisor's hypervisor knows destroy, restart and preserve. The others map to the nearest,
 * with a warning: rename-restart keeps the old domain under a new name and starts a new one,
 * which without the old one is a restart; no core dumps are written, so coredump-X is X;
 * soft-reset (kexec's in-place reset) is closest to a restart.
 */
const NEAREST_ACTION: Readonly<Record<XenShutdownAction, ShutdownAction>> = {
  'destroy': 'destroy', 'restart': 'restart', 'preserve': 'preserve', 'rename-restart': 'restart',
  'coredump-destroy': 'destroy', 'coredump-restart': 'restart', 'soft-reset': 'restart',
};

export interface EventAction {
  /** As written (or xl's default). */
  xen: XenShutdownAction;
  /** What ringvisor will do. */
  action: ShutdownAction;
}

/** An image to create, sparse, when it is missing (create_images = [ "disk.img=16" ]). */
export interface ImageToCreate {
  path: string;
  sizeMiB: number;
  line: number;
}

export interface VmConfig {
  /** Absolute path of the config file; relative disk targets resolve against its directory. */
  file: string;
  dir: string;
  name: string;
  uuid: string | null;
  type: GuestType;
  memoryMiB: number;
  maxmemMiB: number;
  vcpus: number;
  maxvcpus: number;
  disks: DiskConfig[];
  vifs: VifConfig[];
  on_poweroff: EventAction;
  on_reboot: EventAction;
  on_crash: EventAction;
  workload: WorkloadConfig | null;
  /** cpus, cpus_soft, cpu_weight, cap (./sched-keys.ts). */
  sched: SchedConfig;
  /** pci = [...]: the host devices this VM is given; driver_domain = 1: it serves other guests' devices (./passthrough.ts). */
  pci: PciConfig[];
  driverDomain: boolean;
  /** `template = 1`: a VM to copy, never to boot. */
  template: boolean;
  createImages: ImageToCreate[];
  /** The line of each key's effective statement, for findings made after loading. */
  lines: Readonly<Record<string, number>>;
  /** The name errors use for the file: the path as the caller gave it. */
  displayFile: string;
}

export interface LoadedVmConfig {
  config: VmConfig;
  warnings: Diagnostic[];
}

/** Reads, parses and interprets a config file. Throws ConfigError; returns warnings. */
export function loadVmConfig(file: string): LoadedVmConfig {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    configError(file, 0, undefined, `unable to open configuration file: ${(e as Error).message} (expected a readable file)`);
  }
  return interpretXlConfig(parseXlConfig(text, file), resolve(file));
}

/** Interprets parsed settings; `absFile` locates the VM's directory. Throws ConfigError. */
export function interpretXlConfig(cfg: XlConfig, absFile: string): LoadedVmConfig {
  const report = new Report(cfg.file);
  report.warnings.push(...cfg.warnings);
  const dir = dirname(absFile);

  for (const [key, s] of cfg.settings) {
    const line = keyLine(s);
    if (ALL_KNOWN_KEYS.includes(key)) {
      const why = ignoredReason(key);
      if (why) report.warn(line, `\`${key}' ignored: ${why}`);
      continue;
    }
    const near = nearestKey(key);
    report.warn(line, `unknown key \`${key}' ignored${near ? ` (did you mean \`${near}'?)` : ''}`);
  }

  const nameAt = getString(cfg, 'name', report, 'name = "NAME"');
  if (!cfg.settings.has('name')) report.error(1, 'no `name\' given (expected name = "NAME": xl requires a domain name)');
  else if (nameAt && !/^[^\x00-\x1f/]+$/.test(nameAt.text)) {
    report.error(nameAt.loc.line, `\`name' is "${nameAt.text}" (expected a non-empty name without \`/' or control characters)`);
  }

  const uuidAt = getString(cfg, 'uuid', report, 'uuid = "xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx"');
  if (uuidAt && !UUID.test(uuidAt.text)) {
    report.error(uuidAt.loc.line, `\`uuid' is "${uuidAt.text}", not a UUID (expected 8-4-4-4-12 hex digits)`, uuidAt.loc.column);
  }

  const type = guestType(cfg, report);
  const memory = getLong(cfg, 'memory', report, 'memory = MiB, e.g. 128', { min: 1 });
  const maxmem = getLong(cfg, 'maxmem', report, 'maxmem = MiB, at least memory', { min: 1 });
  // libxl: max defaults to 32 MiB, target to max (libxl_create.c), and xl sets max to target.
  const memoryMiB = memory ?? maxmem ?? 32;
  const maxmemMiB = maxmem ?? memoryMiB;
  if (maxmemMiB < memoryMiB) { // only possible when both are given
    report.error(keyLine(cfg.settings.get('maxmem')!),
      `maxmem (${maxmemMiB} MiB) is less than memory (${memoryMiB} MiB) (expected maxmem >= memory)`);
  }

  let vcpus = getLong(cfg, 'vcpus', report, 'vcpus = N, at least 1', { min: 0 }) ?? 1;
  if (vcpus < 1) {
    report.warn(keyLine(cfg.settings.get('vcpus')!), 'vcpus = 0 means 1, as in xl');
    vcpus = 1;
  }
  const maxvcpus = getLong(cfg, 'maxvcpus', report, 'maxvcpus = N, at least vcpus', { min: 1 }) ?? vcpus;
  if (maxvcpus < vcpus) {
    report.error(keyLine(cfg.settings.get('maxvcpus')!), `maxvcpus (${maxvcpus}) < vcpus (${vcpus}) (expected maxvcpus >= vcpus)`);
  }

  const diskItems = getStringList(cfg, 'disk', report, "disk = [ 'DISKSPEC', ... ]") ?? [];
  const disks = interpretDisks(diskItems, type, dir, report);
  const vifItems = getStringList(cfg, 'vif', report, "vif = [ 'VIFSPEC', ... ]") ?? [];
  const vifs = interpretVifs(vifItems, type, report);

  const on_poweroff = eventAction(cfg, 'on_poweroff', 'destroy', report);
  const on_reboot = eventAction(cfg, 'on_reboot', 'restart', report);
  const on_crash = eventAction(cfg, 'on_crash', 'destroy', report);
  for (const key of ['on_watchdog', 'on_soft_reset']) {
    if (!cfg.settings.has(key)) continue;
    eventAction(cfg, key, 'destroy', report);
    report.warn(keyLine(cfg.settings.get(key)!), `\`${key}' is checked but not modelled (ringvisor has no ` +
      `${key === 'on_watchdog' ? 'watchdog' : 'soft reset'}); ignored`);
  }

  const workload = interpretWorkload(cfg, disks, report);
  const sched = interpretSched(cfg, report, Math.max(maxvcpus, vcpus));
  const { pci, driverDomain } = interpretPassthrough(cfg, report);
  const template = getBool(cfg, 'template', report) ?? false;
  const createImages = imagesToCreate(cfg, dir, disks, report);

  report.throwIfErrors();
  const lines: Record<string, number> = {};
  for (const [key, s] of cfg.settings) lines[key] = keyLine(s);
  const config: VmConfig = {
    file: absFile, dir, displayFile: cfg.file, name: nameAt!.text, uuid: uuidAt ? uuidAt.text.toLowerCase() : null,
    type, memoryMiB, maxmemMiB, vcpus, maxvcpus, disks, vifs, on_poweroff, on_reboot, on_crash,
    workload, sched, pci, driverDomain, template, createImages, lines,
  };
  return { config, warnings: report.sortedWarnings() };
}

const UUID = /^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$/;
const GUEST_TYPES: readonly GuestType[] = ['pv', 'pvh', 'hvm'];

/*
 * xl compares with strncmp(buf, "hvm", strlen(buf)), so any prefix of a type name (even "")
 * is accepted; ringvisor wants the whole word.
 */
function guestType(cfg: XlConfig, report: Report): GuestType {
  const t = getString(cfg, 'type', report, 'type = "pv", "pvh" or "hvm"');
  let type: GuestType | undefined;
  if (t) {
    if ((GUEST_TYPES as readonly string[]).includes(t.text)) type = t.text as GuestType;
    else report.error(t.loc.line, `\`type' is "${t.text}" (expected "pv", "pvh" or "hvm")`, t.loc.column);
  }
  const b = getString(cfg, 'builder', report, 'builder = "generic" or "hvm" (deprecated: use type)');
  if (b) {
    const fromBuilder: GuestType | undefined = b.text === 'hvm' ? 'hvm' : b.text === 'generic' ? 'pv' : undefined;
    if (!fromBuilder) {
      report.error(b.loc.line, `\`builder' is "${b.text}" (expected "generic" or "hvm"; better, type = "pv" or "hvm")`,
        b.loc.column);
    } else if (t && type && type !== fromBuilder) {
      report.error(b.loc.line, `\`builder' says ${fromBuilder} but \`type' at line ${t.loc.line} says ${type} ` +
        '(expected one of them, or both agreeing)');
    } else {
      report.warn(b.loc.line, `\`builder' is deprecated since Xen 4.10 (expected type = "${fromBuilder}")`);
      type = fromBuilder;
    }
  }
  return type ?? 'pv';
}

function eventAction(cfg: XlConfig, key: string, xlDefault: XenShutdownAction, report: Report): EventAction {
  const a = getString(cfg, key, report, `${key} = "destroy", "restart" or "preserve"`);
  if (!a) return { xen: xlDefault, action: NEAREST_ACTION[xlDefault] };
  if (!(XEN_SHUTDOWN_ACTIONS as readonly string[]).includes(a.text)) {
    report.error(a.loc.line, `unknown ${key} action "${a.text}" (expected one of ${XEN_SHUTDOWN_ACTIONS.join(', ')})`,
      a.loc.column);
    return { xen: xlDefault, action: NEAREST_ACTION[xlDefault] };
  }
  const xen = a.text as XenShutdownAction;
  const action = NEAREST_ACTION[xen];
  if (action !== xen) report.warn(a.loc.line, `${key} = "${xen}" is not modelled; ringvisor will ${action} instead`, a.loc.column);
  return { xen, action };
}

function imagesToCreate(cfg: XlConfig, dir: string, disks: readonly DiskConfig[], report: Report): ImageToCreate[] {
  const out: ImageToCreate[] = [];
  const expected = 'create_images = [ "PATH=MiB", ... ], e.g. [ "disk.img=16" ]';
  for (const item of getStringList(cfg, 'create_images', report, expected) ?? []) {
    const m = /^(.+)=([0-9]+)$/.exec(item.text);
    if (!m || Number(m[2]) < 1) {
      report.error(item.loc.line, `create_images entry "${item.text}" (expected PATH=MiB with MiB >= 1, e.g. "disk.img=16")`,
        item.loc.column);
      continue;
    }
    const path = resolve(dir, m[1]!);
    if (!disks.some((d) => d.path === path)) {
      report.error(item.loc.line, `create_images names ${m[1]}, which no disk of this config uses ` +
        '(expected the target of one of its disks)', item.loc.column);
      continue;
    }
    out.push({ path, sizeMiB: Number(m[2]), line: item.loc.line });
  }
  return out;
}

/**
 * The hypervisor's part of this config (domctl createdomain's inputs), all but the kernel
 * module, which the toolstack that boots the VM chooses. The workload travels on the kernel
 * command line, as `extra` does for a Linux guest.
 */
export function domainConfigFields(vm: VmConfig): Omit<DomainConfig, 'kernel'> {
  const fields: Omit<DomainConfig, 'kernel'> = {
    name: vm.name, vcpus: vm.vcpus, max_vcpus: vm.maxvcpus, memoryKiB: vm.memoryMiB * 1024,
    ...(vm.maxmemMiB > vm.memoryMiB ? { maxmemKiB: vm.maxmemMiB * 1024 } : {}),
    on_poweroff: vm.on_poweroff.action, on_reboot: vm.on_reboot.action, on_crash: vm.on_crash.action,
    ...vm.sched,
  };
  if (vm.workload) fields.cmdline = workloadCmdline(vm.workload);
  return fields;
}
