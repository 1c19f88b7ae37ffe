/*
 * Finding the guest's disks at boot: PV disks on the xenbus "device" bus, and an emulated IDE disk
 * where the toolstack says there is one. Either way the rest of the kernel gets BlockDevices.
 *
 * Linux: xenbus_probe_frontend's boot-time probe and wait_for_devices (every vbd the toolstack
 * created before the guest started must reach Connected before init runs, so the root disk is
 * there), xen-blkfront registered as the "vbd" driver; and, for an HVM guest, ata_piix probing
 * the primary IDE channel. ringvisor's guest cannot probe ports blindly (a DomU touching a port
 * nobody emulates takes a fault), so it looks for the IDE disk only when the command line names
 * one (`ide=hda`, shared/public/cmdline.ts), as firmware tables would tell a real guest.
 *
 * A vbd the toolstack adds later (block-attach) is probed the same way and reported through
 * `onHotplug`; the boot wait does not include it.
 */
import type { Kernel } from '../shared/kernel/kernel.ts';
import type { XenbusClient } from '../shared/kernel/xenbus/client.ts';
import { registerFrontend } from '../shared/kernel/xenbus/frontend.ts';
import { XS_DIR_DEVICE, XenbusState } from '../shared/public/io/xenbus.ts';
import { Blkfront } from './blkfront/blkfront.ts';
import type { BlockDevice } from './block/blkdev.ts';
import { probeIde } from './ide/disk.ts';

export interface GuestDisks {
  /** Connected disks, in device-number order for PV ones, then the emulated one. */
  disks: BlockDevice[];
  /** Ask every disk's backend to let go and wait until each has (the disks' part of a shutdown). */
  closeAll(): Promise<void>;
  /**
   * The disks' part of a suspend (dpm_suspend_start): each PV disk stops issuing and waits for
   * what is in flight, staying Connected (Blkfront.quiesce: no xenstore request); the emulated
   * disk, which has no backend to stay connected to, is closed as at a shutdown. Resolves with
   * how many PV requests were in flight when it began (and were let finish).
   */
  quiesceAll(): Promise<number>;
}

export interface FindDisksOptions {
  /** The emulated disk's name, from the command line (null: none). */
  ide: string | null;
  onHotplug?: (dev: BlockDevice) => void;
  log: (line: string) => void;
}

export async function findDisks(k: Kernel, xs: XenbusClient, opts: FindDisksOptions): Promise<GuestDisks> {
  const vbdDir = `${XS_DIR_DEVICE}/vbd`;
  // wait_for_devices: the ones present now are the ones boot waits for.
  const atBoot = new Set((await xs.directory(vbdDir).catch(() => [] as string[])).map((d) => `${vbdDir}/${d}`));
  const fronts = new Map<string, Blkfront>();
  const closers: (() => Promise<void>)[] = [];
  const quiescers: (() => Promise<number>)[] = [];
  // xenbus_dev_shutdown waits until the frontend has written Closed (not just until blkfront let go).
  const closedWaiters = new Map<string, () => void>();
  const closedNodes = new Set<string>();
  const frontendClosed = (nodename: string) => closedNodes.has(nodename) ? Promise.resolve()
    : new Promise<void>((r) => closedWaiters.set(nodename, r));
  const pv: Blkfront[] = [];
  await new Promise<void>((resolve) => {
    let waiting = atBoot.size;
    if (waiting === 0) resolve();
    void registerFrontend(xs, 'vbd', (nodename) => {
      const front = new Blkfront(k);
      fronts.set(nodename, front);
      return front;
    }, {
      onState: (dev, state) => {
        if (state !== XenbusState.Closed) return;
        closedNodes.add(dev.nodename);
        closedWaiters.get(dev.nodename)?.();
      },
      onProbe: (fe) => {
        const front = fronts.get(fe.dev.nodename)!;
        front.shutdownHook = () => fe.shutdown();
        quiescers.push(() => front.quiesce());
        closers.push(async () => {
          await front.closeDevice();
          await frontendClosed(fe.dev.nodename);
        });
        void front.connected.then(() => {
          opts.log(`blkfront: ${front.name} connected: ${front.sectors} sectors${front.readOnly ? ', read-only' : ''}, ` +
            `${front.negotiated.queues} queue(s), ring of ${1 << front.negotiated.ringPageOrder} page(s), ` +
            `${front.negotiated.indirectSegments} indirect segments, persistent grants ${front.negotiated.persistent ? 'on' : 'off'}`);
          if (atBoot.has(fe.dev.nodename)) {
            pv.push(front);
            if (--waiting === 0) resolve();
          } else {
            opts.onHotplug?.(front);
          }
        });
      },
    });
  });
  pv.sort((a, b) => a.name.length - b.name.length || a.name.localeCompare(b.name)); // xvda, xvdb, ..., xvdaa
  const disks: BlockDevice[] = [...pv];
  if (opts.ide !== null) {
    const ide = await probeIde(k, { mode: 'emu-dma', name: opts.ide });
    opts.log(`ata_piix: ${ide.name}: ${ide.id.model.trim()}, ${ide.sectors} sectors, ` +
      `${ide.id.lba48 ? 'LBA48' : 'LBA28'}, bus-master DMA${ide.features.discard ? ', TRIM' : ''}`);
    disks.push(ide);
    closers.push(() => ide.close());
    quiescers.push(() => ide.close().then(() => 0));
  }
  return {
    disks,
    async closeAll() {
      await Promise.all(closers.map((c) => c()));
    },
    async quiesceAll() {
      return (await Promise.all(quiescers.map((q) => q()))).reduce((a, b) => a + b, 0);
    },
  };
}
