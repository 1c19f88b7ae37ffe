/*
 * ioreq servers, hypervisor side: who emulates which of a guest's port and MMIO ranges.
 *
 * Xen: xen/common/ioreq.c (ioreq_server_create, ioreq_server_map_io_range,
 * ioreq_server_set_state, ioreq_server_destroy, ioreq_server_get_frame) and the dm_op
 * dispatcher xen/arch/x86/hvm/dm.c; the ABI is shared/public/hvm/ioreq.ts and dm_op.ts.
 *
 * A server is a row in `hv.ioreq` under its target domain (state.ts IO / SV), so that the
 * target's vCPU threads, which look servers up on every trapped access (ioreq-send.ts), and the
 * device model's thread, which changes them by dm_op, see one table. The row's lock guards every
 * word of it; nothing here waits while holding it.
 *
 * Creating a server allocates its ioreq page (a frame owned by the target, not counted in its
 * pages and never in its physmap, as Xen's MEMF_no_refcount ioreq pages) and one event channel
 * per vCPU in the target,
 * unbound and waiting for the emulator: each vCPU's slot carries its port in vp_eport, which is
 * where QEMU reads it from before binding. The emulator maps the page with acquire_resource.
 *
 * One thing ringvisor cannot model: Xen marks those per-vCPU ports as consumed by Xen itself, so
 * the guest cannot see or close them. ringvisor's event channels have no such state (and
 * event-channel.ts is not changed for it), so they are ordinary ports in the guest's table: a
 * guest that closes one only stops its own emulated devices from hearing it.
 *
 * Teardown: destroy_ioreq_server and the death of either end (hvm_domain_kill, from domain_kill)
 * complete any access a vCPU is still waiting on (it reads all ones, like an empty bus), close
 * the ports, and give the page back once nothing maps it.
 */
import {
  HVM_IOREQSRV_BUFIOREQ_ATOMIC, HVM_IOREQSRV_BUFIOREQ_LEGACY, HVM_IOREQSRV_BUFIOREQ_OFF, XENMEM_resource_ioreq_server,
  XENMEM_resource_ioreq_server_frame_bufioreq, XENMEM_resource_ioreq_server_frame_ioreq,
  XEN_DMOP_IO_RANGE_MEMORY, XEN_DMOP_IO_RANGE_PORT, XEN_DMOP_no_gfns, type DmIoreqServerInfo,
} from '../shared/public/hvm/dm_op.ts';
import {
  IOREQ_W, STATE_IOREQ_INPROCESS, STATE_IOREQ_READY, STATE_IORESP_READY, ioreq_slot_word, ioreq_state, ioreq_with_state,
} from '../shared/public/hvm/ioreq.ts';
import { EVTCHNSTAT_interdomain, EVTCHNSTAT_unbound, NR_EVTCHN_PORTS } from '../shared/public/event_channel.ts';
import {
  PAGE_WORDS, XEN_EEXIST, XEN_EINVAL, XEN_ENOENT, XEN_ENOMEM, XEN_ENOSPC, XEN_EOPNOTSUPP, XEN_EPERM, XEN_ESRCH,
} from '../shared/public/xen.ts';
import { spin_lock, spin_unlock } from './spinlock.ts';
import type { Caller } from './caller.ts';
import { alloc_unbound_port, evtchn_close_port } from './event-channel.ts';
import { alloc_domheap_page, get_page, release_page_of_dying } from './page-alloc.ts';
import { foreign_release_mappings, map_foreign_frame } from './p2m-foreign.ts';
import {
  D, E, IO, IOREQ_SERVER_DISABLED, IOREQ_SERVER_ENABLED, IOREQ_SERVER_FREE, MAX_DOMAINS, MAX_IO_RANGES,
  MAX_BUF_ZONES, MAX_IOREQ_SERVERS, MAX_VCPUS, NR_ISA_IRQS, SV, type HypervisorState,
} from './state.ts';

