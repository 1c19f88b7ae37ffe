/*
 * The guest's window on one e1000's registers: 32-bit loads and stores into BAR0, each of which
 * traps to the hypervisor (an MMIO exit) and reaches the device model in Dom0 as an ioreq.
 *
 * Linux: drivers/net/ethernet/intel/e1000/e1000_hw.h's er32 / ew32 (readl / writel on hw_addr)
 * and E1000_WRITE_FLUSH (a read of STATUS, so that posted writes have reached the device before
 * the driver goes on). A write may be buffered by the hypervisor (the vif's bufioreq=1, see
 * dom0/device-models/e1000/e1000.ts): the guest cannot tell, except that it costs less; the flush
 * read is what makes it visible when the driver needs it to be.
 *
 * `traps` counts every access made here, so a caller can set it against the hypervisor's count.
 */
import type { Kernel } from '../../shared/kernel/kernel.ts';
import { E1000_STATUS, e1000MmioBase } from '../../shared/public/hw/e1000.ts';

export class E1000Regs {
  readonly base: number;
  traps = 0;

  constructor(private readonly k: Kernel, index: number) {
    this.base = e1000MmioBase(index);
  }

  /** er32. */
  read(off: number): number {
    this.traps++;
    return this.k.cpu.mmio_read(this.base + off, 4) >>> 0;
  }

  /** ew32. */
  write(off: number, value: number): void {
    this.traps++;
    this.k.cpu.mmio_write(this.base + off, 4, value >>> 0);
  }

  /** E1000_WRITE_FLUSH. */
  flush(): void {
    this.read(E1000_STATUS);
  }
}
