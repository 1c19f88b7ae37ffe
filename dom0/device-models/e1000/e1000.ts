/*
 * One emulated Intel 82540EM (e1000) for one HVM guest, run by Dom0 as that guest's device model,
 * its wire a port on a Dom0 bridge.
 *
 * QEMU: hw/net/e1000.c inside the Xen device model (hw/xen/xen-hvm-common.c), started by libxl for
 * a vif with `model=e1000` (libxl_dm.c: `-device e1000,id=nic<devid>,netdev=net<devid>,mac=...`
 * with a tap netdev the vif-bridge script puts on the vif's bridge as `vif<domid>.<devid>-emu`).
 * Parts:
 *   core.ts   the register file, interrupts, EEPROM, statistics
 *   tx.ts     the transmit ring (start_xmit)      rx.ts  the receive ring (e1000_receive_iov)
 *   dma.ts    guest-physical copies through ../mapcache.ts
 *   ../xen-hvm.ts the ioreq server that brings the guest's BAR0 accesses here
 *
 * Interface, for the toolstack, tests and the benchmark (call from Dom0's kernel before the guest
 * is unpaused, as libxl starts QEMU first):
 *
 *   const nic = startE1000Model(k, { domid, vcpus: 1, index: 0, mac, bridge, buffered: false });
 *   nic.stats();   // the device's counters and the ioreq server's
 *   nic.stop();    // off the bridge, ioreq server destroyed, mappings dropped, frames released
 *
 * Buffered MMIO (`buffered: true`, the vif key `bufioreq=1`): QEMU registers most of BAR0 as
 * coalesced MMIO, so a write there does not wait for the device model. Here the ioreq server gets
 * Xen's buffered ioreq page and names the coalesced zones (shared/public/hw/e1000.ts
 * e1000CoalescedZones: all of BAR0 but MDIC, ICR, ICS, IMS, IMC, TCTL and TDT), and the hypervisor
 * puts the guest's writes there into the page and lets the vCPU go on at once. What must stay
 * synchronous: every read (the guest needs the value) and the writes whose side effects the guest
 * waits on: TDT and TCTL (they send), ICR/ICS/IMS/IMC (they move the interrupt line the driver is
 * about to rely on), MDIC (a PHY access the driver polls for). Ordering is kept: the server takes
 * every buffered write before any synchronous access (xen-hvm.ts), so a driver's RDT write always
 * lands before its next ICR read or TDT write. What it buys: the writes the driver makes per
 * packet that are not in that list (RDT, returning receive buffers) stop costing a round trip.
 *
 * One ioreq server per NIC (as a separate emulator process per device would have in Xen); with the
 * IDE model that allows three NICs per guest (MAX_IOREQ_SERVERS = 4).
 */
import type { Kernel } from '../../../shared/kernel/kernel.ts';
import { E1000_IRQS, E1000_MAX_NICS, E1000_MMIO_SIZE, e1000CoalescedZones, e1000MmioBase } from '../../../shared/public/hw/e1000.ts';
import { parseMac } from '../../../shared/public/io/netif.ts';
import { packetPool, type Packet } from '../../lib/packet.ts';
import { bridges, type Bridge, type BridgePort } from '../../services/bridge/bridge.ts';
import { MapCache, type MapCacheStats } from '../mapcache.ts';
import { IoreqServer, type IoreqServerStats } from '../xen-hvm.ts';
import { E1000Core, type E1000Stats } from './core.ts';
import { GuestDma } from './dma.ts';
import { RxRing } from './rx.ts';
import { TxRing } from './tx.ts';

export interface E1000ModelOptions {
  domid: number;
  vcpus: number;
  /** Which NIC of the guest (its BAR0 and IRQ slot, shared/public/hw/e1000.ts). */
  index: number;
  /** The vif's devid, for the port name vif<domid>.<devid>-emu. */
  devid?: number;
  /** aa:bb:cc:dd:ee:ff, put in the EEPROM and RAL0/RAH0. */
  mac: string;
  /** The bridge the NIC's wire plugs into (default xenbr0). */
  bridge?: string;
  /** Buffered MMIO writes through Xen's buffered ioreq page (see the header). */
  buffered?: boolean;
  mapcacheBuckets?: number;
}

export interface E1000ModelStats {
  nic: E1000Stats;
  ioreq: IoreqServerStats;
  mapcache: MapCacheStats & { mapped: number };
  rxBacklog: number;
}

export interface E1000Model extends BridgePort {
  readonly domid: number;
  readonly buffered: boolean;
  stats(): E1000ModelStats;
  stop(): void;
}

export function startE1000Model(k: Kernel, opts: E1000ModelOptions): E1000Model {
  if (!(Number.isInteger(opts.index) && opts.index >= 0 && opts.index < E1000_MAX_NICS)) {
    throw new Error(`e1000: NIC index ${opts.index} out of range (a guest has at most ${E1000_MAX_NICS} emulated NICs)`);
  }
  const mac = parseMac(opts.mac);
  if (mac === null) throw new Error(`e1000: invalid MAC ${opts.mac}`);
  const bridgeName = opts.bridge ?? 'xenbr0';
  const bridge: Bridge | undefined = bridges.get(bridgeName);
  if (bridge === undefined) throw new Error(`e1000: Could not find bridge device ${bridgeName}`);
  const buffered = opts.buffered ?? false;
  const server = new IoreqServer(k, opts.domid, opts.vcpus, { bufioreq: buffered });
  const mem = new MapCache(k, opts.domid, opts.mapcacheBuckets);
  try {
    const dma = new GuestDma(mem);
    const pool = packetPool(k);
    const core = new E1000Core(mac);
    const irq = E1000_IRQS[opts.index];
    const name = `vif${opts.domid}.${opts.devid ?? opts.index}-emu`;
    const rx = new RxRing(core, dma);
    let attached = true;
    const port: E1000Model = {
      name,
      domid: opts.domid,
      buffered,
      deliver: (p: Packet) => rx.deliver(p),
      stats: () => ({ nic: { ...core.stats }, ioreq: { ...server.stats }, mapcache: { ...mem.stats, mapped: mem.mapped }, rxBacklog: rx.waiting }),
      stop() {
        if (!attached) return;
        attached = false;
        bridge.removePort(port);
        server.close();
        rx.drain();
        mem.flush();
      },
    };
    const tx = new TxRing(core, dma, pool, (p) => {
      if (attached) bridge.input(port, p);
      else p.release();
    });
    core.hooks = {
      setIrq: (level) => server.setIsaIrq(irq, level),
      startXmit: () => tx.start(),
      rxBuffersPosted: () => rx.flush(),
    };
    const base = e1000MmioBase(opts.index);
    server.mapMmio(base, E1000_MMIO_SIZE, core);
    if (buffered) for (const [off, bytes] of e1000CoalescedZones()) server.addBufferedZone(base + off, bytes);
    server.enable();
    bridge.addPort(port);
    return port;
  } catch (e) {
    server.close();
    mem.flush();
    throw e;
  }
}
