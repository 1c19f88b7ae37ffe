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
 * Waiting. The device model answers a register access in about a microsecond once it sees it,
 * but a futex wake-up (Atomics.wait → Atomics.notify) costs about 45 µs on these machines, more
 * than the whole emulation. So the vCPU first spins on the slot's state word for up to
 * IOREQ_SPIN_US, which covers the model's own wake-up (it may have been asleep in SCHEDOP_block
 * when our event arrived) plus a short emulation, and only then sleeps on the word. This is the
 * spin-then-block bound of shared/public/io/ring.ts's "Polling": spending about one wake-up's
 * worth spinning is never worse than twice the best choice in hindsight. The spin is where the
 * bound sits; nothing here delays on purpose.
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
import { pollFor } from '../shared/public/io/ring.ts';
import { PAGE_WORDS } from '../shared/public/xen.ts';
import { spin_lock, spin_unlock } from '../shared/spinlock.ts';
import type { Caller } from './caller.ts';
import { evtchn_send } from './event-channel.ts';
import { ioreqLock, serverBase } from './ioreq.ts';
import { get_page, put_page } from './page-alloc.ts';
import type { VcpuScheduler } from './schedule.ts';
import {
  IOREQ_SERVER_ENABLED, MAX_IO_RANGES, MAX_IOREQ_SERVERS, SV, V, VREQ_STOP,
} from './state.ts';

/** What send() returns when no server claims the access (Xen's X86EMUL_UNHANDLEABLE). */
export const IO_UNCLAIMED = -1;
/** Spin budget before sleeping on the slot (see the header). */
export const IOREQ_SPIN_US = 100;
/** How long one sleep may last before the vCPU checks for a stop request (see the header). */
const IOREQ_WAIT_SLICE_MS = 20;

export class IoreqSender {
  private readonly domid: number;
  private readonly request: number;
  /** Index in hv.mem32 of the slot's ctrl word for the access in flight (read by `answered`). */
  private ctrl = 0;
  private readonly answered = (): boolean =>
    ioreq_state(Atomics.load(this.c.hv.mem32, this.ctrl)) === STATE_IORESP_READY;

  constructor(private readonly c: Caller, private readonly sched: VcpuScheduler) {
    this.domid = c.domid;
    this.request = c.hv.vcpu(c.domid, c.vcpu, V.REQUEST);
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

    if (!pollFor(this.answered, IOREQ_SPIN_US)) this.sleepUntilAnswered(mfn);
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
