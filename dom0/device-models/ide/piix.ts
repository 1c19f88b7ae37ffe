/*
 * The emulated IDE controller of one guest: a PIIX IDE function's primary channel with one disk,
 * run by Dom0 as that guest's device model.
 *
 * QEMU: hw/ide/piix.c (the PIIX3/4 IDE function: legacy ports, bus-master BAR, ISA IRQ 14) over
 * hw/ide/core.c and hw/ide/pci.c, inside the Xen device model (hw/xen/xen-hvm-common.c); libxl
 * starts it for an HVM guest's `disk = [...]` with an emulated (hd*) target. Parts:
 *   core.ts      the ATA device: task file, command engine, PIO (commands.ts: the command table)
 *   bmdma.ts     the bus-master DMA engine and its PRD table walk
 *   ../../lib/raw-image.ts the raw image file behind the disk (shared with blkback); trim.ts, identify.ts
 *   ../xen-hvm.ts the ioreq server that brings the guest's register accesses here
 *   ../mapcache.ts guest RAM for DMA, through foreign mappings
 *
 * Interface, for the toolstack, tests and the benchmark (call from Dom0's kernel, before the
 * guest is unpaused, as libxl starts QEMU before it unpauses an HVM guest):
 *
 *   const model = startIdeModel(k, { domid, image: '/path/disk.img', vcpus: 1 });
 *   ...the guest runs; its driver finds the disk at the legacy ports (domu/ide)...
 *   model.stats();   // what the device and the ioreq server did
 *   model.stop();    // before or after the guest is destroyed: unmaps, closes, frees everything
 *
 * The guest meets this model only through ports 0x1F0-0x1F7, 0x3F6 and PIIX_BMIDE_BASE..+7,
 * ISA IRQ 14 (which it binds as an event channel: hypervisor/hvm-irq.ts), and its own RAM,
 * which the model reads and writes for DMA.
 */
import type { Kernel } from '../../../shared/kernel/kernel.ts';
import { ATA_CMD_BLOCK, ATA_PRIMARY_CMD_BASE, ATA_PRIMARY_CTL_BASE, ATA_PRIMARY_IRQ } from '../../../shared/public/hw/ata.ts';
import { BM_REGS_BYTES, PIIX_BMIDE_BASE } from '../../../shared/public/hw/bmide.ts';
import { MapCache, type MapCacheStats } from '../mapcache.ts';
import { IoreqServer, type IoreqServerStats } from '../xen-hvm.ts';
import { BusMaster, type BusMasterStats } from './bmdma.ts';
import { RawImage } from '../../lib/raw-image.ts';
import { AtaDevice, type AtaStats } from './core.ts';
import { DSM_MAX_BLOCKS, buildIdentify } from './identify.ts';

export interface IdeModelOptions {
  /** The guest this model emulates for. */
  domid: number;
  /** Raw image file (512-byte sectors). */
  image: string;
  readOnly?: boolean;
  /** The guest's vCPUs (one ioreq slot and event channel each). */
  vcpus: number;
  /** Offer TRIM (DATA SET MANAGEMENT); default true. */
  discard?: boolean;
  /** Mapcache size in 64 KiB buckets (default 64: 4 MiB of guest RAM mapped at most). */
  mapcacheBuckets?: number;
  serial?: string;
}

export interface IdeModelStats {
  ata: AtaStats;
  bm: BusMasterStats;
  ioreq: IoreqServerStats;
  mapcache: MapCacheStats & { mapped: number };
}

export interface IdeModel {
  readonly domid: number;
  readonly sectors: number;
  stats(): IdeModelStats;
  stop(): void;
}

export function startIdeModel(k: Kernel, opts: IdeModelOptions): IdeModel {
  const disk = new RawImage(opts.image, opts.readOnly ?? false);
  let server: IoreqServer | null = null;
  let mapcache: MapCache | null = null;
  try {
    server = new IoreqServer(k, opts.domid, opts.vcpus);
    const srv = server;
    const mem = new MapCache(k, opts.domid, opts.mapcacheBuckets);
    mapcache = mem;
    const trim = opts.discard ?? true;
    const identify = buildIdentify({
      sectors: disk.sectors, trim, firmware: 'rv-0.1', model: 'ringvisor PIIX IDE disk',
      serial: opts.serial ?? `RV-IDE-D${opts.domid}`,
    });
    let device: AtaDevice | null = null;
    const bm = new BusMaster(mem, () => device?.dmaStarted());
    device = new AtaDevice(disk, {
      bm,
      setIntrq(level) {
        if (level) bm.interrupt();
        srv.setIsaIrq(ATA_PRIMARY_IRQ, level);
      },
    }, identify, trim ? DSM_MAX_BLOCKS : 0);
    const ata = device;
    srv.mapPorts(ATA_PRIMARY_CMD_BASE, ATA_CMD_BLOCK.length, ata);
    srv.mapPorts(ATA_PRIMARY_CTL_BASE, 1, ata.control);
    srv.mapPorts(PIIX_BMIDE_BASE, BM_REGS_BYTES, bm);
    srv.enable();
    let stopped = false;
    return {
      domid: opts.domid,
      sectors: disk.sectors,
      stats: () => ({ ata: ata.stats, bm: bm.stats, ioreq: srv.stats, mapcache: { ...mem.stats, mapped: mem.mapped } }),
      stop() {
        if (stopped) return;
        stopped = true;
        ata.stop();
        srv.close();
        mem.flush();
        disk.close();
      },
    };
  } catch (e) {
    server?.close();
    mapcache?.flush();
    disk.close();
    throw e;
  }
}
