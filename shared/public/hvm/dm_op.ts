/*
 * dm_op: the hypercalls a device model makes about the guest it emulates devices for.
 *
 * Xen: xen/include/public/hvm/dm_op.h (XEN_DMOP_*), served by xen/arch/x86/hvm/dm.c and
 * xen/common/ioreq.c; QEMU calls them through libxendevicemodel. Also XENMEM_acquire_resource
 * (memory.h), by which the device model maps a server's ioreq page.
 *
 * The life of an ioreq server, as QEMU's xen_register_ioreq / xen_hvm_init_pc does it:
 *
 *   create_ioreq_server(domid)            → id; Xen allocates the ioreq page and, per vCPU,
 *                                           an unbound event channel in the guest (vp_eport)
 *   acquire_resource(domid, ioreq_server, id, XENMEM_resource_ioreq_server_frame_ioreq(0), gfn)
 *                                         → the page appears at `gfn` in the model's physmap
 *   evtchn_bind_interdomain(domid, slot[v].vp_eport) for every vCPU v
 *   map_io_range_to_ioreq_server(domid, id, XEN_DMOP_IO_RANGE_PORT, first, last)  (inclusive)
 *   set_ioreq_server_state(domid, id, 1)  → accesses to the claimed ranges start arriving
 *   ... set_isa_irq_level(domid, irq, 1 / 0) to raise and lower an interrupt line ...
 *   destroy_ioreq_server(domid, id)       → ranges released, vp_eports closed, page freed once
 *                                           the model unmaps it (memory_remove_from_physmap)
 *
 * Only the control domain may make these calls, and only the server's own emulator may use a
 * server once created (Xen checks the same through XSM and s->emulator).
 *
 * ringvisor differences: buffered ioreqs only for the MMIO zones a device model names
 * (RINGVISOR_DMOP_add_buffered_zone below; the page itself is Xen's), no PCI config space ranges, and get_ioreq_server_info only in its
 * XEN_DMOP_no_gfns form (the legacy way of exposing the page in the guest's own physmap is not
 * offered: a guest could write requests into it).
 */

export type ioservid_t = number;

export const XEN_DMOP_create_ioreq_server = 1;
export const XEN_DMOP_get_ioreq_server_info = 2;
export const XEN_DMOP_map_io_range_to_ioreq_server = 3;
export const XEN_DMOP_unmap_io_range_from_ioreq_server = 4;
export const XEN_DMOP_set_ioreq_server_state = 5;
export const XEN_DMOP_destroy_ioreq_server = 6;
export const XEN_DMOP_set_isa_irq_level = 9;

/* hvm_op.h: create_ioreq_server's handle_bufioreq (QEMU asks for ATOMIC; LEGACY is taken as ATOMIC). */
export const HVM_IOREQSRV_BUFIOREQ_OFF = 0;
export const HVM_IOREQSRV_BUFIOREQ_LEGACY = 1;
export const HVM_IOREQSRV_BUFIOREQ_ATOMIC = 2;

/*
 * ringvisor's one dm_op of its own: name a zone of MMIO whose writes go to the buffered page.
 * Xen has no such call (it buffers only stdvga's writes, chosen inside Xen); QEMU marks such zones
 * with memory_region_add_coalescing, which only KVM acts on (KVM_REGISTER_COALESCED_MMIO). ringvisor
 * lets the device model name the zones, as KVM does, and delivers the writes through Xen's page.
 * All zones of one server must lie in one 1 MiB-aligned window (see ./ioreq.ts, buf_ioreq.addr).
 */
export const RINGVISOR_DMOP_add_buffered_zone = 0x100;
export const MAX_BUFFERED_ZONES = 8;

/* get_ioreq_server_info flags. */
export const XEN_DMOP_no_gfns = 1 << 0;

/* map_io_range_to_ioreq_server types. */
export const XEN_DMOP_IO_RANGE_PORT = 0;    // I/O ports, 0..0xffff
export const XEN_DMOP_IO_RANGE_MEMORY = 1;  // MMIO, guest-physical addresses below 4 GiB here
export const XEN_DMOP_IO_RANGE_PCI = 2;     // not offered by ringvisor

/** xen_dm_op_get_ioreq_server_info's OUT fields. */
export interface DmIoreqServerInfo {
  /** Event channel of the buffered-ioreq ring (0: ringvisor has none). */
  bufioreq_port: number;
}

/* memory.h: XENMEM_acquire_resource for an ioreq server's pages. */
export const XENMEM_resource_ioreq_server = 0;
export const XENMEM_resource_ioreq_server_frame_bufioreq = 0;
/** Frame id of the n-th synchronous ioreq page (ringvisor has one: n = 0). */
export function XENMEM_resource_ioreq_server_frame_ioreq(n: number): number {
  return 1 + n;
}
