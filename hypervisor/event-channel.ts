/*
 * Event channels: ports, binding between domains, and 2-level delivery into shared_info.
 *
 * Xen: xen/common/event_channel.c (evtchn_alloc_unbound, evtchn_bind_interdomain, evtchn_send,
 * evtchn_close, evtchn_bind_virq, send_global_virq) and xen/common/event_2l.c
 * (evtchn_2l_set_pending, evtchn_2l_unmask).
 *
 * Each domain's ports live in the hypervisor's table (state, remote end, vCPU to notify) under
 * that domain's event lock; operations touching two domains take both locks, lowest domid
 * first. Delivery writes the target's shared_info, which the target's kernel scans:
 *
 *   1. set the port's bit in evtchn_pending; if it was already set, stop (one event is enough);
 *   2. if the port is masked, stop: unmask will finish the job;
 *   3. set the bit for that pending word in the vCPU's evtchn_pending_sel; if already set, the
 *      vCPU has a scan coming and stop;
 *   4. set evtchn_upcall_pending; if it went 0 → 1, wake the vCPU (Atomics.notify on that word,
 *      which is what its SCHEDOP_block sleeps on; ./evtchn-kick.ts).
 *
 * Each step is an atomic read-modify-write, so a sender and the receiving kernel (which clears
 * upcall_pending first, then takes the selector, then the pending bits) can interleave in any
 * order without losing an event: whatever the receiver has already cleared, the sender sets
 * again before it decides whether to wake.
 *
 * A virq port (EVTCHNOP_bind_virq) has no remote end: the hypervisor itself raises it, with the
 * same delivery steps (send_global_virq: VIRQ_DOM_EXC, for Dom0; send_guest_vcpu_virq: VIRQ_TIMER).
 */
import {
  EVTCHNSTAT_closed, EVTCHNSTAT_interdomain, EVTCHNSTAT_unbound, EVTCHNSTAT_virq, NR_EVTCHN_PORTS, VIRQ_DOM_EXC,
  VIRQ_TIMER, type EvtchnStatus,
} from '../shared/public/event_channel.ts';
import {
  DOMID_SELF, XEN_EEXIST, XEN_EINVAL, XEN_ENOSPC, XEN_EPERM, XEN_ESRCH, shared_info, vcpu_info,
} from '../shared/public/xen.ts';
import { double_lock, double_unlock, spin_lock, spin_unlock } from './spinlock.ts';
import type { Caller } from './caller.ts';
import { D, E, MAX_DOMAINS, MAX_VCPUS, V, type HypervisorState } from './state.ts';
import { evtchn_kick } from './evtchn-kick.ts';

export { evtchn_kick, vcpu_kick } from './evtchn-kick.ts';

const PENDING = shared_info.evtchn_pending >> 2;
const MASK = shared_info.evtchn_mask >> 2;
const VCPU_WORDS = vcpu_info.SIZE >> 2;
const UPCALL_PENDING = vcpu_info.evtchn_upcall_pending >> 2;
const PENDING_SEL = vcpu_info.evtchn_pending_sel >> 2;

const lockIndex = (d: number) => d * D.WORDS + D.EVENT_LOCK;
const chn = (d: number, port: number) => (d * NR_EVTCHN_PORTS + port) * E.WORDS;
const portIsValid = (port: number) => Number.isInteger(port) && port > 0 && port < NR_EVTCHN_PORTS;

/**
 * Mark (d, port) pending. Returns the vCPU to wake, or -1. The caller wakes it with
 * evtchn_kick after dropping its locks, so a futex wake-up never happens under a lock.
 */
function evtchn_set_pending(hv: HypervisorState, d: number, port: number): number {
  const si = hv.sharedInfo[d];
  const w = port >> 5;
  const bit = 1 << (port & 31);
  if ((Atomics.or(si, PENDING + w, bit) & bit) !== 0) return -1;
  if ((Atomics.load(si, MASK + w) & bit) !== 0) return -1;
  return markVcpuPending(hv, d, hv.evtchn[chn(d, port) + E.NOTIFY_VCPU], w);
}

