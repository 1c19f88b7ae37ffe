/*
 * The list of reference scenarios `npm start` knows.
 */
import { pvVsEmulated } from './pv-vs-emulated.ts';
import { ringTour } from './ring-tour.ts';
import { cpuShare } from './cpu-share.ts';
import { tour } from './tour.ts';
import { pvNet } from './pv-net.ts';
import { vcpuHotplug } from './sched/vcpu-hotplug.ts';
import { overcommit } from './overcommit.ts';
import { liveMigration } from './live-migration.ts';
import { singleConduit } from './single-conduit.ts';
import type { WaitPolicy } from '../shared/wait.ts';

/** What `npm start` passes every scenario. */
export interface ScenarioOptions {
  /** The host's waiting policy (shared/wait.ts): `npm start -- --wait irq|poll`. */
  wait: WaitPolicy;
}

export interface Scenario {
  name: string;
  summary: string;
  run(say: (line: string) => void, opts: ScenarioOptions): Promise<void>;
}

export const SCENARIOS: Scenario[] = [
  {
    name: 'pv-vs-emulated',
    summary: 'two VMs from examples/ on one host: the same disk workload over a PV disk and an emulated IDE disk',
    run: pvVsEmulated,
  },
  { name: 'ring-tour', summary: 'a DomU and Dom0 share a ring: grants, event channels, notification hold-off', run: ringTour },
  { name: 'cpu-share', summary: 'the credit scheduler: three CPU hogs by weight, a cap, a pin, and BOOST for an I/O-bound guest', run: cpuShare },
  { name: 'tour', summary: 'the opening concepts on a live host: Type-1, hypercall and trap, Dom0 and DomU, a VM is files', run: tour },
  { name: 'single-conduit', summary: 'Dom0 as the single I/O conduit: blkback fails under four guests and comes back; one backend fails; the IOMMU refuses a stray DMA', run: singleConduit },
  { name: 'vcpu-hotplug', summary: 'maxvcpus and vcpu-set: a vCPU comes online and goes offline under cpu-burn, with its xenstore node and runstate', run: vcpuHotplug },
  { name: 'overcommit', summary: 'four 96 MiB guests on a 256 MiB host: populate on demand, page sharing, ballooning, paging', run: overcommit },
  { name: 'pv-net', summary: 'two PV guests on xenbr0: the vif handshake, bridge learning, one packet\'s path, ping, UDP, a pcap', run: pvNet },
  { name: 'live-migration', summary: 'a guest moves, running, between two hosts: precopy rounds under log-dirty, the stop-and-copy, the downtime; then save and restore; then the pool moving a VM on its own when a host runs short of memory', run: liveMigration },
  { name: 'migrate', summary: 'the same as live-migration', run: liveMigration },
];

export const DEFAULT_SCENARIO = 'pv-vs-emulated';
