/*
 * vCPU hot-plug: the hypercalls and the XenStore nodes a guest and its toolstack agree on.
 *
 * Xen: xen/include/public/vcpu.h (VCPUOP_up, VCPUOP_down, VCPUOP_is_up: ringvisor's
 * Hypercalls.vcpu_op_*, ./hypercall.ts) and the nodes libxl writes in the domain's home
 * (libxl_dom.c libxl__build_post, libxl_domain.c libxl__set_vcpuonline_xenstore) that Linux's
 * drivers/xen/cpu_hotplug.c watches:
 *
 *   /local/domain/<id>/cpu/<N>/availability   "online" | "offline", one per vCPU up to maxvcpus;
 *                                              written by the toolstack, read by the guest
 *
 * The guest watches the `cpu` directory; an event names the node that changed, and the guest
 * reads it and brings vCPU N up (VCPUOP_up) or takes it down (it stops its work there, then the
 * vCPU calls VCPUOP_down on itself). Any other value is ignored with a message, as Linux does.
 */

/** The directory the guest watches, relative to its home. */
export const XS_CPU_DIR = 'cpu';
/** `cpu/<N>/availability`, relative to the domain's home. */
export function xsCpuAvailability(vcpu: number): string {
  return `${XS_CPU_DIR}/${vcpu}/availability`;
}
export const CPU_ONLINE = 'online';
export const CPU_OFFLINE = 'offline';