export const ioreqLock = (d: number) => d * IO.WORDS + IO.LOCK;
export const serverBase = (d: number, s: number) => d * IO.WORDS + IO.SERVERS + s * SV.WORDS;
const PORT_MAX = 0xffff;
const MMIO_MAX = 0xffff_ffff;

/** The first checks of every dm_op: a privileged caller, about another domain that is alive. */
function dmTarget(c: Caller, domid: number): number {
  if (!c.privileged) return -XEN_EPERM;
  if (!(Number.isInteger(domid) && domid >= 0 && domid < MAX_DOMAINS) || domid === c.domid) return -XEN_EPERM;
  return c.hv.isAlive(domid) ? 0 : -XEN_ESRCH;
}

/** Server `id` of `domid` if the caller is its emulator: its row base, else -errno. Lock held. */
function ownServer(c: Caller, domid: number, id: number): number {
  if (!(Number.isInteger(id) && id >= 0 && id < MAX_IOREQ_SERVERS)) return -XEN_ENOENT;
  const base = serverBase(domid, id);
  if (c.hv.ioreq[base + SV.STATE] === IOREQ_SERVER_FREE) return -XEN_ENOENT;
  return c.hv.ioreq[base + SV.EMULATOR] === c.domid ? base : -XEN_EPERM;
}

/** Run `op` on server (domid, id) under the row lock, after the dm_op checks. */
function withServer(c: Caller, domid: number, id: number, op: (base: number) => number): number {
  const rc = dmTarget(c, domid);
  if (rc < 0) return rc;
  spin_lock(c.hv.ioreq, ioreqLock(domid));
  try {
    const base = ownServer(c, domid, id);
    return base < 0 ? base : op(base);
  } finally {
    spin_unlock(c.hv.ioreq, ioreqLock(domid));
  }
}

/** XEN_DMOP_create_ioreq_server → the new server's id. */
export function dm_create_ioreq_server(c: Caller, domid: number, handle_bufioreq: number): number {
  const rc = dmTarget(c, domid);
  if (rc < 0) return rc;
  if (handle_bufioreq !== HVM_IOREQSRV_BUFIOREQ_OFF && handle_bufioreq !== HVM_IOREQSRV_BUFIOREQ_LEGACY
    && handle_bufioreq !== HVM_IOREQSRV_BUFIOREQ_ATOMIC) return -XEN_EINVAL;
  const hv = c.hv;
  spin_lock(hv.ioreq, ioreqLock(domid));
  try {
    let id = 0;
    while (id < MAX_IOREQ_SERVERS && hv.ioreq[serverBase(domid, id) + SV.STATE] !== IOREQ_SERVER_FREE) id++;
    if (id === MAX_IOREQ_SERVERS) return -XEN_ENOSPC;
    const base = serverBase(domid, id);
    const mfn = alloc_domheap_page(hv, domid);
    if (mfn < 0) return -XEN_ENOMEM;
    const nr = hv.domains[domid * D.WORDS + D.NR_VCPUS];
    for (let v = 0; v < nr; v++) {
      const port = alloc_unbound_port(hv, domid, c.domid);
      if (port < 0) {
        for (let u = 0; u < v; u++) evtchn_close_port(hv, domid, hv.ioreq[base + SV.VP_EPORT + u]);
        hv.ioreq.fill(0, base, base + SV.WORDS);
        release_page_of_dying(hv, mfn);
        return port;
      }
      hv.ioreq[base + SV.VP_EPORT + v] = port;
      hv.mem32[mfn * PAGE_WORDS + ioreq_slot_word(v, IOREQ_W.vp_eport)] = port;
    }
    if (handle_bufioreq !== HVM_IOREQSRV_BUFIOREQ_OFF) {
      // ioreq_server_alloc_pages + the bufioreq event channel (ioreq_server_alloc_rangesets'
      // neighbour in Xen): a second page and one more unbound port in the target.
      const buf = alloc_domheap_page(hv, domid);
      const bufPort = buf < 0 ? -XEN_ENOMEM : alloc_unbound_port(hv, domid, c.domid);
      if (bufPort < 0) {
        if (buf >= 0) release_page_of_dying(hv, buf);
        for (let v = 0; v < nr; v++) evtchn_close_port(hv, domid, hv.ioreq[base + SV.VP_EPORT + v]);
        hv.ioreq.fill(0, base, base + SV.WORDS);
        release_page_of_dying(hv, mfn);
        return bufPort;
      }
      hv.ioreq[base + SV.BUF_MFN] = buf;
      hv.ioreq[base + SV.BUF_PORT] = bufPort;
    }
    hv.ioreq[base + SV.EMULATOR] = c.domid;
    hv.ioreq[base + SV.MFN] = mfn;
    Atomics.store(hv.ioreq, base + SV.STATE, IOREQ_SERVER_DISABLED);
    return id;
  } finally {
    spin_unlock(hv.ioreq, ioreqLock(domid));
  }
}

