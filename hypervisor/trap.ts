/*
 * Trap-and-emulate for privileged instructions a guest executes directly.
 *
 * Xen: a PV guest runs outside Ring 0, so `in`, `out` and `hlt` fault into Xen
 * (xen/arch/x86/pv/emul-priv-op.c); for an HVM guest the CPU exits to Xen, which handles the
 * access or forwards it to the device model (xen/arch/x86/hvm/io.c, hvm_hlt). ringvisor's guest
 * kernels execute such instructions through the Cpu object, and every call lands here.
 *
 * What the guest gets:
 *   - a write of S5 to the ACPI PM1a control port, or a reset through 0xCF9 / the i8042: the
 *     guest's own shutdown (poweroff or reboot). The machine keeps running; the toolstack acts
 *     on the domain's on_poweroff / on_reboot setting.
 *   - `cli; hlt`: this vCPU goes down for good; when the last one does, the domain is powered
 *     off, as Xen's hvm_hlt does ("halting with interrupts disabled means shut down").
 *   - a port an emulated device claimed: handed to the device model (the ioreq path,
 *     ioreq-send.ts), one round trip per access; the vCPU waits for the answer.
 *   - any other port: a DomU has no I/O privilege, so it is a general-protection fault and the
 *     domain crashes (on_crash: destroy it, or preserve it stopped for inspection). Dom0 owns
 *     the platform, so its stray accesses read as all ones and writes vanish, as on an empty bus.
 *   - an MMIO load or store (mmio_read / mmio_write): to a device model if one claimed the
 *     address, else a PageFault, as any access to a gpa with nothing behind it is.
 */
import type { Cpu } from '../shared/public/hypercall.ts';
import {
  ACPI_PM1A_CNT, ACPI_SLP_EN, I8042_COMMAND, I8042_PULSE_RESET, RESET_CONTROL, RESET_CONTROL_RST_CPU,
} from '../shared/public/platform.ts';
import { PageFault } from '../shared/public/memory.ts';
import type { ShutdownReason } from '../shared/public/xen.ts';
import type { Caller } from './caller.ts';
import { IO_UNCLAIMED } from './ioreq-send.ts';
import type { VcpuScheduler } from './schedule.ts';

/**
 * Forwarding an access to whichever device model claims it: returns the value read (0 for a
 * write), or IO_UNCLAIMED (-1) when nobody claims it (ioreq-send.ts IoreqSender).
 */
export type IoForwarder = (addr: number, size: 1 | 2 | 4, write: boolean, value: number) => number;

export interface TrapHooks {
  shutdown(reason: ShutdownReason, detail: string): never;
  /** This vCPU halted with interrupts off: take it down (and the domain, if it was the last). */
  vcpuDown(detail: string): never;
  /** Port I/O to an emulated device (null: this vCPU has no ioreq path). */
  portIo: IoForwarder | null;
  /** MMIO to an emulated device. */
  mmio: IoForwarder | null;
}

export class TrappingCpu implements Cpu {
  // #private: the guest kernel holds this object (see hypercall.ts HypercallTable).
  readonly #c: Caller;
  readonly #sched: VcpuScheduler;
  readonly #hooks: TrapHooks;

  constructor(c: Caller, sched: VcpuScheduler, hooks: TrapHooks) {
    this.#c = c;
    this.#sched = sched;
    this.#hooks = hooks;
  }

  outb(port: number, value: number): void { this.#io(port, 1, true, value & 0xff); }
  outw(port: number, value: number): void { this.#io(port, 2, true, value & 0xffff); }
  outl(port: number, value: number): void { this.#io(port, 4, true, value >>> 0); }
  inb(port: number): number { return this.#io(port, 1, false, 0); }
  inw(port: number): number { return this.#io(port, 2, false, 0); }
  inl(port: number): number { return this.#io(port, 4, false, 0); }

  mmio_read(addr: number, size: 1 | 2 | 4): number { return this.#mmioAccess(addr, size, false, 0); }
  mmio_write(addr: number, size: 1 | 2 | 4, value: number): void { this.#mmioAccess(addr, size, true, value); }

  cli_hlt(): never {
    this.#c.count('traps');
    return this.#hooks.vcpuDown('hlt with interrupts disabled');
  }

  #io(port: number, size: 1 | 2 | 4, write: boolean, value: number): number {
    this.#c.count('traps');
    this.#sched.preemptionPoint();
    if (write && port === ACPI_PM1A_CNT && (value & ACPI_SLP_EN) !== 0) {
      return this.#hooks.shutdown('poweroff', `${describe(port, size, write)} = 0x${value.toString(16)}: ACPI soft-off (S5)`);
    }
    if (write && port === RESET_CONTROL && (value & RESET_CONTROL_RST_CPU) !== 0) {
      return this.#hooks.shutdown('reboot', `${describe(port, size, write)} = 0x${value.toString(16)}: reset control register`);
    }
    if (write && port === I8042_COMMAND && value === I8042_PULSE_RESET) {
      return this.#hooks.shutdown('reboot', `${describe(port, size, write)} = 0xfe: keyboard controller reset`);
    }
    // The common case, an emulated device's register, allocates nothing on the way.
    const data = this.#hooks.portIo?.(port, size, write, value) ?? IO_UNCLAIMED;
    if (data !== IO_UNCLAIMED) return data;
    if (this.#c.privileged) return write ? 0 : size === 4 ? 0xffffffff : (1 << (8 * size)) - 1;
    return this.#hooks.shutdown('crash', `general protection fault: ${describe(port, size, write)} without I/O privilege`);
  }

  #mmioAccess(addr: number, size: 1 | 2 | 4, write: boolean, value: number): number {
    this.#c.count('traps');
    this.#sched.preemptionPoint();
    const data = this.#hooks.mmio?.(addr, size, write, value >>> 0) ?? IO_UNCLAIMED;
    if (data !== IO_UNCLAIMED) return data;
    this.#c.count('page_faults');
    throw new PageFault(this.#c.domid, addr, write ? 'write' : 'read', `no device claims this MMIO address (${size}-byte ${write ? 'store' : 'load'})`);
  }
}

/** "outb port 0x80", for messages. */
function describe(port: number, size: 1 | 2 | 4, write: boolean): string {
  return `${write ? 'out' : 'in'}${size === 1 ? 'b' : size === 2 ? 'w' : 'l'} port 0x${port.toString(16)}`;
}