/** Steps 3 and 4 above, for pending word `w` on vCPU `v`. */
function markVcpuPending(hv: HypervisorState, d: number, v: number, w: number): number {
  const si = hv.sharedInfo[d];
  const vi = v * VCPU_WORDS;
  const selBit = 1 << (w & 31);
  if ((Atomics.or(si, vi + PENDING_SEL + (w >> 5), selBit) & selBit) !== 0) return -1;
  return Atomics.exchange(si, vi + UPCALL_PENDING, 1) === 0 ? v : -1;
}

/** Lowest free port of `d`, or -1. Caller holds d's event lock. */
function get_free_port(hv: HypervisorState, d: number): number {
  for (let p = 1; p < NR_EVTCHN_PORTS; p++) {
    if (hv.evtchn[chn(d, p) + E.STATE] === EVTCHNSTAT_closed) return p;
  }
  return -1;
}

function clearPort(hv: HypervisorState, d: number, port: number): void {
  const c = chn(d, port);
  hv.evtchn[c + E.STATE] = EVTCHNSTAT_closed;
  hv.evtchn[c + E.REMOTE_DOM] = 0;
  hv.evtchn[c + E.REMOTE_PORT] = 0;
  hv.evtchn[c + E.NOTIFY_VCPU] = 0;
  // A port is born clean: drop anything left pending from its previous life.
  Atomics.and(hv.sharedInfo[d], PENDING + (port >> 5), ~(1 << (port & 31)));
}

/** EVTCHNOP_alloc_unbound: a port in `dom` that `remote_dom` may bind to. */
export function evtchn_alloc_unbound(c: Caller, dom: number, remote_dom: number): number {
  const hv = c.hv;
  const d = dom === DOMID_SELF ? c.domid : dom;
  const r = remote_dom === DOMID_SELF ? c.domid : remote_dom;
  if (d !== c.domid && !c.privileged) return -XEN_EPERM;
  if (!hv.isAlive(d)) return -XEN_ESRCH;
  if (!Number.isInteger(r) || r < 0 || r >= MAX_DOMAINS) return -XEN_ESRCH;
  return alloc_unbound_port(hv, d, r);
}

/** The body of alloc_unbound, also used by the domain builder for the store and console ports. */
export function alloc_unbound_port(hv: HypervisorState, d: number, r: number): number {
  spin_lock(hv.domains, lockIndex(d));
  const port = get_free_port(hv, d);
  if (port > 0) {
    const e = chn(d, port);
    hv.evtchn[e + E.REMOTE_DOM] = r;
    hv.evtchn[e + E.NOTIFY_VCPU] = 0;
    Atomics.store(hv.evtchn, e + E.STATE, EVTCHNSTAT_unbound);
  }
  spin_unlock(hv.domains, lockIndex(d));
  return port > 0 ? port : -XEN_ENOSPC;
}

/**
 * EVTCHNOP_bind_interdomain: connect a new local port to (remote_dom, remote_port), which must
 * be unbound and waiting for us. The new port starts pending, in case the peer signalled before
 * we bound (Xen does the same).
 */
export function evtchn_bind_interdomain(c: Caller, remote_dom: number, remote_port: number): number {
  const hv = c.hv;
  const ld = c.domid;
  const rd = remote_dom === DOMID_SELF ? ld : remote_dom;
  if (!hv.isAlive(rd)) return -XEN_ESRCH;
  if (!portIsValid(remote_port)) return -XEN_EINVAL;
  double_lock(hv.domains, lockIndex(ld), lockIndex(rd));
  let rc: number;
  const r = chn(rd, remote_port);
  if (hv.evtchn[r + E.STATE] !== EVTCHNSTAT_unbound || hv.evtchn[r + E.REMOTE_DOM] !== ld) {
    rc = -XEN_EINVAL;
  } else if ((rc = get_free_port(hv, ld)) < 0) {
    rc = -XEN_ENOSPC;
  } else {
    const l = chn(ld, rc);
    hv.evtchn[l + E.REMOTE_DOM] = rd;
    hv.evtchn[l + E.REMOTE_PORT] = remote_port;
    hv.evtchn[l + E.NOTIFY_VCPU] = 0;
    Atomics.store(hv.evtchn, l + E.STATE, EVTCHNSTAT_interdomain);
    hv.evtchn[r + E.REMOTE_DOM] = ld;
    hv.evtchn[r + E.REMOTE_PORT] = rc;
    Atomics.store(hv.evtchn, r + E.STATE, EVTCHNSTAT_interdomain);
  }
  double_unlock(hv.domains, lockIndex(ld), lockIndex(rd));
  if (rc > 0) {
    const v = evtchn_set_pending(hv, ld, rc);
    if (v >= 0) evtchn_kick(hv, ld, v);
  }
  return rc;
}

