/*
 * Sending one trapped access to its device model and waiting for the answer: the vCPU's half of
 * the ioreq protocol (shared/public/hvm/ioreq.ts has the diagram).
 *
 * Xen: ioreq_server_select (which server claims the access), ioreq_send (fill the vCPU's slot,
 * set STATE_IOREQ_READY, notify_via_xen_event_channel on vp_eport) and the wait,
 * wait_for_io / hvm_wait_for_io (xen/common/ioreq.c), with the vCPU blocked until the device
 * model says STATE_IORESP_READY. One instance per vCPU thread, built once by vcpu.ts and called
 * from TrappingCpu (trap.ts) for every port or MMIO access the guest makes.
 *
 * Buffered writes (ioreq_send_buffered): a write that falls in a zone the server asked to have
 * buffered (RINGVISOR_DMOP_add_buffered_zone) is appended to the server's buffered ioreq page
 * (shared/public/hvm/ioreq.ts) and the vCPU goes on at once, with an event on bufioreq_port; it is
 * counted as `bufioreqs`, not `ioreqs` (it is still a trap). A full page sends it the synchronous
 * way, as Xen does. Reads are never buffered.
 *
 * Hot path: nothing is allocated; the server lookup is a scan of at most MAX_IOREQ_SERVERS ×
 * MAX_IO_RANGES words under the target's row lock (uncontended: one CAS), which also takes a
 * reference on the ioreq page so that a server destroyed meanwhile cannot free it under us.
 *
 * Waiting, under the host's waiting policy (shared/wait.ts, HostOptions.wait). Under `irq` the
 * vCPU sleeps on the slot's state word at once, as a Xen vCPU blocks in hvm_wait_for_io until
 * the device model's answer wakes it. Under `poll` it first spins on that word for up to the
 * policy's budget: the model answers a register access in about a microsecond once it sees it,
 * while a futex wake-up costs about 45 µs here. The spin stops early when the device model's
 * vCPU (the one vp_eport's event wakes) is preempted, runnable but not running: it cannot
 * answer before it runs again (Linux's vcpu_is_preempted, KVM's halt-polling; only the
 * hypervisor can see another domain's runstate, so this check lives here and not in guests).
 * Today the only vCPU that is runnable and not running is a paused one; the check starts to
 * matter once ringvisor's scheduler preempts vCPUs, and the host OS's own preemption of a
 * thread is invisible to it.
 *
 * A vCPU sleeping here is blocked in the hypervisor, not in the guest, so it cannot reach a
 * preemption point. It sleeps in slices of IOREQ_WAIT_SLICE_MS and looks at its stop request
 * between them, so destroying a domain whose device model never answers still ends its threads
 * (a watchdog period: it never delays an answer, which wakes the sleeper at once).
 */
import { XEN_DMOP_IO_RANGE_MEMORY, XEN_DMOP_IO_RANGE_PORT } from '../shared/public/hvm/dm_op.ts';
import {
  BUFIOREQ_W, BUF_REWIND_AT, IOREQ_BUFFER_SLOT_NUM, IOREQ_READ, IOREQ_TYPE_COPY, IOREQ_TYPE_PIO, IOREQ_W, IOREQ_WRITE,
  STATE_IOREQ_NONE, STATE_IOREQ_READY, STATE_IORESP_READY, buf_ioreq_word0, ioreq_ctrl, ioreq_slot_word, ioreq_state,
} from '../shared/public/hvm/ioreq.ts';
import { PAGE_SIZE, PAGE_WORDS } from '../shared/public/xen.ts';
import { spin_lock, spin_unlock } from './spinlock.ts';
import type { Caller } from './caller.ts';
import { evtchn_remote_runstate, evtchn_send } from './event-channel.ts';
import * as trace from '../shared/public/trace.ts';
// Copied once: an imported binding read per request costs some 15 ns under tsx (hypervisor/trace.ts).
const { TRC_BEGIN, TRC_END, TRC_HVM, TRC_HVM_IOREQ } = trace;
import { spinBudgetUs, spinUntil, type WaitPolicy } from '../shared/wait.ts';
import { ioreqLock, serverBase } from './ioreq.ts';
import { get_page, put_page } from './page-alloc.ts';
import type { VcpuScheduler } from './schedule.ts';
import {
  IOREQ_SERVER_ENABLED, MAX_BUF_ZONES, MAX_IO_RANGES, MAX_IOREQ_SERVERS, RUNSTATE_blocked, RUNSTATE_runnable, RUNSTATE_running,
  SV, V, VREQ_STOP, type HypervisorState,
} from './state.ts';

/** What send() returns when no server claims the access (Xen's X86EMUL_UNHANDLEABLE). */
export const IO_UNCLAIMED = -1;
/** How long one sleep may last before the vCPU checks for a stop request (see the header). */
const IOREQ_WAIT_SLICE_MS = 20;

