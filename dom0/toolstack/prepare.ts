/*
 * `xl create`, the part before anything is built: read the config, check it against what this
 * host can run and what it already runs, create the disk images it asks for, and work out the
 * guest's devices and command line. Everything wrong is a ConfigError at the file:line
 * responsible, and nothing is left behind: a config that fails here starts nothing.
 *
 * Xen: xl's parse_config_data (tools/xl/xl_parse.c) and what libxl_domain_create_new finds out
 * before it builds (libxl_create.c: "domain with name ... already exists", the disk and device
 * model checks, freemem's check that the memory is there). The loaders are ./config/; this
 * adds the checks that need the running host, and ringvisor's limits:
 *
 *   - one emulated disk, the primary master hda (the IDE model in dom0/device-models/ide has one);
 *     no emulated CD-ROM drives
 *   - PV vifs go to netback (./nic.ts); an HVM guest's emulated vifs (model=e1000, or type=ioemu,
 *     Xen's HVM default) become emulated e1000 NICs, at most E1000_MAX_NICS, each a device model
 *     (libxl_dm.c's -device e1000), and the guest is told where on its command line (e1000=).
 *     xl also gives such a vif a PV twin that a PVHVM guest's unplug would hide; ringvisor's guest
 *     uses the e1000 only, so there is no twin. bufioreq=1 on a PV vif is refused; a bad rate= is an error
 *   - workload arguments may not use the command-line words the toolstack writes itself
 *   - memory beyond what the hypervisor has free is a warning (overcommit: RAM is populated on demand)
 *   - a disk's backend=NAME names a running domain (a storage driver domain: ./driver-domain.ts)
 */
import { rmSync, statSync } from 'node:fs';
import { ConfigError, formatDiagnostic, type Diagnostic } from './config/config-error.ts';
import type { DiskConfig, VifConfig } from './config/devices.ts';
import { validateForBoot, checkDistinctIdentities } from './config/vmcheck.ts';
import { loadVmConfig, type VmConfig } from './config/vmconfig.ts';
import { ensureVmImages, loadVmDir } from './config/vmdir.ts';
import { workloadCmdline } from './config/workload.ts';
import {
  CMDLINE_DRIVER_DOMAIN, CMDLINE_E1000, CMDLINE_GUEST_TYPE, CMDLINE_IDE, CMDLINE_RESERVED, CMDLINE_WAIT, formatCmdline, parseCmdline,
} from '../../shared/public/cmdline.ts';
import { PAGE_SIZE } from '../../shared/public/xen.ts';
import { E1000_MAX_NICS } from '../../shared/public/hw/e1000.ts';
import { parseRate } from './nic.ts';
import { liveClaim, runtimeFiles, type VmRuntimeFiles } from './state-file.ts';

/** The one disk ringvisor's IDE model serves: the primary channel's master. */
export const EMULATED_DISK_VDEV = 'hda';
/** start_info.cmd_line holds 1023 bytes and a NUL. */
const MAX_CMDLINE = 1023;

export interface PreparedVm {
  vm: VmConfig;
  /** Formatted "file:line: warning: ..." lines, in file order. */
  warnings: string[];
  imagesCreated: string[];
  pvDisks: DiskConfig[];
  emulatedDisk: DiskConfig | null;
  /** The PV vifs (see the header). */
  vifs: VifConfig[];
  /** The emulated NICs, in slot order (see the header). */
  emulatedNics: VifConfig[];
  cmdline: string;
  /** Its console log and state file (./state-file.ts). */
  files: VmRuntimeFiles;
}

/** What the host already runs, for the identity checks. */
export interface RunningDomain {
  domid: number;
  name: string;
  /** Set for domains this toolstack created from a config (their file:lines can be named). */
  vm?: VmConfig;
}

/**
 * Load `path` (a VM directory or a config file) and make it ready to build. Throws ConfigError.
 * `wait` is the host's waiting policy, which the guest's command line carries (shared/wait.ts).
 */
