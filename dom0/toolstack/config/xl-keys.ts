/*
 * Which xl.cfg keys exist: the ones ringvisor interprets, its own, and Xen's that it accepts and
 * ignores; and the "did you mean ...?" for a key nobody knows.
 *
 * Xen: the options of xl.cfg(5) (docs/man/xl.cfg.5.pod.in). The list of Xen keys below is every
 * top-level key tools/xl/xl_parse.c reads, so a config written for real Xen loads here with one
 * warning per key ringvisor leaves aside, never with an "unknown key". libxlu itself has no
 * notion of unknown keys (xl simply never asks for them, so a typo is silently a default);
 * ringvisor warns, and suggests the nearest known key.
 */

/** Keys vmconfig.ts interprets (Xen's meaning, ringvisor's model of it). */
export const MODELLED_KEYS: readonly string[] = [
  'name', 'uuid', 'type', 'builder', 'memory', 'maxmem', 'vcpus', 'maxvcpus', 'disk', 'vif',
  'on_poweroff', 'on_reboot', 'on_crash', 'on_watchdog', 'on_soft_reset',
  'cpus', 'cpus_soft', 'cpu_weight', 'cap', 'pci', 'driver_domain',
];

/** ringvisor's own keys (not in Xen; documented in dom0/toolstack/config/README.md). */
export const RINGVISOR_KEYS: readonly string[] = ['workload', 'workload_args', 'template', 'create_images'];

/*
 * Xen keys ringvisor accepts and ignores, grouped by why, so the warning can say why: a reader
 * of the warning learns what part of Xen the reference implementation leaves out.
 */
const IGNORED_GROUPS: ReadonlyArray<{ why: string; keys: readonly string[] }> = [
  {
    why: 'ringvisor boots its own guest kernel; the `workload\' key chooses what the guest runs',
    keys: ['kernel', 'ramdisk', 'cmdline', 'root', 'extra', 'bootloader', 'bootloader_args', 'bootloader_restrict',
      'bootloader_user', 'firmware', 'firmware_override', 'bios', 'bios_path_override', 'boot', 'pvshim',
      'pvshim_path', 'pvshim_cmdline', 'pvshim_extra', 'acpi_firmware', 'smbios_firmware', 'device_tree'],
  },
  {
    why: 'no graphics, sound, serial or USB devices are modelled (the guest\'s console is the PV console)',
    keys: ['sdl', 'vnc', 'vncdisplay', 'vnclisten', 'vncpasswd', 'vncunused', 'vncviewer', 'vfb', 'vkb', 'vkb_device',
      'display', 'xauthority', 'keymap', 'opengl', 'nographic', 'stdvga', 'vga', 'videoram', 'serial', 'soundhw',
      'vsnd', 'vdispl', 'usb', 'usbdevice', 'usbctrl', 'usbdev', 'usbversion', 'spice', 'spicehost', 'spiceport',
      'spicetls_port', 'spicedisable_ticketing', 'spicepasswd', 'spiceagent_mouse', 'spicevdagent',
      'spice_clipboard_sharing', 'spiceusbredirection', 'spice_image_compression', 'spice_streaming_video',
      'channel', 'vuart'],
  },
  {
    why: 'the storage controllers are passed through whole with pci = [...]; these finer passthrough settings are not modelled',
    keys: ['pci_permissive', 'pci_msitranslate', 'pci_seize', 'pci_power_mgmt', 'gfx_passthru', 'rdm',
      'rdm_mem_boundary', 'dtdev', 'ioports', 'iomem', 'irqs', 'passthrough', 'e820_host', 'hvm_pirq', 'nr_spis'],
  },
  {
    why: 'ringvisor\'s device models run in Dom0 itself: there is no QEMU to configure',
    keys: ['device_model', 'device_model_version', 'device_model_override', 'device_model_args',
      'device_model_user', 'device_model_stubdomain_override', 'device_model_stubdomain_seclabel',
      'stubdomain_kernel', 'stubdomain_ramdisk', 'stubdomain_cmdline', 'stubdomain_memory', 'dm_restrict',
      'hdtype', 'xen_platform_pci', 'xen_platform_pci_bar_uc', 'vendor_device'],
  },
  {
    why: 'ringvisor has one cpupool and the credit scheduler only (cpus, cpus_soft, cpu_weight and cap are read)',
    keys: ['pool', 'period', 'slice', 'latency', 'extratime', 'vnuma', 'llc_colors'],
  },
  {
    why: 'other PV device types are not modelled (ringvisor has disks, vifs and the console)',
    keys: ['vtpm', 'p9', 'pvcalls', 'virtio', 'vif2'],
  },
  {
    why: 'the virtual platform (CPU features, firmware tables, timers, paging mode) is not modelled',
    keys: ['acpi', 'acpi_s3', 'acpi_s4', 'acpi_laptop_slate', 'apic', 'pae', 'nx', 'hpet', 'hap', 'oos',
      'shadow_memory', 'nestedhvm', 'altp2m', 'altp2mhvm', 'altp2m_count', 'cpuid', 'viridian', 'smbios',
      'ms_vm_genid', 'tsc_mode', 'timer_mode', 'localtime', 'rtc_timeoffset', 'vpt_align', 'mmio_hole', 'mca_caps',
      'msr_relaxed', 'vpmu', 'vmtrace_buf_kb', 'gic_version', 'sve', 'tee', 'arm_sci', 'trap_unmapped_accesses'],
  },
  {
    why: 'security labels and limits are not modelled',
    keys: ['seclabel', 'init_seclabel', 'max_grant_frames', 'max_maptrack_frames', 'max_grant_version',
      'max_event_channels', 'nomigrate', 'xend_suspend_evtchn_compat', 'xenstore_feature_mask',
      'xenstore_quota'],
  },
];

