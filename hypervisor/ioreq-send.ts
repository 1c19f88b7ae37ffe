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
  IOREQ_READ, IOREQ_TYPE_COPY, IOREQ_TYPE_PIO, IOREQ_W, IOREQ_WRITE, STATE_IOREQ_NONE, STATE_IOREQ_READY, STATE_IORESP_READY,
  ioreq_ctrl, ioreq_slot_word, ioreq_state,
} from '../shared/public/hvm/ioreq.ts';
import { PAGE_WORDS } from '../shared/public/xen.ts';
import { spin_lock, spin_unlock } from './spinlock.ts';
import type { Caller } from './caller.ts';
import { evtchn_remote_runstate, evtchn_send } from './event-channel.ts';
import { spinBudgetUs, spinUntil, type WaitPolicy } from '../shared/wait.ts';
import { ioreqLock, serverBase } from './ioreq.ts';
import { get_page, put_page } from './page-alloc.ts';
import type { VcpuScheduler } from './schedule.ts';
import {
  IOREQ_SERVER_ENABLED, MAX_IO_RANGES, MAX_IOREQ_SERVERS, RUNSTATE_blocked, RUNSTATE_runnable, RUNSTATE_running, SV, V,
  VREQ_STOP,
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
    return this.send(IOREQ_TYPE_PIO, XEN_DMOP_IO_RANGE_PORT, port, size, write, value);
  }

  /** MMIO, `size` bytes at guest-physical `addr` (below 4 GiB). */
  mmio(addr: number, size: 1 | 2 | 4, write: boolean, value: number): number {
    return this.send(IOREQ_TYPE_COPY, XEN_DMOP_IO_RANGE_MEMORY, addr, size, write, value);
  }

  private send(type: number, rangeType: number, addr: number, size: number, write: boolean, value: number): number {
    const c = this.c;
    const hv = c.hv;
    // ioreq_server_select: the enabled server with a range holding the whole access.
    const last = addr + size - 1;
    let mfn = -1;
    let port = 0;
    spin_lock(hv.ioreq, ioreqLock(this.domid));
    for (let s = 0; s < MAX_IOREQ_SERVERS && mfn < 0; s++) {
      const base = serverBase(this.domid, s);
      if (hv.ioreq[base + SV.STATE] !== IOREQ_SERVER_ENABLED) continue;
      for (let r = 0; r < MAX_IO_RANGES; r++) {
        const at = base + SV.RANGES + r * 3;
        if (hv.ioreq[at] === rangeType + 1 && addr >= hv.ioreq[at + 1] >>> 0 && last <= hv.ioreq[at + 2] >>> 0) {
          mfn = hv.ioreq[base + SV.MFN];
          port = hv.ioreq[base + SV.VP_EPORT + c.vcpu];
          get_page(hv, mfn);
          break;
        }
      }
    }
    if (mfn < 0) {
      spin_unlock(hv.ioreq, ioreqLock(this.domid));
      return IO_UNCLAIMED;
    }
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
    this.sched.runstate(RUNSTATE_blocked);
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
    this.sched.runstate(RUNSTATE_running);
  }
}
