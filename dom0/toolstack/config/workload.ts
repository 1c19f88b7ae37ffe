/*
 * ringvisor's workload keys: what a guest does once it has booted.
 *
 * Xen has no such key: a real guest runs whatever its disk image boots into, and a config
 * passes it words through `extra` (the kernel command line, start_info.cmd_line for a PV guest).
 * A ringvisor guest kernel is the project's own code, so the config names a workload instead,
 * and the toolstack hands it to the guest the same way Xen hands `extra`: on the command line,
 * as "workload=NAME key=value ...".
 *
 *   workload      = "disk-check"                        one name from WORKLOADS
 *   workload_args = [ "disk=xvda", "bs=4096", "count=256" ]   optional KEY=VALUE strings
 *
 * Arguments every disk workload understands are checked here (ARGS); a workload may read more,
 * which pass through unchecked. A name outside WORKLOADS is a warning, not an error: the set
 * lives with the guest kernel (domu/), which this toolstack may not import.
 */
import type { Report } from './config-error.ts';
import type { DiskConfig } from './devices.ts';
import { nearestKey } from './xl-keys.ts';
import { getString, getStringList, keyLine } from './xlcfg-get.ts';
import type { XlConfig } from './xlcfg-parse.ts';

export interface WorkloadConfig {
  name: string;
  /** workload_args, in order; keys are unique. */
  args: Record<string, string>;
  line: number;
}

/** The workloads scenarios run, and what each does. */
export const WORKLOADS: Readonly<Record<string, string>> = {
  'idle': 'boot, connect the devices, wait to be shut down',
  'disk-check': 'write a pattern over the disk, read it back and verify it; power off, or crash on a mismatch',
  'fio-seq-read': 'sequential reads of bs bytes, count times (throughput)',
  'fio-seq-write': 'sequential writes of bs bytes, count times (throughput)',
  'fio-rand-read': 'reads of bs bytes at random aligned offsets, count times (IOPS)',
  'fio-rand-write': 'writes of bs bytes at random aligned offsets, count times (IOPS)',
  'write-log': 'write blocks 0, 1, 2, ... of a known pattern, flushing now and then, printing how far the disk has acknowledged (a crash test\'s guest side)',
  'cpu-burn': 'CPU work in short deterministic steps, shared by every online vCPU, for seconds=N or units=N (default: until shut down), work units per second each second',
  'io-wake': 'sleep period=MS (default 5) on the guest timer, wake, a little work, count times (default 200): how late each wake-up ran',
  'mem-touch': 'write a working set of wss=MiB (default 4) of guest memory page by page, checking each pass against the one before, passes=N (default: until stopped); resumable: its progress is in guest memory, so it carries on after save/restore or migration; with serve=PORT (any workload) a udp-rr server answers beside it',
  'ping': 'ICMP echo to target=IP, count times, each reply checked and timed (needs a vif)',
  'udp-stream': 'netperf UDP_STREAM: role=recv, or role=send target=IP size=BYTES count=N; every payload checked',
  'udp-rr': 'netperf UDP_RR: role=server, or role=client target=IP size=BYTES count=N (round trips)',
  'udp-probe': 'ask a udp-rr server at target=IP, one request at a time, re-asking after retry=MS (default 20); count=N (default 0: forever), a progress line each report=N answers, a line for each silence longer than gap=MS; every answer checked',
  'mem-image': 'a common image=MiB, a working set ws=MiB with a hot=MiB part rewritten each of rounds=N rounds period=MS apart; every page verified by checksum',
};