/** EVTCHNOP_send: signal the other end of an interdomain port. */
export function evtchn_send(c: Caller, port: number): number {
  const hv = c.hv;
  const ld = c.domid;
  if (!portIsValid(port)) return -XEN_EINVAL;
  c.count('notifications');
  // The local lock keeps the peer's end from being closed (and its domain freed) under us.
  spin_lock(hv.domains, lockIndex(ld));
  const l = chn(ld, port);
  const state = hv.evtchn[l + E.STATE];
  let rd = -1;
  let wake = -1;
  if (state === EVTCHNSTAT_interdomain) {
    rd = hv.evtchn[l + E.REMOTE_DOM];
    wake = evtchn_set_pending(hv, rd, hv.evtchn[l + E.REMOTE_PORT]);
  }
  spin_unlock(hv.domains, lockIndex(ld));
  if (wake >= 0) {
    c.count('wakeups');
    evtchn_kick(hv, rd, wake, ld * MAX_VCPUS + c.vcpu);
  }
  // Sending on an unbound port is allowed and does nothing, as in Xen.
  return state === EVTCHNSTAT_interdomain || state === EVTCHNSTAT_unbound ? 0 : -XEN_EINVAL;
}

/**
 * Where an event sent on `port` of domain `d` lands: the index in hv.vcpus of the RUNSTATE word
 * of the vCPU it would wake, or -1 if the port is not interdomain. Read without the event lock:
 * it is a hint for a spinner (hypervisor/ioreq-send.ts), and a port closed meanwhile only makes
 * the hint stale, never unsafe.
 */
export function evtchn_remote_runstate(hv: HypervisorState, d: number, port: number): number {
  if (!portIsValid(port)) return -1;
  const l = chn(d, port);
  if (Atomics.load(hv.evtchn, l + E.STATE) !== EVTCHNSTAT_interdomain) return -1;
  const rd = hv.evtchn[l + E.REMOTE_DOM];
  const rp = hv.evtchn[l + E.REMOTE_PORT];
  if (!(rd >= 0 && rd < MAX_DOMAINS) || !portIsValid(rp)) return -1;
  const v = hv.evtchn[chn(rd, rp) + E.NOTIFY_VCPU];
  return v >= 0 && v < MAX_VCPUS ? hv.vcpu(rd, v, V.RUNSTATE) : -1;
}

/** EVTCHNOP_close, also used by domain teardown (Xen's evtchn_destroy closes every port). */
export function evtchn_close_port(hv: HypervisorState, ld: number, port: number): number {
  if (!portIsValid(port)) return -XEN_EINVAL;
  for (;;) {
    spin_lock(hv.domains, lockIndex(ld));
    const l = chn(ld, port);
    const state = hv.evtchn[l + E.STATE];
    if (state !== EVTCHNSTAT_interdomain) {
      if (state === EVTCHNSTAT_unbound || state === EVTCHNSTAT_virq) clearPort(hv, ld, port);
      spin_unlock(hv.domains, lockIndex(ld));
      return state === EVTCHNSTAT_closed ? -XEN_EINVAL : 0;
    }
    // Interdomain: we need the peer's lock too, so drop ours and take both in order, then
    // check nothing changed meanwhile (Xen's evtchn_close does the same dance).
    const rd = hv.evtchn[l + E.REMOTE_DOM];
    const rp = hv.evtchn[l + E.REMOTE_PORT];
    spin_unlock(hv.domains, lockIndex(ld));
    double_lock(hv.domains, lockIndex(ld), lockIndex(rd));
    const same = hv.evtchn[l + E.STATE] === EVTCHNSTAT_interdomain
      && hv.evtchn[l + E.REMOTE_DOM] === rd && hv.evtchn[l + E.REMOTE_PORT] === rp;
    if (same) {
      const r = chn(rd, rp);
      // The peer's end goes back to waiting for us, so we could bind again (Xen's rule).
      hv.evtchn[r + E.STATE] = EVTCHNSTAT_unbound;
      hv.evtchn[r + E.REMOTE_DOM] = ld;
      hv.evtchn[r + E.REMOTE_PORT] = 0;
      clearPort(hv, ld, port);
    }
    double_unlock(hv.domains, lockIndex(ld), lockIndex(rd));
    if (same) return 0;
  }
}

