/*
 * The harness guest's emulated NIC: an HVM test guest with `e1000` in its module probes the e1000
 * at slot 0 (domu/e1000) instead of waiting for a vif on xenbus, and takes its address from the
 * module (the toolstack's `e1000=` command-line word carries it for a real VM).
 */
import { probeE1000 } from '../../domu/e1000/e1000.ts';
import type { NetDevice } from '../../domu/net/netdev.ts';
import type { Kernel } from '../../shared/kernel/kernel.ts';
import { parseIPv4 } from '../../shared/public/net/inet.ts';

export interface HarnessNic extends NetDevice {
  readonly negotiated: Record<string, number | boolean>;
  closeDevice(): Promise<void>;
}

export function e1000ForHarness(k: Kernel, spec: { ip?: string; txKick?: 'burst' | 'each' }): { nic: HarnessNic; ip: number } {
  const dev = probeE1000(k, { index: 0, txKick: spec.txKick });
  const nic = Object.assign(dev, { negotiated: {}, closeDevice: () => dev.close() });
  return { nic, ip: parseIPv4(spec.ip ?? '') ?? 0 };
}