/** XEN_DMOP_get_ioreq_server_info, in its XEN_DMOP_no_gfns form only (see dm_op.ts). */
export function dm_get_ioreq_server_info(c: Caller, domid: number, id: number, flags: number, out: DmIoreqServerInfo): number {
  return withServer(c, domid, id, () => {
    if ((flags & XEN_DMOP_no_gfns) === 0) return -XEN_EOPNOTSUPP;
    out.bufioreq_port = c.hv.ioreq[serverBase(domid, id) + SV.BUF_PORT];
    return 0;
  });
}

function rangeValid(type: number, start: number, end: number): boolean {
  const max = type === XEN_DMOP_IO_RANGE_PORT ? PORT_MAX : type === XEN_DMOP_IO_RANGE_MEMORY ? MMIO_MAX : -1;
  return Number.isInteger(start) && Number.isInteger(end) && start >= 0 && start <= end && end <= max;
}

/** XEN_DMOP_map_io_range_to_ioreq_server: [start, end] inclusive, no overlap with any server's. */
export function dm_map_io_range(c: Caller, domid: number, id: number, type: number, start: number, end: number): number {
  return withServer(c, domid, id, (base) => {
    if (!rangeValid(type, start, end)) return -XEN_EINVAL;
    const io = c.hv.ioreq;
    for (let s = 0; s < MAX_IOREQ_SERVERS; s++) {
      const b = serverBase(domid, s);
      if (io[b + SV.STATE] === IOREQ_SERVER_FREE) continue;
      for (let r = 0; r < MAX_IO_RANGES; r++) {
        const at = b + SV.RANGES + r * 3;
        if (io[at] === type + 1 && start <= io[at + 2] >>> 0 && io[at + 1] >>> 0 <= end) return -XEN_EEXIST;
      }
    }
    for (let r = 0; r < MAX_IO_RANGES; r++) {
      const at = base + SV.RANGES + r * 3;
      if (io[at] !== 0) continue;
      io[at + 1] = start | 0;
      io[at + 2] = end | 0;
      Atomics.store(io, at, type + 1);
      return 0;
    }
    return -XEN_ENOSPC;
  });
}

/** XEN_DMOP_unmap_io_range_from_ioreq_server: exactly a range mapped before. */
export function dm_unmap_io_range(c: Caller, domid: number, id: number, type: number, start: number, end: number): number {
  return withServer(c, domid, id, (base) => {
    const io = c.hv.ioreq;
    for (let r = 0; r < MAX_IO_RANGES; r++) {
      const at = base + SV.RANGES + r * 3;
      if (io[at] === type + 1 && io[at + 1] >>> 0 === start && io[at + 2] >>> 0 === end) {
        io.fill(0, at, at + 3);
        return 0;
      }
    }
    return -XEN_ENOENT;
  });
}