export function evtchn_close(c: Caller, port: number): number {
  return evtchn_close_port(c.hv, c.domid, port);
}

/*
 * Global virqs go to one domain (Xen's get_global_virq_handler: the hardware domain unless the
 * toolstack named another). ringvisor has no XEN_DOMCTL_set_virq_handler, so it is always Dom0.
 */
const GLOBAL_VIRQ_HANDLER = 0;
const GLOBAL_VIRQS: readonly number[] = [VIRQ_DOM_EXC];

/**
 * EVTCHNOP_bind_virq: a port of the caller's on which the hypervisor raises `virq`. VIRQ_TIMER is
 * per-vCPU: any domain binds it once for each of its vCPUs. The others ringvisor raises are
 * global virqs, which Xen binds on vCPU 0 only, once per domain (-EEXIST after). A
 * domain that would never receive the virq is refused with -EPERM (Xen lets it bind and then
 * never delivers; refusing says so at once).
 */
export function evtchn_bind_virq(c: Caller, virq: number, vcpu: number): number {
  const hv = c.hv;
  const d = c.domid;
  if (virq === VIRQ_TIMER) {
    // Per-vCPU (Xen: virq_is_global false): any domain, once per vCPU of its own.
    if (!Number.isInteger(vcpu) || vcpu < 0 || vcpu >= Atomics.load(hv.domains, d * D.WORDS + D.NR_VCPUS)) return -XEN_EINVAL;
  } else {
    if (!GLOBAL_VIRQS.includes(virq)) return -XEN_EINVAL;
    if (vcpu !== 0) return -XEN_EINVAL;
    if (d !== GLOBAL_VIRQ_HANDLER) return -XEN_EPERM;
  }
  spin_lock(hv.domains, lockIndex(d));
  let port = findVirqPort(hv, d, virq, vcpu) > 0 ? -XEN_EEXIST : get_free_port(hv, d);
  if (port === -1) port = -XEN_ENOSPC;
  if (port > 0) {
    const e = chn(d, port);
    hv.evtchn[e + E.REMOTE_DOM] = 0;
    hv.evtchn[e + E.REMOTE_PORT] = virq;
    hv.evtchn[e + E.NOTIFY_VCPU] = vcpu;
    Atomics.store(hv.evtchn, e + E.STATE, EVTCHNSTAT_virq);
  }
  spin_unlock(hv.domains, lockIndex(d));
  return port;
}

/* The port `d` bound `virq` to (on `vcpu`, for a per-vCPU virq), or -1. Caller holds d's event lock. */
function findVirqPort(hv: HypervisorState, d: number, virq: number, vcpu = 0): number {
  for (let p = 1; p < NR_EVTCHN_PORTS; p++) {
    const e = chn(d, p);
    if (hv.evtchn[e + E.STATE] === EVTCHNSTAT_virq && hv.evtchn[e + E.REMOTE_PORT] === virq
      && (virq !== VIRQ_TIMER || hv.evtchn[e + E.NOTIFY_VCPU] === vcpu)) return p;
  }
  return -1;
}

/**
 * send_guest_vcpu_virq: raise a per-vCPU virq on vCPU `v` of `d`, if it bound one (else dropped,
 * as in Xen). Called by the vCPU itself or by the control thread's timer interrupt; the scan is
 * over a small table, once per timer expiry, never on a data path.
 */
export function send_guest_vcpu_virq(hv: HypervisorState, d: number, v: number, virq: number): void {
  if (!hv.isAlive(d)) return;
  spin_lock(hv.domains, lockIndex(d));
  const port = findVirqPort(hv, d, virq, v);
  const wake = port > 0 ? evtchn_set_pending(hv, d, port) : -1;
  spin_unlock(hv.domains, lockIndex(d));
  if (wake >= 0) evtchn_kick(hv, d, wake);
}

