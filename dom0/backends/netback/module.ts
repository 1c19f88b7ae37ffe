/*
 * Loading netback into Dom0: the host's bridges first (as a Linux Dom0's network configuration
 * makes xenbr0 at boot), then the vif backend driver on the xenbus backend bus.
 *
 * Linux: `modprobe xen-netback` (netback_init → xenvif_xenbus_init → xenbus_register_backend),
 * with the bridges from /etc/network/interfaces (or Xen's old network-bridge script). From then on
 * every backend/vif/<fe>/<devid> directory the toolstack creates is probed by a new NetBackend.
 *
 * The bridges come from Dom0's boot module (`net`, see NetHostOptions): by default one, xenbr0,
 * with no uplink. An uplink joins a bridge to other hosts' through the host's network card, whose
 * wire is UDP on 127.0.0.1 (dom0/services/bridge/uplink.ts).
 */
import type { Dom0 } from '../../dom0.ts';
import { registerBackend } from '../../../shared/kernel/xenbus/backend.ts';
import { packetPool } from '../../lib/packet.ts';
import { bridges, createBridge } from '../../services/bridge/bridge.ts';
import { startUplink, type UplinkOptions } from '../../services/bridge/uplink.ts';
import { DEFAULT_BRIDGE } from './hotplug.ts';
import { PCI_DEVICES, PCI_NIC0 } from '../../../shared/public/hw/sc.ts';
import { NetBackend } from './xenbus.ts';

export interface BridgeConfig {
  name: string;
  uplink?: UplinkOptions;
}

/** Dom0 boot module field `net`: the host's network. */
export interface NetHostOptions {
  bridges?: BridgeConfig[];
}

/** The vifs this Dom0 serves, by backend directory (for statistics, capture and tests). */
export const vifs = new Map<string, NetBackend>();

export async function init(dom0: Dom0): Promise<void> {
  const log = (line: string) => dom0.k.log(line);
  const opts = (dom0.k.env.module as { net?: NetHostOptions } | undefined)?.net ?? {};
  const pool = packetPool(dom0.k);
  for (const b of opts.bridges ?? [{ name: DEFAULT_BRIDGE }]) {
    const bridge = createBridge(b.name);
    if (b.uplink !== undefined) {
      const up = await startUplink(dom0.k, bridge, pool, b.uplink);
      log(`bridge ${b.name}: uplink ${up.name} through nic ${PCI_DEVICES[PCI_NIC0]}, wire 127.0.0.1:${up.port}${b.uplink.peers?.length ? `, peers ${b.uplink.peers.join(', ')}` : ''}`);
    }
  }
  log(`netback: bridges ${[...bridges.keys()].join(', ')}`);
  await registerBackend(dom0.xs, 'vif', (nodename) => {
    const be = new NetBackend(dom0.k, pool, log);
    vifs.set(nodename, be);
    return be;
  }, { connectOn: 'connected', disconnectOnClosing: true, onRemove: (dev) => vifs.delete(dev.nodename) });
}

/** A vif by its interface name (vif<domid>.<devid>), for capture. */
export function vifByName(name: string): NetBackend | undefined {
  for (const be of vifs.values()) if (be.vif?.name === name) return be;
  return undefined;
}