export function prepareVm(path: string, running: readonly RunningDomain[], freePages: number, wait?: string): PreparedVm {
  const isDir = statSync(path, { throwIfNoEntry: false })?.isDirectory() ?? false;
  const loaded = isDir ? loadVmDir(path) : loadVmConfig(path);
  const vm = loaded.config;
  const warnings: Diagnostic[] = [...loaded.warnings];
  const errors: Diagnostic[] = [];
  const err = (line: number, message: string, column?: number) => {
    const d: Diagnostic = { severity: 'error', file: vm.displayFile, line, message };
    if (column !== undefined) d.column = column;
    errors.push(d);
  };

  // The same config again: one line that says so (its name, UUID and MACs all clash with itself).
  const self = running.find((r) => r.vm?.file === vm.file);
  if (self) {
    throw new ConfigError([{ severity: 'error', file: vm.displayFile, line: 0,
      message: `${vm.name} is already running as domain ${self.domid} (expected it shut down or destroyed first)` }]);
  }
  // libxl: "domain with name ... already exists". Our own VMs also must not share a UUID or a MAC.
  checkDistinctIdentities([...running.flatMap((r) => (r.vm ? [r.vm] : [])), vm]);
  const twin = running.find((r) => !r.vm && r.name === vm.name);
  if (twin) err(vm.lines['name'] ?? 1, `name "${vm.name}" is already used by domain ${twin.domid} (expected a name no domain on this host has)`);

  const emulated = vm.disks.filter((d) => d.io === 'emulated');
  for (const d of emulated) {
    if (d.devtype === 'cdrom') err(d.line, `disk '${d.spec}': ringvisor emulates no CD-ROM drive (expected a disk)`, d.column);
    else if (d.vdev.name !== EMULATED_DISK_VDEV) {
      err(d.line, `disk '${d.spec}': ringvisor's IDE controller has one disk, the primary master ${EMULATED_DISK_VDEV} ` +
        `(expected vdev ${EMULATED_DISK_VDEV}, or a PV vdev such as xvdb)`, d.column);
    }
  }
  for (const v of vm.vifs) {
    if (v.io !== 'emulated' && v.bufioreq === true) {
      err(v.line, `vif '${v.spec}': bufioreq=1 applies to an emulated NIC (an HVM guest's model=e1000), not a PV vif`, v.column);
    }
    if (v.rate !== null) {
      const r = parseRate(v.rate);
      if (typeof r === 'string') err(v.line, `vif '${v.spec}': rate=${v.rate}: ${r}`, v.column);
    }
  }
  if (vm.workload) {
    for (const key of Object.keys(vm.workload.args)) {
      if (CMDLINE_RESERVED.includes(key)) {
        err(vm.lines['workload_args'] ?? vm.workload.line, `workload_args ${key}= is a word the toolstack writes on the ` +
          `command line itself (expected another name)`);
      }
    }
  }
  // disk backend=NAME: the driver domain must be running already (xl looks it up at create).
  for (const d of vm.disks) {
    if (d.io !== 'pv' || d.backend === null) continue;
    const byId = /^[0-9]+$/.test(d.backend);
    if (!running.some((r) => (byId ? r.domid === Number(d.backend) : r.name === d.backend))) {
      err(d.line, `disk '${d.spec}': backend=${d.backend}: no such domain is running (expected a driver domain, ` +
        'driver_domain = 1 with a storage controller in pci = [...], created first)', d.column);
    }
  }
  const pages = (vm.memoryMiB * 1048576) / PAGE_SIZE;
  // RAM is populated on demand (hypervisor/mm/pod.ts): more than is free is overcommit, allowed.
  if (pages > freePages) {
    warnings.push({ severity: 'warning', file: vm.displayFile, line: vm.lines['memory'] ?? vm.lines['maxmem'] ?? 1,
      message: `memory = ${vm.memoryMiB} MiB, but the host has ${Math.floor((freePages * PAGE_SIZE) / 1048576)} MiB free: ` +
        'overcommitted; pages are backed when first touched, and a guest that touches one the host cannot back crashes (PoD: out of memory)' });
  }
  const files = runtimeFiles(vm.file);
  const claim = liveClaim(files.stateFile);
  if (claim) {
    err(0, `this VM is running on another host already: ${files.stateFile} names domain ${claim.domid} ` +
      `of the host process ${claim.pid} (${claim.socket}) (expected it shut down there first)`);
  }
  const words = new Map(parseCmdline(vm.workload ? workloadCmdline(vm.workload) : ''));
  words.set(CMDLINE_GUEST_TYPE, vm.type);
  const emulatedDisk = emulated.length > 0 ? emulated[0]! : null;
  if (emulatedDisk) words.set(CMDLINE_IDE, emulatedDisk.vdev.name);
  const emulatedNics = vm.vifs.filter((v) => v.io === 'emulated');
  if (emulatedNics.length > E1000_MAX_NICS) {
    const extra = emulatedNics[E1000_MAX_NICS];
    err(extra.line, `vif '${extra.spec}': ringvisor emulates at most ${E1000_MAX_NICS} e1000 NICs per guest (expected type=vif for this one)`, extra.column);
  }
  if (emulatedNics.length > 0) words.set(CMDLINE_E1000, emulatedNics.slice(0, E1000_MAX_NICS).map((v) => v.ip ?? '-').join(','));
  if (wait !== undefined) words.set(CMDLINE_WAIT, wait);
  if (vm.driverDomain) words.set(CMDLINE_DRIVER_DOMAIN, '1');
  const cmdline = formatCmdline(words);
  if (Buffer.byteLength(cmdline) > MAX_CMDLINE) {
    err(vm.workload?.line ?? 1, `the kernel command line would be ${Buffer.byteLength(cmdline)} bytes (expected at most ${MAX_CMDLINE})`);
  }
  if (errors.length > 0) throw new ConfigError(errors);

  // Only now create what create_images asks for, and take it back if the VM still cannot boot.
  const imagesCreated = ensureVmImages(vm);
  try {
    validateForBoot(vm);
  } catch (e) {
    for (const p of imagesCreated) rmSync(p, { force: true });
    throw e;
  }
  return {
    vm, imagesCreated, emulatedDisk, cmdline, files,
    warnings: warnings.sort((a, b) => a.line - b.line).map(formatDiagnostic),
    pvDisks: vm.disks.filter((d) => d.io === 'pv'),
    vifs: vm.vifs.filter((v) => v.io !== 'emulated'),
    emulatedNics: emulatedNics.slice(0, E1000_MAX_NICS),
  };
}