/**
 * send_global_virq: raise `virq` in the domain that handles it, if that domain is alive and has
 * bound it; otherwise the event is dropped, as in Xen. Called by the control thread (a domain
 * shut down or was destroyed: VIRQ_DOM_EXC). The scan over the handler's ports is a loop over a
 * small table, on an event that happens once per domain death, never on a data path.
 */
export function send_global_virq(hv: HypervisorState, virq: number): void {
  const d = GLOBAL_VIRQ_HANDLER;
  if (!hv.isAlive(d)) return;
  spin_lock(hv.domains, lockIndex(d));
  const port = findVirqPort(hv, d, virq);
  const wake = port > 0 ? evtchn_set_pending(hv, d, port) : -1;
  spin_unlock(hv.domains, lockIndex(d));
  if (wake >= 0) evtchn_kick(hv, d, wake);
}

/**
 * send_guest_pirq, for a passed-through device's interrupt (hypervisor/passthrough/nic.ts): raise
 * `d`'s port `port`, which its driver allocated unbound with itself as the remote end and gave the
 * device as its MSI. A port in any other state is left alone, so a device cannot raise an event
 * on someone else's channel. Called by the control thread, where the device runs.
 */
export function send_device_irq(hv: HypervisorState, d: number, port: number): boolean {
  if (!hv.isAlive(d) || !portIsValid(port)) return false;
  spin_lock(hv.domains, lockIndex(d));
  const c = chn(d, port);
  const ok = hv.evtchn[c + E.STATE] === EVTCHNSTAT_unbound && hv.evtchn[c + E.REMOTE_DOM] === d;
  const wake = ok ? evtchn_set_pending(hv, d, port) : -1;
  spin_unlock(hv.domains, lockIndex(d));
  if (wake >= 0) evtchn_kick(hv, d, wake);
  return ok;
}

/** EVTCHNOP_unmask: clear the mask bit and deliver an event that arrived while masked. */
export function evtchn_unmask(c: Caller, port: number): number {
  const hv = c.hv;
  const d = c.domid;
  if (!portIsValid(port)) return -XEN_EINVAL;
  const si = hv.sharedInfo[d];
  const w = port >> 5;
  const bit = 1 << (port & 31);
  Atomics.and(si, MASK + w, ~bit);
  if ((Atomics.load(si, PENDING + w) & bit) !== 0) {
    const v = markVcpuPending(hv, d, hv.evtchn[chn(d, port) + E.NOTIFY_VCPU], w);
    if (v >= 0) evtchn_kick(hv, d, v);
  }
  return 0;
}

/** EVTCHNOP_status. Only the control domain may look at another domain's ports. */
export function evtchn_status(c: Caller, dom: number, port: number, out: EvtchnStatus): number {
  const d = dom === DOMID_SELF ? c.domid : dom;
  if (d !== c.domid && !c.privileged) return -XEN_EPERM;
  if (!c.hv.isAlive(d)) return -XEN_ESRCH;
  if (!portIsValid(port)) return -XEN_EINVAL;
  const e = chn(d, port);
  out.status = Atomics.load(c.hv.evtchn, e + E.STATE);
  out.vcpu = c.hv.evtchn[e + E.NOTIFY_VCPU];
  out.remote_dom = c.hv.evtchn[e + E.REMOTE_DOM];
  out.remote_port = c.hv.evtchn[e + E.REMOTE_PORT];
  return 0;
}

/** Teardown: close every port of a dying domain, unbinding its peers. */
export function evtchn_destroy(hv: HypervisorState, d: number): void {
  for (let p = 1; p < NR_EVTCHN_PORTS; p++) {
    if (Atomics.load(hv.evtchn, chn(d, p) + E.STATE) !== EVTCHNSTAT_closed) evtchn_close_port(hv, d, p);
  }
}

/** Ports not closed, for the host's leak report. */
export function portsInUse(hv: HypervisorState, d: number): number {
  let n = 0;
  for (let p = 1; p < NR_EVTCHN_PORTS; p++) if (hv.evtchn[chn(d, p) + E.STATE] !== EVTCHNSTAT_closed) n++;
  return n;
}
