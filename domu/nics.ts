/*
 * Finding the guest's network interfaces at boot: PV vifs on the xenbus "device" bus, each a
 * netfront, and the network stack on the first one, with the vif's MAC and `ip`.
 *
 * Linux: xenbus_probe_frontend's boot-time probe with xen-netfront registered as the "vif" driver,
 * then the init scripts bring eth0 up (`ip addr add` from the distribution's network config; in
 * Xen the address a vif-route setup expects is the vif's `ip=`, which the toolstack writes in the
 * backend directory, readable by the guest). A vif added later (network-attach) is probed the same
 * way and reported through `onHotplug`.
 */
import type { Kernel } from '../shared/kernel/kernel.ts';
import type { XenbusClient } from '../shared/kernel/xenbus/client.ts';
import { registerFrontend } from '../shared/kernel/xenbus/frontend.ts';
import { XS_NET, formatMac } from '../shared/public/io/netif.ts';
import { XS_DIR_DEVICE, XenbusState } from '../shared/public/io/xenbus.ts';
import { formatIPv4, parseIPv4 } from '../shared/public/net/inet.ts';
import { NetStack } from './net/stack.ts';
import { Netfront } from './netfront/netfront.ts';

export interface GuestNics {
  nics: Netfront[];
  /** The stack on the first NIC, or null if the guest has none. */
  stack: NetStack | null;
  closeAll(): Promise<void>;
}

export async function findNics(k: Kernel, xs: XenbusClient, log: (line: string) => void, onHotplug?: (nic: Netfront) => void): Promise<GuestNics> {
  const dir = `${XS_DIR_DEVICE}/vif`;
  const atBoot = new Set((await xs.directory(dir).catch(() => [] as string[])).map((d) => `${dir}/${d}`));
  const nics: Netfront[] = [];
  const ips = new Map<Netfront, number>();
  const closers: (() => Promise<void>)[] = [];
  const closedWaiters = new Map<string, () => void>();
  const closed = new Set<string>();
  await new Promise<void>((resolve) => {
    let waiting = atBoot.size;
    if (waiting === 0) resolve();
    const fronts = new Map<string, Netfront>();
    void registerFrontend(xs, 'vif', (nodename) => {
      const f = new Netfront(k);
      fronts.set(nodename, f);
      return f;
    }, {
      onState: (dev, state) => {
        if (state !== XenbusState.Closed) return;
        closed.add(dev.nodename);
        closedWaiters.get(dev.nodename)?.();
      },
      onProbe: (fe) => {
        const nic = fronts.get(fe.dev.nodename)!;
        nic.shutdownHook = () => fe.shutdown();
        closers.push(async () => {
          await nic.closeDevice();
          if (!closed.has(fe.dev.nodename)) await new Promise<void>((r) => closedWaiters.set(fe.dev.nodename, r));
        });
        void nic.connected.then(async () => {
          const ip = parseIPv4((await xs.tryRead(`${fe.dev.otherend}/${XS_NET.ip}`)) ?? '') ?? 0;
          ips.set(nic, ip);
          log(`netfront: ${nic.name} connected: mac ${formatMac(nic.mac)}, ip ${ip ? formatIPv4(ip) : 'none'}, mtu ${nic.mtu}, ` +
            `${nic.negotiated.queues} queue(s), ${nic.negotiated.split ? 'split' : 'one'} event channel(s), sg ${nic.negotiated.sg ? 'on' : 'off'}`);
          if (atBoot.has(fe.dev.nodename)) {
            nics.push(nic);
            if (--waiting === 0) resolve();
          } else {
            onHotplug?.(nic);
          }
        });
      },
    });
  });
  nics.sort((a, b) => a.name.localeCompare(b.name));
  const first = nics[0];
  return {
    nics,
    stack: first === undefined ? null : new NetStack(first, ips.get(first) ?? 0),
    async closeAll() {
      await Promise.all(closers.map((c) => c()));
    },
  };
}