/**
 * RINGVISOR_DMOP_add_buffered_zone (see shared/public/hvm/dm_op.ts): writes to [start, end] go to
 * the server's buffered page. The server must have one, and every zone must share one 1 MiB window.
 */
export function dm_add_buffered_zone(c: Caller, domid: number, id: number, start: number, end: number): number {
  return withServer(c, domid, id, (base) => {
    const io = c.hv.ioreq;
    if (io[base + SV.BUF_MFN] === 0) return -XEN_EINVAL;
    if (!rangeValid(XEN_DMOP_IO_RANGE_MEMORY, start, end) || start >>> 20 !== end >>> 20) return -XEN_EINVAL;
    const window = (start >>> 20) + 1;
    if (io[base + SV.BUF_WINDOW] !== 0 && io[base + SV.BUF_WINDOW] !== window) return -XEN_EINVAL;
    for (let z = 0; z < MAX_BUF_ZONES; z++) {
      const at = base + SV.BUF_ZONES + 2 * z;
      if (io[at] !== 0 || io[at + 1] !== 0) continue;
      io[base + SV.BUF_WINDOW] = window;
      io[at] = start | 0;
      io[at + 1] = end | 0;
      return 0;
    }
    return -XEN_ENOSPC;
  });
}

/** XEN_DMOP_set_ioreq_server_state: only an enabled server receives accesses. */
export function dm_set_ioreq_server_state(c: Caller, domid: number, id: number, enabled: boolean): number {
  return withServer(c, domid, id, (base) => {
    Atomics.store(c.hv.ioreq, base + SV.STATE, enabled ? IOREQ_SERVER_ENABLED : IOREQ_SERVER_DISABLED);
    return 0;
  });
}

/** XEN_DMOP_destroy_ioreq_server. */
export function dm_destroy_ioreq_server(c: Caller, domid: number, id: number): number {
  return withServer(c, domid, id, (base) => {
    destroyServer(c.hv, domid, base);
    return 0;
  });
}

/** XENMEM_acquire_resource: the ioreq page of a server the caller emulates for. */
export function acquire_ioreq_page(c: Caller, domid: number, type: number, id: number, frame: number, gpfn: number): number {
  const rc = dmTarget(c, domid);
  if (rc < 0) return rc;
  if (type !== XENMEM_resource_ioreq_server) return -XEN_EOPNOTSUPP;
  const sync = frame === XENMEM_resource_ioreq_server_frame_ioreq(0);
  if (!sync && frame !== XENMEM_resource_ioreq_server_frame_bufioreq) return -XEN_EINVAL; // one sync page, one buffered
  return map_foreign_frame(c, gpfn, domid, (hv) => {
    const base = ownServer(c, domid, id);
    if (base < 0) return base;
    const mfn = hv.ioreq[base + (sync ? SV.MFN : SV.BUF_MFN)];
    if (mfn === 0) return -XEN_EINVAL; // a server without a buffered page
    get_page(hv, mfn);
    return mfn;
  });
}

/** Is `port` of domain `d` still the end of a channel with domain `peer` (and so ours to close)? */
export function portTalksTo(hv: HypervisorState, d: number, port: number, peer: number): boolean {
  if (!(port > 0 && port < NR_EVTCHN_PORTS)) return false;
  const e = (d * NR_EVTCHN_PORTS + port) * E.WORDS;
  const state = Atomics.load(hv.evtchn, e + E.STATE);
  return (state === EVTCHNSTAT_unbound || state === EVTCHNSTAT_interdomain) && hv.evtchn[e + E.REMOTE_DOM] === peer;
}

/**
 * ioreq_server_destroy: no new accesses (state), waiting ones answered with all ones, ports
 * closed, the page freed now or by the last put_page (the emulator's mapping, or a vCPU that has
 * not yet picked up its answer). Caller holds the target's row lock.
 */