export class IoreqSender {
  private readonly domid: number;
  private readonly request: number;
  /** Index in hv.mem32 of the slot's ctrl word for the access in flight (read by `answered`). */
  private ctrl = 0;
  /** How long to spin before sleeping on the answer (the host's waiting policy). */
  private readonly spinUs: number;
  /** Index in hv.vcpus of the device model vCPU's RUNSTATE word for the access in flight, or -1. */
  private peer = -1;
  private readonly answered = (): boolean =>
    ioreq_state(Atomics.load(this.c.hv.mem32, this.ctrl)) === STATE_IORESP_READY;
  private readonly peerPreempted = (): boolean =>
    this.peer >= 0 && Atomics.load(this.c.hv.vcpus, this.peer) === RUNSTATE_runnable;

  constructor(private readonly c: Caller, private readonly sched: VcpuScheduler, readonly wait: WaitPolicy) {
    this.domid = c.domid;
    this.request = c.hv.vcpu(c.domid, c.vcpu, V.REQUEST);
    this.spinUs = spinBudgetUs(wait);
  }

  /** Port I/O, `size` bytes at `port`: the value read (or 0 for a write), or IO_UNCLAIMED. */
  pio(port: number, size: 1 | 2 | 4, write: boolean, value: number): number {
    const tr = this.c.trace;
    if (!tr.on(TRC_HVM)) return this.send(IOREQ_TYPE_PIO, XEN_DMOP_IO_RANGE_PORT, port, size, write, value);
    // The round trip as one slice on the trapping vCPU: trap, ioreq, device model, completion.
    tr.write(TRC_HVM_IOREQ | TRC_BEGIN, port, write ? 1 : 0, size, value);
    const rv = this.send(IOREQ_TYPE_PIO, XEN_DMOP_IO_RANGE_PORT, port, size, write, value);
    tr.write(TRC_HVM_IOREQ | TRC_END, port, write ? 1 : 0, size, rv);
    return rv;
  }

  /** MMIO, `size` bytes at guest-physical `addr` (below 4 GiB). */
  mmio(addr: number, size: 1 | 2 | 4, write: boolean, value: number): number {
    const tr = this.c.trace;
    if (!tr.on(TRC_HVM)) return this.send(IOREQ_TYPE_COPY, XEN_DMOP_IO_RANGE_MEMORY, addr, size, write, value);
    tr.write(TRC_HVM_IOREQ | TRC_BEGIN, addr, write ? 1 : 0, size, value);
    const rv = this.send(IOREQ_TYPE_COPY, XEN_DMOP_IO_RANGE_MEMORY, addr, size, write, value);
    tr.write(TRC_HVM_IOREQ | TRC_END, addr, write ? 1 : 0, size, rv);
    return rv;
  }

  private send(type: number, rangeType: number, addr: number, size: number, write: boolean, value: number): number {
    const c = this.c;
    const hv = c.hv;
    // ioreq_server_select: the enabled server with a range holding the whole access.
    const last = addr + size - 1;
    let mfn = -1;
    let port = 0;
    let server = -1;
    spin_lock(hv.ioreq, ioreqLock(this.domid));
    for (let s = 0; s < MAX_IOREQ_SERVERS && mfn < 0; s++) {
      const base = serverBase(this.domid, s);
      if (hv.ioreq[base + SV.STATE] !== IOREQ_SERVER_ENABLED) continue;
      for (let r = 0; r < MAX_IO_RANGES; r++) {
        const at = base + SV.RANGES + r * 3;
        if (hv.ioreq[at] === rangeType + 1 && addr >= hv.ioreq[at + 1] >>> 0 && last <= hv.ioreq[at + 2] >>> 0) {
          mfn = hv.ioreq[base + SV.MFN];
          port = hv.ioreq[base + SV.VP_EPORT + c.vcpu];
          server = base;
          break;
        }
      }
    }
    if (mfn < 0) {
      spin_unlock(hv.ioreq, ioreqLock(this.domid));
      return IO_UNCLAIMED;
    }
    // ioreq_send_buffered: a write into one of the server's buffered zones, if its page has room.
    if (write && type === IOREQ_TYPE_COPY && hv.ioreq[server + SV.BUF_MFN] !== 0 && inBufferedZone(hv, server, addr, last)
      && sendBuffered(hv, hv.ioreq[server + SV.BUF_MFN], addr, size as 1 | 2 | 4, value)) {
      const bufPort = hv.ioreq[server + SV.BUF_PORT];
      spin_unlock(hv.ioreq, ioreqLock(this.domid));
      c.count('bufioreqs');
      evtchn_send(c, bufPort);
      return 0;
    }
    get_page(hv, mfn);
    // ioreq_send: the fields, then the state word that publishes them, then the event. READY is
    // set before the row lock is dropped: a server destroyed from here on finds the slot READY
    // and answers it (destroyServer), where otherwise it could miss it and leave us waiting.
    const slot = mfn * PAGE_WORDS + ioreq_slot_word(c.vcpu, 0);
    const m = hv.mem32;
    m[slot + IOREQ_W.addr] = addr;
    m[slot + IOREQ_W.addr + 1] = 0;
    m[slot + IOREQ_W.data] = write ? value : 0;
    m[slot + IOREQ_W.data + 1] = 0;
    m[slot + IOREQ_W.count] = 1;
    m[slot + IOREQ_W.size] = size;
    this.ctrl = slot + IOREQ_W.ctrl;
    Atomics.store(m, this.ctrl, ioreq_ctrl(STATE_IOREQ_READY, write ? IOREQ_WRITE : IOREQ_READ, type));
    spin_unlock(hv.ioreq, ioreqLock(this.domid));
    c.count('ioreqs');
    evtchn_send(c, port);

    if (this.spinUs > 0) this.peer = evtchn_remote_runstate(hv, this.domid, port);
    if (!spinUntil(this.answered, this.spinUs, this.peerPreempted)) this.sleepUntilAnswered(mfn);
    const data = m[slot + IOREQ_W.data] >>> 0;
    Atomics.store(m, this.ctrl, ioreq_ctrl(STATE_IOREQ_NONE, 0, 0));
    put_page(hv, mfn);
    if (write) return 0;
    return size === 4 ? data : data & ((1 << (8 * size)) - 1);
  }

