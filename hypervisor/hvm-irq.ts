/*
 * Interrupt lines of emulated devices: how "IRQ 14 raised" in the device model becomes an event
 * in the guest.
 *
 * Xen: XEN_DMOP_set_isa_irq_level (xen/arch/x86/hvm/dm.c → hvm_isa_irq_assert / _deassert in
 * xen/arch/x86/hvm/irq.c), and the guest's side, PHYSDEVOP_map_pirq + EVTCHNOP_bind_pirq, by which
 * a PVHVM Linux (arch/x86/pci/xen.c, drivers/xen/events/events_base.c xen_bind_pirq_gsi_to_irq)
 * takes the legacy interrupts of its emulated devices as event-channel upcalls instead of through
 * the emulated PIC. When the line rises, Xen's send_guest_pirq marks the bound port pending.
 *
 * What ringvisor does instead, and why: event-channel.ts knows interdomain ports only (no pirq
 * state), and it is not changed for this. So binding IRQ n makes an interdomain channel whose far
 * end is a port in the device model's domain, owned by the hypervisor: allocated unbound for the
 * guest, masked in the model's shared_info (so a guest sending on its end wakes nobody), bound
 * by the guest, remembered in the target's row of hv.ioreq (IO.IRQ_PORT / IRQ_DOM). A rising
 * edge of set_isa_irq_level sends on that far end, from the model's own vCPU, so the event is
 * counted as the model's notification. A level that stays up sends nothing more: the line is
 * level-triggered, an event is an edge, and the guest's driver acknowledges by reading its
 * device's status, after which the model lowers the line (ATA's INTRQ works exactly so).
 *
 * The far end lives with the emulator of the guest's first ioreq server, so a guest binds its
 * interrupt lines after its device model is up; the toolstack starts device models before it
 * unpauses a guest, as libxl does, so that is always true.
 */
import { EVTCHNSTAT_unbound, NR_EVTCHN_PORTS } from '../shared/public/event_channel.ts';
import { shared_info, XEN_EEXIST, XEN_EINVAL, XEN_ENOENT, XEN_EPERM } from '../shared/public/xen.ts';
import { spin_lock, spin_unlock } from './spinlock.ts';
import type { Caller } from './caller.ts';
import { alloc_unbound_port, evtchn_bind_interdomain, evtchn_close_port, evtchn_send } from './event-channel.ts';
import { ioreqLock, serverBase } from './ioreq.ts';
import { E, IO, IOREQ_SERVER_FREE, MAX_DOMAINS, MAX_IOREQ_SERVERS, NR_ISA_IRQS, SV, type HypervisorState } from './state.ts';

const MASK = shared_info.evtchn_mask >> 2;
const validIrq = (irq: number) => Number.isInteger(irq) && irq >= 0 && irq < NR_ISA_IRQS;

/**
 * EVTCHNOP_bind_pirq for the caller's own ISA IRQ `pirq`: the guest's port, or -errno. Binding a
 * line that is bound already is -EEXIST; after the guest closed its port, the line's far end
 * waits unbound and the next bind reconnects to it (as a pirq can be bound again in Xen).
 */
export function evtchn_bind_pirq(c: Caller, pirq: number): number {
  if (!validIrq(pirq)) return -XEN_EINVAL;
  const hv = c.hv;
  const d = c.domid;
  const row = d * IO.WORDS;
  spin_lock(hv.ioreq, ioreqLock(d));
  let far = hv.ioreq[row + IO.IRQ_PORT + pirq];
  let emulator = hv.ioreq[row + IO.IRQ_DOM + pirq];
  let fresh = false;
  if (far !== 0) {
    if (portState(hv, emulator, far) !== EVTCHNSTAT_unbound) far = -XEN_EEXIST;
  } else {
    emulator = -1;
    for (let s = 0; s < MAX_IOREQ_SERVERS && emulator < 0; s++) {
      if (hv.ioreq[serverBase(d, s) + SV.STATE] !== IOREQ_SERVER_FREE) emulator = hv.ioreq[serverBase(d, s) + SV.EMULATOR];
    }
    far = emulator >= 0 ? alloc_unbound_port(hv, emulator, d) : -XEN_ENOENT;
    if (far > 0) {
      fresh = true;
      Atomics.or(hv.sharedInfo[emulator], MASK + (far >> 5), 1 << (far & 31));
      hv.ioreq[row + IO.IRQ_PORT + pirq] = far;
      hv.ioreq[row + IO.IRQ_DOM + pirq] = emulator;
    }
  }
  spin_unlock(hv.ioreq, ioreqLock(d));
  if (far < 0) return far;
  const port = evtchn_bind_interdomain(c, emulator, far);
  if (port < 0 && fresh) {
    spin_lock(hv.ioreq, ioreqLock(d));
    hv.ioreq[row + IO.IRQ_PORT + pirq] = 0;
    hv.ioreq[row + IO.IRQ_DOM + pirq] = 0;
    spin_unlock(hv.ioreq, ioreqLock(d));
    evtchn_close_port(hv, emulator, far);
  }
  return port;
}

/** EVTCHNSTAT_* of port `port` of domain `d`. */
function portState(hv: HypervisorState, d: number, port: number): number {
  return Atomics.load(hv.evtchn, (d * NR_EVTCHN_PORTS + port) * E.WORDS + E.STATE);
}

/** XEN_DMOP_set_isa_irq_level: record the level; on a rising edge, raise the guest's event. */
export function dm_set_isa_irq_level(c: Caller, domid: number, isa_irq: number, level: number): number {
  if (!c.privileged) return -XEN_EPERM;
  if (!(Number.isInteger(domid) && domid >= 0 && domid < MAX_DOMAINS) || domid === c.domid) return -XEN_EPERM;
  if (!validIrq(isa_irq) || (level !== 0 && level !== 1)) return -XEN_EINVAL;
  const hv = c.hv;
  const row = domid * IO.WORDS;
  const bit = 1 << isa_irq;
  spin_lock(hv.ioreq, ioreqLock(domid));
  const old = hv.ioreq[row + IO.IRQ_LEVEL];
  hv.ioreq[row + IO.IRQ_LEVEL] = level ? old | bit : old & ~bit;
  const far = hv.ioreq[row + IO.IRQ_PORT + isa_irq];
  const dom = hv.ioreq[row + IO.IRQ_DOM + isa_irq];
  spin_unlock(hv.ioreq, ioreqLock(domid));
  if (level === 0 || (old & bit) !== 0 || far === 0) return 0; // no edge, or nobody bound the line yet
  if (dom !== c.domid) return -XEN_EPERM; // the line belongs to another device model
  evtchn_send(c, far);
  return 0;
}
