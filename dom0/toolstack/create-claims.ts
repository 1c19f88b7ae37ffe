/*
 * What `xl create` claims on the host for a VM besides the domain itself (its disks' backends,
 * its PCI devices, its images), and how each refusal is reported: at the line of the config that
 * asked for it.
 *
 * Xen: tools/libs/light/libxl_create.c and its helpers: libxl_domain_qualifier_to_domid for a
 * disk's backend=, libxl_pci.c (libxl__device_pci_add → XEN_DOMCTL_assign_device) for pci = [...],
 * the block hotplug script's sharing check (tools/hotplug/Linux/block: "already in use") for the
 * images, and xl's reading of createdomain's errno.
 *
 * Apart from libxl.ts, which runs the create in order (./libxl.ts boot()), because each of these
 * is a check with its own error message, and the messages are most of their text.
 */
import type { DomainInfo, Hypercalls } from '../../shared/public/hypercall.ts';
import { XEN_EINVAL, XEN_ENOMEM, errnoName } from '../../shared/public/xen.ts';
import { ConfigError } from './config/config-error.ts';
import type { VmConfig } from './config/vmconfig.ts';
import { ImageInUseError, lockImage, type ImageLock } from './image-lock.ts';
import type { PreparedVm } from './prepare.ts';
import { XlError } from './xl-error.ts';
import { HypercallError, type Toolstack } from './xenstore-home.ts';

/*
 * disk = [ '..., backend=NAME' ]: the domain serving each PV disk, by name or id (libxl's
 * libxl_domain_qualifier_to_domid), Dom0 when none is given. It must be running: xl refuses a
 * backend it cannot find.
 */
export async function diskBackends(prepared: PreparedVm, infoList: () => Promise<DomainInfo[]>): Promise<number[]> {
  const infos = prepared.pvDisks.some((d) => d.backend !== null) ? await infoList() : [];
  return prepared.pvDisks.map((d) => {
    if (d.backend === null) return 0;
    const hit = /^[0-9]+$/.test(d.backend) ? infos.find((i) => i.domid === Number(d.backend)) : infos.find((i) => i.name === d.backend);
    if (hit === undefined || hit.state === 'dying' || hit.state === 'shutdown') {
      throw new ConfigError([{ severity: 'error', file: prepared.vm.displayFile, line: d.line, column: d.column,
        message: `disk '${d.spec}': backend=${d.backend}: no such domain is running (expected a driver domain, ` +
          'driver_domain = 1 with a storage controller in pci = [...], created first)' }]);
    }
    return hit.domid;
  });
}

/* pci = [...]: each device assigned while the domain is paused (XEN_DOMCTL_assign_device). */
export async function assignPci(toolstack: Toolstack, vm: VmConfig, domid: number): Promise<void> {
  for (const p of vm.pci) {
    await toolstack.assignDevices(domid, [p.dev]).catch((e: Error) => {
      const owner = e instanceof HypercallError ? ' (another domain has it)' : '';
      throw new ConfigError([{ severity: 'error', file: vm.displayFile, line: p.line, column: p.column,
        message: `pci '${p.spec}': ${p.bdf} cannot be assigned: ${e.message}${owner}` }]);
    });
  }
}

/*
 * The block hotplug script's sharing check, before anything is built: every image the VM
 * attaches, locked in its mode across the machine's ringvisor hosts; all or none.
 */
export function lockImages(prepared: PreparedVm, socket: string, log: (line: string) => void): ImageLock[] {
  const vm = prepared.vm;
  const locks: ImageLock[] = [];
  const disks = [...prepared.pvDisks, ...(prepared.emulatedDisk ? [prepared.emulatedDisk] : [])];
  try {
    for (const d of disks) {
      if (d.path === null) continue; // an empty CD-ROM drive
      locks.push(lockImage(d.path, d.readonly ? 'r' : 'w', { domain: vm.name, host: socket }, {
        force: d.sharedWrite,
        onStale: (h) => log(`xl: removed a stale lock on ${h.image}: ${h.domain} of host pid ${h.pid}, which is gone`),
      }));
    }
  } catch (e) {
    for (const l of locks) l.release();
    if (!(e instanceof ImageInUseError)) throw e;
    const d = disks.find((x) => x.path === e.image)!;
    throw new ConfigError([{ severity: 'error', file: vm.displayFile, line: d.line, column: d.column,
      message: `disk '${d.spec}': ${e.message} (expected ${e.mode === 'w' ? 'the image unused elsewhere for a read-write disk; ' +
        'access w! shares it anyway' : 'no read-write user for a read-only disk'})` }]);
  }
  return locks;
}

/*
 * createdomain returns only an errno (as Xen's does); name the config key that asked for what
 * was refused. EINVAL: of what the config sets, the hypervisor checks only the vCPU count;
 * ENOMEM: the memory, or every domain id in use.
 */
export async function buildFailure(hc: Hypercalls, vm: VmConfig, e: HypercallError): Promise<Error> {
  const at = (key: string, fallback: string, message: string) =>
    new ConfigError([{ severity: 'error', file: vm.displayFile, line: vm.lines[key] ?? vm.lines[fallback] ?? 1, message }]);
  const errno = errnoName(-e.errno);
  if (e.errno === XEN_EINVAL) {
    return at('vcpus', 'maxvcpus', `vcpus = ${vm.vcpus}: the hypervisor refused to create the domain: ${errno} ` +
      '(expected fewer vCPUs; the host\'s log gives its limit)');
  }
  if (e.errno === XEN_ENOMEM) {
    const p = await hc.sysctl_physinfo();
    if (typeof p !== 'number' && p.nr_domains >= p.max_domains) {
      return new XlError('failed', `cannot create ${vm.name}: ${errno}: all ${p.max_domains} domain ids are in use`);
    }
    const free = typeof p === 'number' ? '' : `, ${Math.floor((p.free_pages * 4096) / 1048576)} MiB free`;
    return at('memory', 'maxmem', `memory = ${vm.memoryMiB} MiB: the hypervisor could not build the domain: ${errno}` +
      ` (expected at most what the host has free${free})`);
  }
  return new XlError('failed', `cannot create ${vm.name}: ${errno}`);
}
