/*
 * Event channels: the virtual interrupt lines between domains.
 *
 * Xen: xen/include/public/event_channel.h (EVTCHNOP_*, EVTCHNSTAT_*), delivered through the
 * 2-level bitmaps of shared_info (see ./xen.ts).
 *
 * A port is a per-domain number. One side allocates an unbound port naming the domain it
 * expects; that domain binds to it, getting a port of its own; from then on a send on either
 * port sets the other's pending bit and, unless masked, wakes the other's vCPU.
 */

export const EVTCHNOP_bind_interdomain = 0;
export const EVTCHNOP_bind_virq = 1;
export const EVTCHNOP_close = 3;
export const EVTCHNOP_send = 4;
export const EVTCHNOP_status = 5;
export const EVTCHNOP_alloc_unbound = 6;
export const EVTCHNOP_unmask = 9;

/* Port states, as EVTCHNOP_status reports them. */
export const EVTCHNSTAT_closed = 0;      // free
export const EVTCHNSTAT_unbound = 1;     // waiting for remote_dom to bind
export const EVTCHNSTAT_interdomain = 2; // connected to (remote_dom, remote_port)
export const EVTCHNSTAT_pirq = 3;
export const EVTCHNSTAT_virq = 4;        // a virtual IRQ from the hypervisor itself
export const EVTCHNSTAT_ipi = 5;
export const EVTCHNSTAT_NAMES = ['closed', 'unbound', 'interdomain', 'pirq', 'virq', 'ipi'] as const;

/*
 * Virtual IRQs (xen.h VIRQ_*): events the hypervisor itself raises, on a port the guest binds with
 * EVTCHNOP_bind_virq. A "global" virq is delivered to one domain only (Xen: the hardware domain,
 * unless the toolstack names another with XEN_DOMCTL_set_virq_handler), on its vCPU 0. ringvisor
 * raises one, and delivers it to Dom0:
 *
 *   VIRQ_DOM_EXC  a domain shut down (it stopped, and waits for the toolstack to act on its
 *                 on_poweroff / on_reboot / on_crash) or was destroyed. The event says only "look":
 *                 the receiver asks which domains changed (getdomaininfolist), as xenstored's
 *                 domain_cleanup and libxl's death watch do.
 */
export const VIRQ_DOM_EXC = 3;
/**
 * VIRQ_TIMER (a per-vCPU virq: each vCPU binds its own, on itself): the singleshot timer a vCPU set
 * with set_timer_op expired. Raised no earlier than the deadline (see shared/kernel/timer.ts).
 */
export const VIRQ_TIMER = 0;
export const NR_VIRQS = 24;

/*
 * 2-level event channels cover 4096 ports on a 64-bit guest; Xen's default per-guest limit is
 * 1023 (port 0 is never valid). ringvisor keeps that limit for every domain.
 */
export const EVTCHN_2L_NR_CHANNELS = 4096;
export const NR_EVTCHN_PORTS = 1024;

export interface EvtchnStatus {
  status: number;       // EVTCHNSTAT_*
  vcpu: number;         // the vCPU notified
  remote_dom: number;   // unbound: who may bind; interdomain: the peer
  remote_port: number;  // interdomain: the peer's port; virq: the virq number (Xen's status.u.virq)
}