  /** The blocking half of the wait (see the header). */
  private sleepUntilAnswered(mfn: number): void {
    const hv = this.c.hv;
    this.sched.sleepBegin();
    for (;;) {
      const cur = Atomics.load(hv.mem32, this.ctrl);
      if (ioreq_state(cur) === STATE_IORESP_READY) break;
      Atomics.wait(hv.mem32, this.ctrl, cur, IOREQ_WAIT_SLICE_MS);
      if ((Atomics.load(hv.vcpus, this.request) & VREQ_STOP) !== 0) {
        // Leaving for good: the answer, if it ever comes, lands in a slot nobody reads.
        put_page(hv, mfn);
        this.sched.stop();
      }
    }
    this.sched.sleepEnd();
  }
}

/** Does [addr, last] lie inside one of the buffered zones of the server at `base`? Row lock held. */
function inBufferedZone(hv: HypervisorState, base: number, addr: number, last: number): boolean {
  for (let z = 0; z < MAX_BUF_ZONES; z++) {
    const at = base + SV.BUF_ZONES + 2 * z;
    const first = hv.ioreq[at] >>> 0;
    const end = hv.ioreq[at + 1] >>> 0;
    if ((first !== 0 || end !== 0) && addr >= first && last <= end) return true;
  }
  return false;
}

/**
 * Append one write to the buffered page at `bufMfn` (ioreq_send_buffered): false if it is full,
 * and the access then goes the synchronous way, as in Xen. The row lock is Xen's bufioreq_lock:
 * one producer at a time; the device model only ever advances read_pointer.
 */
function sendBuffered(hv: HypervisorState, bufMfn: number, addr: number, size: 1 | 2 | 4, value: number): boolean {
  const m = hv.mem32;
  const page = bufMfn * PAGE_WORDS;
  const rp = Atomics.load(m, page + BUFIOREQ_W.read_pointer) >>> 0;
  const wp = m[page + BUFIOREQ_W.write_pointer] >>> 0;
  if (wp - rp >= IOREQ_BUFFER_SLOT_NUM) return false;
  const slot = page + BUFIOREQ_W.slots + (wp % IOREQ_BUFFER_SLOT_NUM) * 2;
  m[slot] = buf_ioreq_word0(IOREQ_TYPE_COPY, size, addr);
  m[slot + 1] = value;
  // The slot before the pointer that publishes it (Xen's smp_wmb before write_pointer).
  Atomics.store(m, page + BUFIOREQ_W.write_pointer, (wp + 1) | 0);
  if (rp >= BUF_REWIND_AT) rewind(hv, bufMfn);
  return true;
}

/** Both pointers back by a multiple of the slot count, with one 64-bit CAS (Xen's ATOMIC mode). */
function rewind(hv: HypervisorState, bufMfn: number): void {
  const v64 = new BigInt64Array(hv.buffers.machine, bufMfn * PAGE_SIZE, 1);
  for (;;) {
    const old = Atomics.load(v64, 0);
    const r = Number(BigInt.asUintN(32, old));
    const w = Number(BigInt.asUintN(32, old >> 32n));
    const n = Math.floor(r / IOREQ_BUFFER_SLOT_NUM) * IOREQ_BUFFER_SLOT_NUM;
    const next = (BigInt(w - n) << 32n) | BigInt(r - n);
    if (Atomics.compareExchange(v64, 0, old, next) === old) return;
  }
}
