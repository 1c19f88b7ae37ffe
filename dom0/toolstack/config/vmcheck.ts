/*
 * Can this VM start, and can these VMs run side by side? Checks made after a config loaded.
 *
 * Xen: what `xl create` finds out only while building the domain: libxl refuses a disk whose
 * target it cannot open, and a domain name already in use ("domain with name ... already
 * exists", libxl_create.c). ringvisor asks before anything is built, so nothing starts from a
 * config that cannot run, and reports every problem with the file:line that causes it.
 *
 * Templates are the lecture's "virtual machines that cannot be powered on": a loaded template
 * is fine to inspect and copy, and validateForBoot refuses it until provisioning (vmdir.ts)
 * has given the copy its own identity and removed the marker.
 */
import { statSync } from 'node:fs';
import { ConfigError, type Diagnostic } from './config-error.ts';
import type { VmConfig } from './vmconfig.ts';

const SECTOR = 512;

/** Throws ConfigError listing everything that stops this VM from booting. */
export function validateForBoot(vm: VmConfig): void {
  const errors: Diagnostic[] = [];
  const err = (line: number, message: string, column?: number): void => {
    const d: Diagnostic = { severity: 'error', file: vm.displayFile, line, message };
    if (column !== undefined) d.column = column;
    errors.push(d);
  };

  if (vm.template) {
    err(vm.lines['template'] ?? 1, `${vm.name} is a template (template = 1), which cannot be booted ` +
      `(expected a VM provisioned from it: ringvisor new-vm --from ${vm.dir} DEST)`);
  }
  for (const d of vm.disks) {
    if (d.path === null) continue; // an empty CD-ROM drive
    if (d.format !== 'raw' && d.format !== 'empty') {
      err(d.line, `disk '${d.spec}': format ${d.format} cannot be served (expected format raw)`, d.column);
      continue;
    }
    const st = statSync(d.path, { throwIfNoEntry: false });
    if (!st) {
      const creatable = vm.createImages.some((c) => c.path === d.path);
      err(d.line, `disk '${d.spec}': image ${d.path} does not exist (expected an image file` +
        `${creatable ? '; create_images makes it: run ensureVmImages first' : ''})`, d.column);
    } else if (!st.isFile()) {
      err(d.line, `disk '${d.spec}': ${d.path} is not a regular file (expected a raw image file)`, d.column);
    } else if (st.size === 0 || st.size % SECTOR !== 0) {
      err(d.line, `disk '${d.spec}': ${d.path} is ${st.size} bytes (expected a non-zero whole number of ` +
        `${SECTOR}-byte sectors)`, d.column);
    }
  }
  if (errors.length > 0) throw new ConfigError(errors);
}

/**
 * Throws ConfigError when VMs meant to run on one host share a name, a UUID or a MAC address,
 * naming every file:line involved. A copied VM directory that was not provisioned shares all
 * three with its original: this is where that shows.
 */
export function checkDistinctIdentities(vms: readonly VmConfig[]): void {
  const errors: Diagnostic[] = [];
  const seen = new Map<string, { vm: VmConfig; line: number }>();
  const claim = (what: string, value: string, vm: VmConfig, line: number, expected: string): void => {
    const key = `${what}\0${value}`;
    const first = seen.get(key);
    if (!first) { seen.set(key, { vm, line }); return; }
    const here = `${vm.displayFile}:${line}`;
    const there = `${first.vm.displayFile}:${first.line}`;
    const message = (other: string) => `${what} ${value} is also used by ${other} (expected ${expected})`;
    errors.push(
      { severity: 'error', file: first.vm.displayFile, line: first.line, message: message(here) },
      { severity: 'error', file: vm.displayFile, line, message: message(there) },
    );
  };
  for (const vm of vms) {
    claim('name', `"${vm.name}"`, vm, vm.lines['name'] ?? 1, 'each VM on a host to have its own name');
    if (vm.uuid) claim('uuid', vm.uuid, vm, vm.lines['uuid'] ?? 1, 'each VM to have its own UUID');
    for (const v of vm.vifs) if (v.mac) claim('mac', v.mac, vm, v.line, 'each vif to have its own MAC address');
  }
  if (errors.length > 0) throw new ConfigError(errors);
}
