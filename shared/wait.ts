/*
 * The waiting policy: what every party that waits for the other side of a device does while it
 * waits. One policy per run, named, applied alike to frontends, backends, device models and the
 * trapping vCPU, so that paths compared side by side differ by their mechanism, not by how
 * eagerly one of them spins.
 *
 *   irq   sleep on the event at once, as Linux's drivers do when they take an interrupt
 *         (xen-blkfront's blkif_interrupt, ata_piix's IRQ 14, blkback's kthread woken by its
 *         event, QEMU's ioreq server woken by its event channel, a vCPU blocked in
 *         hvm_wait_for_io). Every completion the waiter does not already see costs a wake-up.
 *   poll  spin for at most POLL_BUDGET_US before sleeping, as blk-mq's polled I/O and
 *         cpuidle-haltpoll do: a waiter with work coming keeps looking (its ring, its event
 *         word, its ioreq slot) and sleeps only when nothing arrived within the budget.
 *
 * Which waiters spin under `poll` (shared/kernel/events.ts, hypervisor/ioreq-send.ts): a
 * frontend or an emulated-disk driver only while it has requests in flight (blk-mq polls a
 * request it submitted; nothing is on its way to an idle driver); a backend or device model
 * after every burst of work (its frontend may publish more); the trapping vCPU while its access
 * is with the device model. Under `irq` none of them spins; the final checks that close the
 * race between "nothing to do" and "sleep" (RING_FINAL_CHECK_FOR_*) are ring semantics and
 * stay in both policies.
 *
 * How a domain learns the policy: its kernel command line, `wait=irq|poll` (shared/public/
 * cmdline.ts), read once at boot by shared/kernel/kernel.ts; Dom0's from its boot command line,
 * a DomU's from the toolstack, which writes Dom0's own policy unless told otherwise. The
 * hypervisor's own waiting (the trapping vCPU) follows the host's option, as Xen's follows its
 * own command line: hypervisor/host.ts HostOptions.wait.
 *
 * The budget. A futex wake-up (Atomics.wait → notify) costs about 45 µs on these machines, from
 * about 10 µs to several hundred when every core has gone idle, while a spinning peer sees a new
 * index in about 0.1 µs. Spinning for about one wake-up's worth before blocking is never worse
 * than twice the best choice in hindsight (the spin-then-block bound). 200 µs is the default of
 * Linux's guest halt-polling (guest_halt_poll_ns = 200000, Documentation/virt/
 * guest-halt-polling.rst) and of KVM's host halt-polling on x86 (halt_poll_ns): one budget for
 * every waiter here, not one per driver.
 *
 * Spin only while the peer runs (DESIGN.md §12). Measured on 2 cores, a spinner that keeps the
 * core its peer needs turns polling from the fastest policy into the slowest. Two things stop a
 * spin early:
 *   - the peer is preempted: the vCPU that the waiter's event channel reaches is runnable but
 *     holds no pCPU slot, or sleeps while every slot is taken (GuestSched.evtchn_peer_preempted,
 *     read from the runstate and slot words the scheduler keeps; Linux's vcpu_is_preempted, KVM's
 *     halt-polling). Guest kernels ask it for their drivers' event channels
 *     (shared/kernel/events.ts, IdlePoller.peerPort); the trapping vCPU asks the hypervisor's
 *     tables directly (hypervisor/ioreq-send.ts). Xen shows a guest only its own vCPUs' runstate
 *     (VCPUOP_register_runstate_memory_area); ringvisor's guests see their device peers', since
 *     the question needs it.
 *   - the kernel's poll limit has shrunk (cpuidle-haltpoll's adaptation, shared/kernel/events.ts):
 *     when waits keep outlasting the budget, spinning buys nothing and the limit falls to 0.
 */

export type WaitPolicy = 'irq' | 'poll';
export const WAIT_POLICIES: readonly WaitPolicy[] = ['irq', 'poll'];
/** What a run uses when nobody names a policy: what Linux's drivers do. */
export const DEFAULT_WAIT_POLICY: WaitPolicy = 'irq';
/** The longest a waiter spins under `poll` before it sleeps (see the header), in microseconds. */
export const POLL_BUDGET_US = 200;

/** A policy's name, checked: undefined gives the default; anything else but irq|poll throws. */
export function parseWaitPolicy(value: string | undefined, where: string): WaitPolicy {
  if (value === undefined) return DEFAULT_WAIT_POLICY;
  if (value === 'irq' || value === 'poll') return value;
  throw new Error(`${where}: wait=${value} is not a waiting policy (expected irq or poll)`);
}

/** How long a waiter may spin under `policy`: the budget, or 0 (sleep at once). */
export function spinBudgetUs(policy: WaitPolicy): number {
  return policy === 'poll' ? POLL_BUDGET_US : 0;
}

/** Why spins on this thread stopped early (each vCPU thread has its own copy of this module). */
export const spinRecord = { peerPreempted: 0 };

/**
 * Spin until `ready()` or until `budgetUs` microseconds have passed, or until `peerPreempted()`
 * (when given) says the peer cannot answer before it runs again. Returns ready()'s last answer.
 * The clock and the peer are looked at every 64 tries, not every try.
 */
export function spinUntil(ready: () => boolean, budgetUs: number, peerPreempted?: () => boolean): boolean {
  if (ready()) return true;
  if (budgetUs <= 0) return false;
  const deadline = performance.now() + budgetUs / 1000;
  for (let i = 1; ; i++) {
    if (ready()) return true;
    if ((i & 63) !== 0) continue;
    if (performance.now() > deadline) return ready();
    if (peerPreempted !== undefined && peerPreempted()) {
      spinRecord.peerPreempted++;
      return ready();
    }
  }
}
