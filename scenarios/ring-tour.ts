/*
 * Scenario "ring-tour": the hypervisor core in one story. A host boots Dom0, then a DomU; the
 * DomU's frontend grants Dom0 a ring page and data pages and allocates an event channel; Dom0's
 * backend maps them and binds; then they move checksummed requests, and the hypervisor's own
 * counters show what it cost.
 */
import { runRingtest } from './ring/harness.ts';

export async function ringTour(say: (line: string) => void): Promise<void> {
  say('ringvisor: the hypervisor core, told through one shared ring');
  say('');
  say('1. The host starts: one Node process; its main thread is the hypervisor\'s control thread.');
  say('   Machine memory is one SharedArrayBuffer of 4 KiB frames; every vCPU is a worker thread.');
  say('2. Dom0 boots (domain 0, privileged), then a DomU (domain 1) with 8 MiB and one vCPU.');
  say('   Each finds start_info, shared_info and its grant table mapped into its physmap.');
  say('3. The DomU\'s frontend allocates a ring page and 128 data pages, grants them to Dom0');
  say('   (grant_entry_v1: flags | domid | frame), and allocates an unbound event channel for Dom0.');
  say('4. Dom0\'s backend maps the grants (GNTTABOP_map_grant_ref) and binds the port');
  say('   (EVTCHNOP_bind_interdomain). Both ends now share the ring, and nothing else.');
  const requests = 200_000;
  const res = await runRingtest({ requests, warmup: 20_000, depth: 32, len: 'mixed', check: true, back: { mode: 'map' } });
  const [r] = res.rounds;
  say(`5. ${requests.toLocaleString()} requests of 1..4096 bytes crossed, each checksummed by the frontend,`);
  say(`   re-checksummed by the backend from the granted page, and checked again on the response:`);
  say(`   ${r.back.errors === 0 ? 'every one matched' : `${r.back.errors} errors`} (${((requests / r.ms) * 1000).toFixed(0)} requests/s, checksums included).`);
  say('6. What it cost, from the hypervisor\'s counters for the timed part:');
  say(`   event-channel notifications: DomU→Dom0 ${r.timed.domU.notifications}, Dom0→DomU ${r.timed.dom0.notifications}`);
  say(`   (${((r.timed.domU.notifications + r.timed.dom0.notifications) / requests).toFixed(4)} per request: each side polls briefly before it`);
  say(`   arms its event index, so a busy ring needs almost no notifications — ring.h's hold-off at work)`);
  say(`   hypercalls: DomU ${r.timed.domU.hypercalls}, Dom0 ${r.timed.dom0.hypercalls}; grant maps: ${r.counters.dom0.grant_maps} (once, at connect)`);
  say('7. Teardown in Xen\'s order: Dom0 unmaps, the DomU ends access to its grants, the DomU powers off.');
  const u = res.usageAfter;
  say(`   The host now holds what it held before the DomU: ${u.framesUsed} frames, ${u.portsBound} ports, ${u.grantsActive} grants in use,`);
  say(`   ${u.threadsAlive} vCPU thread${u.threadsAlive === 1 ? '' : 's'} (Dom0\'s).`);
  say('');
  say('Next: `npm test` checks all of this; `npm run bench -- --suite ring --quick` measures it.');
}
