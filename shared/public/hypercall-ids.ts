/*
 * Which hypercall a TRC_PV_HYPERCALL record names: every entry of ringvisor's hypercall table, by
 * Xen's hypercall number and sub-op.
 *
 * Xen: xen/include/public/xen.h (__HYPERVISOR_* numbers) and each hypercall's header for its
 * sub-ops: event_channel.h (EVTCHNOP_*), grant_table.h (GNTTABOP_*), memory.h (XENMEM_*),
 * sched.h (SCHEDOP_*), vcpu.h (VCPUOP_*), hvm/dm_op.h (XEN_DMOP_*), domctl.h (XEN_DOMCTL_*),
 * sysctl.h (XEN_SYSCTL_*). Xen's TRC_PV_HYPERCALL(_V2) record carries the hypercall number and
 * its arguments; ringvisor's carries the number and the sub-op, which is what a reader of a trace
 * asks ("which grant op was that?").
 *
 * An id is one number, hypercall << 8 | sub-op, so the one trace point at the dispatch writes it
 * without a lookup. Sub-ops that ringvisor has and Xen numbers otherwise (the storage
 * controller's attach, the PCI listing) get numbers from 0xe0 up, outside Xen's ranges, and are
 * named as ringvisor's own.
 */

/* xen.h's __HYPERVISOR_* (the ones ringvisor's table offers). */
const MEMORY_OP = 12;
const SET_TIMER_OP = 15;
const CONSOLE_IO = 18;
const GRANT_TABLE_OP = 20;
const VCPU_OP = 24;
const SCHED_OP = 29;
const EVENT_CHANNEL_OP = 32;
const SYSCTL = 35;
const DOMCTL = 36;
const DM_OP = 41;
/** The sub-op of a hypercall that has none (set_timer_op). */
const NO_OP = 0xff;

const id = (hc: number, op: number) => (hc << 8) | op;