const IGNORED = new Map<string, string>();
for (const g of IGNORED_GROUPS) for (const k of g.keys) IGNORED.set(k, g.why);

/** Why ringvisor ignores a Xen key, or undefined if the key is not one of Xen's it ignores. */
export function ignoredReason(key: string): string | undefined {
  return IGNORED.get(key);
}

export const ALL_KNOWN_KEYS: readonly string[] = [...MODELLED_KEYS, ...RINGVISOR_KEYS, ...IGNORED.keys()];

/**
 * The known key nearest to `key`, if it is near enough to be a plausible typo: at most one edit
 * per three characters (and at least one), counting a swap of neighbours as one edit, so that
 * `memroy` finds `memory` and `vpcus` finds `vcpus`.
 */
export function nearestKey(key: string, known: readonly string[] = ALL_KNOWN_KEYS): string | undefined {
  const limit = Math.max(1, Math.floor(key.length / 3));
  let best: string | undefined;
  let bestDist = limit + 1;
  for (const k of known) {
    if (Math.abs(k.length - key.length) >= bestDist) continue;
    const d = editDistance(key, k);
    if (d < bestDist) { best = k; bestDist = d; }
  }
  return best;
}

/** Optimal-string-alignment distance: insertions, deletions, substitutions, adjacent swaps. */
export function editDistance(a: string, b: string): number {
  const rows = a.length + 1;
  const cols = b.length + 1;
  const d: number[] = new Array<number>(rows * cols).fill(0);
  for (let i = 0; i < rows; i++) d[i * cols] = i;
  for (let j = 0; j < cols; j++) d[j] = j;
  for (let i = 1; i < rows; i++) {
    for (let j = 1; j < cols; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      let v = Math.min(d[(i - 1) * cols + j]! + 1, d[i * cols + j - 1]! + 1, d[(i - 1) * cols + j - 1]! + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) v = Math.min(v, d[(i - 2) * cols + j - 2]! + 1);
      d[i * cols + j] = v;
    }
  }
  return d[rows * cols - 1]!;
}