/** Arguments shared by the disk workloads, with the check each value must pass. */
export const ARGS: Readonly<Record<string, { meaning: string; valid: RegExp; expected: string }>> = {
  disk: { meaning: 'the vdev to use (default: the first disk)', valid: /^[a-z0-9]+$/, expected: 'a vdev of this VM, e.g. xvda' },
  bs: { meaning: 'bytes per request', valid: /^[1-9][0-9]*$/, expected: 'a positive multiple of 512' },
  count: { meaning: 'requests to issue (disk-check: blocks to check; default the whole disk)', valid: /^[0-9]+$/, expected: 'a whole number' },
  seed: { meaning: 'seed for random offsets and data', valid: /^[0-9]+$/, expected: 'a whole number' },
  iodepth: { meaning: 'requests in flight (default 8)', valid: /^[1-9][0-9]*$/, expected: 'a whole number from 1' },
  then: { meaning: 'after the workload: idle, or poweroff (default: poweroff for disk-check, idle otherwise)', valid: /^(idle|poweroff)$/, expected: '"idle" or "poweroff"' },
};

/** start_info.cmd_line holds 1024 bytes including the terminating NUL (MAX_GUEST_CMDLINE). */
export const MAX_CMDLINE = 1023;

export function interpretWorkload(cfg: XlConfig, disks: readonly DiskConfig[], report: Report): WorkloadConfig | null {
  const w = getString(cfg, 'workload', report, 'workload = "NAME", e.g. "disk-check"');
  const argItems = getStringList(cfg, 'workload_args', report, 'workload_args = [ "KEY=VALUE", ... ]');
  if (!w) {
    if (argItems && !cfg.settings.has('workload')) {
      report.error(keyLine(cfg.settings.get('workload_args')!),
        'workload_args given without a workload (expected workload = "NAME" as well)');
    }
    return null;
  }
  const line = w.loc.line;
  if (!/^[a-z][a-z0-9-]*$/.test(w.text)) {
    report.error(line, `workload "${w.text}" (expected a name of lower-case letters, digits and -, e.g. "disk-check")`,
      w.loc.column);
    return null;
  }
  if (!(w.text in WORKLOADS)) {
    const near = nearestKey(w.text, Object.keys(WORKLOADS));
    report.warn(line, `workload "${w.text}" is not one ringvisor ships` +
      `${near ? ` (did you mean "${near}"?)` : ` (known: ${Object.keys(WORKLOADS).join(', ')})`}`, w.loc.column);
  }

  const args: Record<string, string> = {};
  for (const item of argItems ?? []) {
    const { line: l, column: c } = item.loc;
    const m = /^([a-z][a-z0-9_]*)=(\S+)$/.exec(item.text);
    if (!m) {
      report.error(l, `workload_args entry "${item.text}" (expected KEY=VALUE with a lower-case key and no blanks)`, c);
      continue;
    }
    const [, key, value] = m as unknown as [string, string, string];
    if (key in args) {
      report.error(l, `workload_args gives \`${key}' twice (expected each argument once)`, c);
      continue;
    }
    const rule = ARGS[key];
    if (rule && !(rule.valid.test(value) && argFits(key, value, disks))) {
      report.error(l, `workload_args ${key}=${value} (expected ${rule.expected})`, c);
      continue;
    }
    args[key] = value;
  }
  const wl: WorkloadConfig = { name: w.text, args, line };
  const bytes = Buffer.byteLength(workloadCmdline(wl));
  if (bytes > MAX_CMDLINE) {
    report.error(line, `the workload's command line is ${bytes} bytes (expected at most ${MAX_CMDLINE})`);
  }
  return wl;
}

/* The checks a pattern cannot make: block sizes are whole sectors, a disk is one of this VM's. */
function argFits(key: string, value: string, disks: readonly DiskConfig[]): boolean {
  if (key === 'bs') return Number(value) % 512 === 0;
  if (key === 'disk') return disks.some((d) => d.vdev.name === value);
  return true;
}

/** "workload=NAME key=value ...": what the guest finds in start_info.cmd_line. */
export function workloadCmdline(w: WorkloadConfig): string {
  return [`workload=${w.name}`, ...Object.entries(w.args).map(([k, v]) => `${k}=${v}`)].join(' ');
}
