/*
 * The hotplug step for a vif: put it on its bridge, then tell netback through XenStore.
 *
 * Xen: tools/hotplug/Linux/vif-bridge with vif-common.sh and xen-hotplug-common.sh. When netback
 * creates the vif, udev (or libxl) runs the script with `online`: it finds the bridge (the
 * backend key `bridge`, else the first bridge; xl's documented default is xenbr0), fails if there
 * is none, sets the vif's MAC to fe:ff:ff:ff:ff:ff so the bridge never takes it for its own
 * address, enslaves it and brings it up, then success() writes `hotplug-status` = "connected" in
 * the backend directory; fatal() writes "error" and `hotplug-error`. Netback reports Connected only
 * after it has read "connected" (netback/xenbus.c hotplug_status_changed). `offline` takes the vif
 * off its bridge.
 *
 * ringvisor runs the step in Dom0's kernel thread instead of a shell script, with the same
 * XenStore contract; there is no iptables step (no IP routing in Dom0 here).
 */
import type { XenbusClient } from '../../../shared/kernel/xenbus/client.ts';
import { HOTPLUG_STATUS_CONNECTED, HOTPLUG_STATUS_ERROR, XS_NET } from '../../../shared/public/io/netif.ts';
import { bridges } from '../../services/bridge/bridge.ts';
import type { XenVif } from './interface.ts';

/** xl's default bridge (docs/man/xl-network-configuration.5.pod.in). */
export const DEFAULT_BRIDGE = 'xenbr0';

/** vif-bridge online. Returns the error it wrote, or null. */
export async function vifBridgeOnline(xs: XenbusClient, dir: string, vif: XenVif): Promise<string | null> {
  const name = (await xs.tryRead(`${dir}/${XS_NET.bridge}`)) || DEFAULT_BRIDGE;
  const bridge = bridges.get(name);
  if (bridge === undefined) {
    const why = `Could not find bridge device ${name}`;
    await xs.transaction(async (t) => {
      await xs.write(`${dir}/${XS_NET.hotplug_error}`, why, t);
      await xs.write(`${dir}/${XS_NET.hotplug_status}`, HOTPLUG_STATUS_ERROR, t);
    }).catch(() => undefined);
    return why;
  }
  bridge.addPort(vif);
  vif.bridge = bridge;
  await xs.write(`${dir}/${XS_NET.hotplug_status}`, HOTPLUG_STATUS_CONNECTED).catch(() => undefined);
  return null;
}

/** vif-bridge offline: off the bridge. */
export function vifBridgeOffline(vif: XenVif): void {
  vif.bridge?.removePort(vif);
  vif.bridge = null;
}

/**
 * Wait until the hotplug step has written `hotplug-status`: resolves null on "connected", or the
 * error it reported. The watch is dropped on every exit.
 */
export async function waitForHotplug(xs: XenbusClient, dir: string): Promise<string | null> {
  let settle!: (why: string | null) => void;
  const done = new Promise<string | null>((r) => { settle = r; });
  const status = () => xs.tryRead(`${dir}/${XS_NET.hotplug_status}`);
  // The watch fires once when set; that first callback takes the status read sent right behind the
  // WATCH (xenstored answers in order: one round trip for both, as xenbus_watch_otherend's here).
  let first: Promise<string | null> | null = null;
  const set = xs.watch(`${dir}/${XS_NET.hotplug_status}`, async () => {
    const read = first ?? status();
    first = null;
    const s = await read;
    if (s === HOTPLUG_STATUS_CONNECTED) settle(null);
    else if (s === HOTPLUG_STATUS_ERROR) settle((await xs.tryRead(`${dir}/${XS_NET.hotplug_error}`)) ?? 'hotplug script failed');
  });
  first = status();
  first.catch(() => undefined); // thrown in the callback that awaits it
  const w = await set;
  try {
    return await done;
  } finally {
    await w.unwatch().catch(() => undefined);
  }
}
