// The passthrough guest of `npm start -- single-conduit` (and test/iommu.test.ts): it is given the
// second storage controller and drives it itself. DMA into its own frames works; DMA to an address
// outside its memory is refused by the IOMMU; the controller it was not given does not answer it.
import { BroadcastChannel } from 'node:worker_threads';
import { Kernel } from '../../shared/kernel/kernel.ts';
import { ScDisk } from '../../shared/kernel/drivers/sc-disk.ts';
import type { KernelEnv } from '../../shared/public/hypercall.ts';
import { checksum, fillPattern } from '../../shared/checksum.ts';

export interface ScDmaModule { channel: string; dev: number; nsid: number; outside: number; otherDev: number }
export interface ScDmaReport {
  kind: 'report';
  sectors: number;
  readBack: boolean;
  wroteSum: number;
  faultError: string;
  notOurs: string;
}

export async function main(env: KernelEnv): Promise<void> {
  const k = new Kernel(env);
  const m = env.module as ScDmaModule;
  const ch = new BroadcastChannel(m.channel);
  const disk = new ScDisk(k, m.dev, m.nsid);
  const gfn = k.pages.alloc();
  const page = k.memory.page(gfn, true);
  const data = new Uint8Array(4096);
  fillPattern(data, 99);
  page.set(data);
  disk.begin(true, 8);
  disk.region(gfn, 0, 4096);
  disk.run();
  page.fill(0);
  disk.begin(false, 8);
  disk.region(gfn, 0, 4096);
  disk.run();
  const readBack = checksum(page) === checksum(data);
  // Program the device to read the disk into an address that is not ours.
  let faultError = '';
  try {
    disk.begin(false, 8);
    disk.region(m.outside, 0, 4096);
    disk.run();
  } catch (e) {
    faultError = (e as Error).message;
  }
  let notOurs = '';
  try {
    new ScDisk(k, m.otherDev, m.nsid);
  } catch (e) {
    notOurs = (e as Error).message;
  }
  ch.postMessage({ kind: 'report', sectors: disk.sectors, readBack, wroteSum: checksum(data), faultError, notOurs } satisfies ScDmaReport);
  ch.close();
}
