/*
 * A zombie: a domain in the hypervisor's list as dying (DOMSTATE_DYING), under a name of the
 * test's choosing, that no toolstack keeps a record of. Xen: a domain whose domain_kill has begun
 * but not finished (XEN_DOMCTL_destroydomain preempted, or its last references not yet dropped),
 * which `xl list` still shows; libxl, which reads names from xenstore, no longer sees its name.
 *
 * ringvisor's hypervisor lists a domain only until its destroy (hypervisor/host.ts destroy)
 * finishes, so a test that needs one to stay makes it as that destroy does and stops halfway: a
 * domain built here on the host's control thread (the test's), paused, then domain_kill_begin
 * (hypervisor/domain-build.ts): dying, its ports and grants gone, its memory not yet. finish()
 * runs the whole destroy, which takes it from there.
 */
import type { RunningHost } from '../../cli/host.ts';
import { domain_kill_begin } from '../../hypervisor/domain-build.ts';

const PROBE = new URL('../kernels/probe.ts', import.meta.url).href;

export interface DyingDomain {
  readonly domid: number;
  /** The rest of the destroy: the domain leaves the list. */
  finish(): Promise<void>;
}

export async function dyingDomain(rh: RunningHost, name: string): Promise<DyingDomain> {
  const host = rh.host;
  const domid = await host.createDomain({ name, vcpus: 1, memoryKiB: 2048, kernel: PROBE, module: { action: 'idle' }, paused: true });
  domain_kill_begin(host.hv, domid);
  return { domid, finish: () => host.destroy(domid) };
}