function destroyServer(hv: HypervisorState, d: number, base: number): void {
  Atomics.store(hv.ioreq, base + SV.STATE, IOREQ_SERVER_FREE);
  const mfn = hv.ioreq[base + SV.MFN];
  const emulator = hv.ioreq[base + SV.EMULATOR];
  for (let v = 0; v < MAX_VCPUS; v++) {
    const port = hv.ioreq[base + SV.VP_EPORT + v];
    if (port === 0) continue;
    if (portTalksTo(hv, d, port, emulator)) evtchn_close_port(hv, d, port);
    const ctrl = mfn * PAGE_WORDS + ioreq_slot_word(v, IOREQ_W.ctrl);
    const cur = Atomics.load(hv.mem32, ctrl);
    const state = ioreq_state(cur);
    if (state === STATE_IOREQ_READY || state === STATE_IOREQ_INPROCESS) {
      hv.mem32[mfn * PAGE_WORDS + ioreq_slot_word(v, IOREQ_W.data)] = -1;
      hv.mem32[mfn * PAGE_WORDS + ioreq_slot_word(v, IOREQ_W.data) + 1] = -1;
      Atomics.store(hv.mem32, ctrl, ioreq_with_state(cur, STATE_IORESP_READY));
      Atomics.notify(hv.mem32, ctrl);
    }
  }
  const bufPort = hv.ioreq[base + SV.BUF_PORT];
  if (bufPort !== 0 && portTalksTo(hv, d, bufPort, emulator)) evtchn_close_port(hv, d, bufPort);
  if (hv.ioreq[base + SV.BUF_MFN] !== 0) release_page_of_dying(hv, hv.ioreq[base + SV.BUF_MFN]);
  release_page_of_dying(hv, mfn);
  hv.ioreq.fill(0, base, base + SV.WORDS);
}

/**
 * Teardown hook, from domain_kill after the domain is marked dying (its ports already closed):
 *   - as a target: take and drop the row lock (the fence p2m-foreign.ts relies on), destroy its
 *     servers, close the emulator-side ends of its interrupt lines;
 *   - as an emulator: destroy the servers it ran for other domains;
 *   - as a mapper: let go of its foreign mappings.
 */
export function hvm_domain_kill(hv: HypervisorState, d: number): void {
  for (let t = 0; t < MAX_DOMAINS; t++) {
    spin_lock(hv.ioreq, ioreqLock(t));
    for (let s = 0; s < MAX_IOREQ_SERVERS; s++) {
      const base = serverBase(t, s);
      if (hv.ioreq[base + SV.STATE] === IOREQ_SERVER_FREE) continue;
      if (t === d || hv.ioreq[base + SV.EMULATOR] === d) destroyServer(hv, t, base);
    }
    for (let irq = 0; irq < NR_ISA_IRQS; irq++) {
      const row = t * IO.WORDS;
      const port = hv.ioreq[row + IO.IRQ_PORT + irq];
      const dom = hv.ioreq[row + IO.IRQ_DOM + irq];
      if (port === 0 || (t !== d && dom !== d)) continue;
      if (t === d && portTalksTo(hv, dom, port, d)) evtchn_close_port(hv, dom, port);
      hv.ioreq[row + IO.IRQ_PORT + irq] = 0;
      hv.ioreq[row + IO.IRQ_DOM + irq] = 0;
    }
    if (t === d) hv.ioreq[t * IO.WORDS + IO.IRQ_LEVEL] = 0;
    spin_unlock(hv.ioreq, ioreqLock(t));
  }
  foreign_release_mappings(hv, d);
}

/** ioreq servers that exist on `d` (for leak checks). */
export function ioreqServersOf(hv: HypervisorState, d: number): number {
  let n = 0;
  for (let s = 0; s < MAX_IOREQ_SERVERS; s++) if (Atomics.load(hv.ioreq, serverBase(d, s) + SV.STATE) !== IOREQ_SERVER_FREE) n++;
  return n;
}
