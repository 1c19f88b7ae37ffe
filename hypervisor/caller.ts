/*
 * Who is making a hypercall: the domain and vCPU a thread was started as.
 *
 * Xen: `current` (the running struct vcpu) and `current->domain`. Xen never takes the caller's
 * identity from hypercall arguments; neither does ringvisor. A Caller is built once, when a
 * vCPU thread starts, from the ids the control thread gave it, and every hypercall handler takes
 * it as its first argument.
 *
 * A Caller is the hypervisor's own: it carries the whole hypervisor state (`hv`). It is never
 * handed to a guest kernel; the objects that are (the hypercall table, the CPU) hold it in a
 * #private field, so no walk from them reaches it.
 */
import { TraceWriter, traceSlot } from './trace.ts';
import { C, D, DOMF_PRIVILEGED, MAX_VCPUS, NR_COUNTERS, type CounterName, type HypervisorState } from './state.ts';

export class Caller {
  /** Index of this vCPU's first counter in hv.counters. */
  readonly cbase: number;
  /** This vCPU's trace buffer (xentrace's per-CPU t_buf). */
  readonly trace: TraceWriter;

  constructor(
    readonly hv: HypervisorState,
    readonly domid: number,
    readonly vcpu: number,
  ) {
    this.cbase = (domid * MAX_VCPUS + vcpu) * NR_COUNTERS;
    const bank = hv.buffers.traceBank;
    this.trace = new TraceWriter(hv.buffers.trace, domid, vcpu, traceSlot(hv.buffers.trace, bank, domid * MAX_VCPUS + vcpu), bank);
  }

  /** is_control_domain(current->domain). Read each time: it is a property of the live domain. */
  get privileged(): boolean {
    return (Atomics.load(this.hv.domains, this.domid * D.WORDS + D.FLAGS) & DOMF_PRIVILEGED) !== 0;
  }

  count(name: CounterName, n = 1): void {
    this.hv.counters[this.cbase + C[name]] += n;
  }
}
