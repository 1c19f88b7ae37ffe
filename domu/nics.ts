/*
 * Finding the guest's network interfaces at boot: PV vifs on the xenbus "device" bus, each a
 * netfront, and the network stack on the first one, with the vif's MAC and `ip`.
 *
 * Linux: xenbus_probe_frontend's boot-time probe with xen-netfront registered as the "vif" driver,
 * then the init scripts bring eth0 up (`ip addr add` from the distribution's network config; in
 * Xen the address a vif-route setup expects is the vif's `ip=`, which the toolstack writes in the
 * backend directory, readable by the guest). A vif added later (network-attach) is probed the same
 * way and reported through `onHotplug`.
 *
 * An HVM guest's emulated NICs (the command line's e1000=IP,..., shared/public/cmdline.ts) are
 * probed after the vifs, as e1000_probe runs for each PCI function firmware listed; their names
 * follow the vifs' (eth<n>), and the stack goes on the first NIC of all.
 *
 * After a resume the vifs the suspended kernel had (`present`, from its resume record: domu/resume.ts)
 * are probed at once, as Linux's xenbus_dev_resume goes over the devices it has, not after the
 * listing of device/vif answers; the listing then finds them known. A suspend keeps the devids of
 * the vifs connected then (GuestNics.vifs).
 */
import type { Kernel } from '../shared/kernel/kernel.ts';
import type { XenbusClient } from '../shared/kernel/xenbus/client.ts';
import { registerFrontend } from '../shared/kernel/xenbus/frontend.ts';
import { XS_NET, formatMac } from '../shared/public/io/netif.ts';
import { XS_DIR_DEVICE, XenbusState } from '../shared/public/io/xenbus.ts';
import { formatIPv4, parseIPv4 } from '../shared/public/net/inet.ts';
import { NetStack } from './net/stack.ts';
import { Netfront } from './netfront/netfront.ts';
import { probeE1000 } from './e1000/e1000.ts';
import { E1000_IRQS } from '../shared/public/hw/e1000.ts';
import type { NetDevice } from './net/netdev.ts';

export interface GuestNics {
  nics: NetDevice[];
  /** The stack on the first NIC, or null if the guest has none. */
  stack: NetStack | null;
  /** The PV vifs' devids (device/vif/N) connected now: what a suspend keeps for the resumed kernel (domu/resume.ts). */
  vifs(): number[];
  closeAll(): Promise<void>;
  /**
   * A suspend's part (domu/kernel.ts suspend()): the vifs stay connected, as Linux's netfront
   * does; an emulated NIC is stopped (its DMA off), since no toolstack reset reaches a device model.
   */
  quiesceAll(): Promise<void>;
}