/** Each hypercall-table entry's id: [hypercall number, sub-op, Xen's names for both]. */
const TABLE = {
  evtchn_bind_interdomain: [EVENT_CHANNEL_OP, 0, 'EVTCHNOP_bind_interdomain'],
  evtchn_bind_virq: [EVENT_CHANNEL_OP, 1, 'EVTCHNOP_bind_virq'],
  evtchn_bind_pirq: [EVENT_CHANNEL_OP, 2, 'EVTCHNOP_bind_pirq'],
  evtchn_close: [EVENT_CHANNEL_OP, 3, 'EVTCHNOP_close'],
  evtchn_send: [EVENT_CHANNEL_OP, 4, 'EVTCHNOP_send'],
  evtchn_status: [EVENT_CHANNEL_OP, 5, 'EVTCHNOP_status'],
  evtchn_alloc_unbound: [EVENT_CHANNEL_OP, 6, 'EVTCHNOP_alloc_unbound'],
  evtchn_unmask: [EVENT_CHANNEL_OP, 9, 'EVTCHNOP_unmask'],
  gnttab_map_grant_ref: [GRANT_TABLE_OP, 0, 'GNTTABOP_map_grant_ref'],
  gnttab_unmap_grant_ref: [GRANT_TABLE_OP, 1, 'GNTTABOP_unmap_grant_ref'],
  gnttab_copy: [GRANT_TABLE_OP, 5, 'GNTTABOP_copy'],
  gnttab_query_size: [GRANT_TABLE_OP, 6, 'GNTTABOP_query_size'],
  memory_decrease_reservation: [MEMORY_OP, 1, 'XENMEM_decrease_reservation'],
  memory_current_reservation: [MEMORY_OP, 3, 'XENMEM_current_reservation'],
  memory_populate_physmap: [MEMORY_OP, 6, 'XENMEM_populate_physmap'],
  memory_add_to_physmap: [MEMORY_OP, 7, 'XENMEM_add_to_physmap'],
  memory_remove_from_physmap: [MEMORY_OP, 15, 'XENMEM_remove_from_physmap'],
  domctl_set_pod_target: [MEMORY_OP, 16, 'XENMEM_set_pod_target'],
  memory_add_to_physmap_batch: [MEMORY_OP, 23, 'XENMEM_add_to_physmap_batch'],
  memory_acquire_resource: [MEMORY_OP, 28, 'XENMEM_acquire_resource'],
  set_timer_op: [SET_TIMER_OP, NO_OP, ''],
  console_io_write: [CONSOLE_IO, 0, 'CONSOLEIO_write'],
  vcpu_op_up: [VCPU_OP, 1, 'VCPUOP_up'],
  vcpu_op_down: [VCPU_OP, 2, 'VCPUOP_down'],
  vcpu_op_is_up: [VCPU_OP, 3, 'VCPUOP_is_up'],
  sched_yield: [SCHED_OP, 0, 'SCHEDOP_yield'],
  sched_block: [SCHED_OP, 1, 'SCHEDOP_block'],
  sched_shutdown: [SCHED_OP, 2, 'SCHEDOP_shutdown'],
  sched_suspend: [SCHED_OP, 2, 'SCHEDOP_shutdown'],
  sched_remote_shutdown: [SCHED_OP, 4, 'SCHEDOP_remote_shutdown'],
  sysctl_tbuf_set_evt_mask: [SYSCTL, 1, 'XEN_SYSCTL_tbuf_op'],
  sysctl_tbuf_drain: [SYSCTL, 1, 'XEN_SYSCTL_tbuf_op'],
  sysctl_physinfo: [SYSCTL, 3, 'XEN_SYSCTL_physinfo'],
  sysctl_getdomaininfolist: [SYSCTL, 6, 'XEN_SYSCTL_getdomaininfolist'],
  sysctl_pci_info: [SYSCTL, 0xe0, 'pci_info (ringvisor)'],
  domctl_createdomain: [DOMCTL, 1, 'XEN_DOMCTL_createdomain'],
  domctl_destroydomain: [DOMCTL, 2, 'XEN_DOMCTL_destroydomain'],
  domctl_pausedomain: [DOMCTL, 3, 'XEN_DOMCTL_pausedomain'],
  domctl_unpausedomain: [DOMCTL, 4, 'XEN_DOMCTL_unpausedomain'],
  domctl_getdomaininfo: [DOMCTL, 5, 'XEN_DOMCTL_getdomaininfo'],
  domctl_shadow_op: [DOMCTL, 10, 'XEN_DOMCTL_shadow_op'],
  domctl_max_mem: [DOMCTL, 11, 'XEN_DOMCTL_max_mem'],
  domctl_setvcpucontext: [DOMCTL, 12, 'XEN_DOMCTL_setvcpucontext'],
  domctl_getvcpucontext: [DOMCTL, 13, 'XEN_DOMCTL_getvcpucontext'],
  domctl_resumedomain: [DOMCTL, 27, 'XEN_DOMCTL_resumedomain'],
  domctl_getpageframeinfo3: [DOMCTL, 28, 'XEN_DOMCTL_getpageframeinfo3'],
  domctl_scheduler_op: [DOMCTL, 16, 'XEN_DOMCTL_scheduler_op'],
  domctl_mem_paging: [DOMCTL, 33, 'XEN_DOMCTL_vm_event_op (paging)'],
  domctl_assign_device: [DOMCTL, 37, 'XEN_DOMCTL_assign_device'],
  domctl_deassign_device: [DOMCTL, 47, 'XEN_DOMCTL_deassign_device'],
  domctl_mem_sharing: [DOMCTL, 58, 'XEN_DOMCTL_mem_sharing_op'],
  domctl_storage_attach: [DOMCTL, 0xe0, 'storage_attach (ringvisor)'],
  domctl_storage_detach: [DOMCTL, 0xe1, 'storage_detach (ringvisor)'],
  domctl_vcpus_loaded: [DOMCTL, 0xe2, 'vcpus_loaded (ringvisor)'],
  dm_op_create_ioreq_server: [DM_OP, 1, 'XEN_DMOP_create_ioreq_server'],
  dm_op_get_ioreq_server_info: [DM_OP, 2, 'XEN_DMOP_get_ioreq_server_info'],
  dm_op_map_io_range_to_ioreq_server: [DM_OP, 3, 'XEN_DMOP_map_io_range_to_ioreq_server'],
  dm_op_unmap_io_range_from_ioreq_server: [DM_OP, 4, 'XEN_DMOP_unmap_io_range_from_ioreq_server'],
  dm_op_set_ioreq_server_state: [DM_OP, 5, 'XEN_DMOP_set_ioreq_server_state'],
  dm_op_destroy_ioreq_server: [DM_OP, 6, 'XEN_DMOP_destroy_ioreq_server'],
  dm_op_set_isa_irq_level: [DM_OP, 9, 'XEN_DMOP_set_isa_irq_level'],
  dm_op_add_buffered_zone: [DM_OP, 0xe0, 'add_buffered_zone (ringvisor)'],
} as const satisfies Record<string, readonly [number, number, string]>;

export type HypercallEntry = keyof typeof TABLE;

/** Table entry → its id (hypercall << 8 | sub-op), for the dispatch's trace point. */
export const HYPERCALL_IDS = Object.freeze(Object.fromEntries(
  Object.entries(TABLE).map(([k, [hc, op]]) => [k, id(hc, op)]),
)) as Readonly<Record<HypercallEntry, number>>;

const HC_NAMES: Record<number, string> = {
  [MEMORY_OP]: 'memory_op', [SET_TIMER_OP]: 'set_timer_op', [CONSOLE_IO]: 'console_io', [GRANT_TABLE_OP]: 'grant_table_op',
  [VCPU_OP]: 'vcpu_op', [SCHED_OP]: 'sched_op', [EVENT_CHANNEL_OP]: 'event_channel_op', [SYSCTL]: 'sysctl', [DOMCTL]: 'domctl',
  [DM_OP]: 'dm_op',
};
const OP_NAMES = new Map(Object.values(TABLE).map(([hc, op, name]) => [id(hc, op), name]));

/** "event_channel_op(EVTCHNOP_send)", from a TRC_PV_HYPERCALL record's hypercall and sub-op words. */
export function hypercallName(hc: number, op: number): string {
  const h = HC_NAMES[hc] ?? `hypercall ${hc}`;
  const o = OP_NAMES.get(id(hc, op));
  return o === '' || op === NO_OP ? h : `${h}(${o ?? `op ${op}`})`;
}