export async function findNics(k: Kernel, xs: XenbusClient, log: (line: string) => void, onHotplug?: (nic: Netfront) => void,
  e1000: string | null = null, neighbours: readonly (readonly [number, Uint8Array])[] | null = null,
  present: readonly number[] | null = null): Promise<GuestNics> {
  const resumed = neighbours !== null;
  const dir = `${XS_DIR_DEVICE}/vif`;
  // The vifs present now are the ones boot waits for; listed while the bus watch is being set (one
  // round trip for both: xenstored answers the listing first).
  const listed = xs.directory(dir).catch(() => [] as string[]).then((ds) => new Set(ds.map((d) => `${dir}/${d}`)));
  const nics: Netfront[] = [];
  const ips = new Map<Netfront, number>();
  const closers: (() => Promise<void>)[] = [];
  const emulated: (() => Promise<void>)[] = [];
  const closedWaiters = new Map<string, () => void>();
  const closed = new Set<string>();
  const connectedVifs = new Set<number>();
  const devidOf = (nodename: string) => Number(nodename.slice(nodename.lastIndexOf('/') + 1));
  await new Promise<void>((resolve) => {
    let waiting = -1;
    void listed.then((atBoot) => { waiting = atBoot.size; if (waiting === 0) resolve(); });
    const fronts = new Map<string, Netfront>();
    void registerFrontend(xs, 'vif', (nodename) => {
      const f = new Netfront(k);
      fronts.set(nodename, f);
      return f;
    }, {
      onState: (dev, state) => {
        if (state !== XenbusState.Closed) return;
        connectedVifs.delete(devidOf(dev.nodename));
        closed.add(dev.nodename);
        closedWaiters.get(dev.nodename)?.();
      },
      onProbe: (fe) => {
        const nic = fronts.get(fe.dev.nodename)!;
        // The address, read while netfront's handshake goes on (not after it: a round trip the
        // gratuitous ARP would wait for).
        const ipRead = xs.tryRead(`${fe.dev.otherend}/${XS_NET.ip}`);
        ipRead.catch(() => undefined); // awaited once connected
        nic.shutdownHook = () => fe.shutdown();
        closers.push(async () => {
          await nic.closeDevice();
          if (!closed.has(fe.dev.nodename)) await new Promise<void>((r) => closedWaiters.set(fe.dev.nodename, r));
        });
        void nic.failed.then(async (why) => {
          log(`netfront: ${why}; the vif is not used`);
          if ((await listed).has(fe.dev.nodename) && --waiting === 0) resolve();
        });
        void nic.connected.then(async () => {
          const ip = parseIPv4((await ipRead) ?? '') ?? 0;
          const atBoot = await listed;
          ips.set(nic, ip);
          connectedVifs.add(devidOf(fe.dev.nodename));
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
      // A resumed kernel's vifs (domu/resume.ts): probed at once, beside the listing, not after it.
      present: present ?? [],
    });
  });
  nics.sort((a, b) => a.name.localeCompare(b.name));
  const all: NetDevice[] = [...nics];
  const addrs = new Map<NetDevice, number>(ips);
  for (const [index, ip] of (e1000 === null || e1000 === '' ? [] : e1000.split(',')).entries()) {
    const nic = probeE1000(k, { index, name: `eth${all.length}` });
    const addr = parseIPv4(ip) ?? 0;
    addrs.set(nic, addr);
    all.push(nic);
    closers.push(() => nic.close());
    emulated.push(() => nic.close());
    log(`e1000: ${nic.name}: Intel 82540EM at 0x${nic.regs.base.toString(16)}, irq ${E1000_IRQS[index]}, mac ${formatMac(nic.mac)}, ` +
      `ip ${addr ? formatIPv4(addr) : 'none'}`);
  }
  const first = all[0];
  const stack = first === undefined ? null : withTimer(new NetStack(first, addrs.get(first) ?? 0), k);
  // After a resume (a migration, a restore), netfront has reconnected to this host's netback and
  // posted fresh rx buffers; Linux's netback_changed then calls netdev_notify_peers, and the
  // interface, which kept its address across the suspend, sends a gratuitous ARP. Here the stack
  // is rebuilt after the reconnection (the old one was on the old thread's heap), so it announces
  // itself once it exists. At a first boot Linux sends none (no address yet when netfront connects).
  if (resumed && stack !== null) stack.arp.restore(neighbours); // the table the suspended kernel kept (domu/resume.ts)
  if (resumed && stack !== null && stack.ip !== 0) {
    stack.announce();
    log(`${stack.dev.name}: resumed; gratuitous ARP for ${formatIPv4(stack.ip)} (netdev_notify_peers); ${stack.arp.entries().length} neighbour(s) kept; ` +
      `xenstore since boot: ${xs.stats.requests} requests in ${xs.stats.rounds} round trips`);
  }
  return {
    nics: all,
    stack,
    vifs: () => [...connectedVifs].sort((a, b) => a - b),
    async closeAll() {
      await Promise.all(closers.map((c) => c()));
    },
    async quiesceAll() {
      await Promise.all(emulated.map((c) => c()));
    },
  };
}

/** A stack that re-sends unanswered ARP requests on the guest's own timer. */
function withTimer(stack: NetStack, k: Kernel): NetStack {
  stack.sleep = (ms) => k.timers.sleep(ms);
  stack.tracer = k.hypercall;
  return stack;
}
