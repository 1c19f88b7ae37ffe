/*
 * Scenario "tour": the lecture's opening concepts, one after another, each shown on a live host
 * and each followed by the source files to read next.
 *
 * In order: the hypervisor below Dom0 and the guests (a Type-1 placement, and what would change
 * if ringvisor were hosted, Type-2); a hypercall and a trapped privileged instruction, caught by
 * the trace as they happen; Dom0 and a DomU side by side; a template provisioned into a VM
 * directory and cloned, because a VM is files; then where to go from here.
 *
 * Everything shown is read from this run: the domain list from the toolstack, the hypercall and
 * the trap from the trace buffers, the counters from the hypervisor.
 */
import { cpSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { XlClient } from '../cli/client.ts';
import { startHost } from '../cli/host.ts';
import { newVmFromTemplate } from '../dom0/toolstack/config/vmdir.ts';
import type { CreateResult, ListedDomain } from '../dom0/toolstack/protocol.ts';
import {
  TRC_CSCHED_TICK, TRC_HVM, TRC_HVM_IOREQ, TRC_PV, TRC_PV_EVTCHN_SEND, TRC_PV_HYPERCALL, TRC_BEGIN, TRC_SCHED, type TraceRecord,
} from '../shared/public/trace.ts';
import { hypercallName } from '../shared/public/hypercall-ids.ts';
import { DOMID_XEN } from '../shared/public/xen.ts';
import { DEFAULT_WAIT_POLICY } from '../shared/wait.ts';
import { TraceRecording } from '../tools/trace/record.ts';
import type { ScenarioOptions } from './registry.ts';

const EXAMPLES = new URL('../examples/', import.meta.url);

export async function tour(say: (line: string) => void, opts: ScenarioOptions = { wait: DEFAULT_WAIT_POLICY }): Promise<void> {
  const work = mkdtempSync(join(tmpdir(), 'rv-tour-'));
  const t0 = performance.now();
  const read = (files: string) => say(`   Read next: ${files}`);
  say('ringvisor: a tour of the opening concepts, on a live host');
  say('');
  const rh = await startHost({ runDir: join(work, 'run'), memoryMiB: 160, wait: opts.wait, log: () => {} });
  const xl = await XlClient.open(rh.runDir);
  try {
    // 1. Type-1 placement.
    const list0 = await xl.call<ListedDomain[]>({ verb: 'list' });
    say('1. The hypervisor is below everything else (a Type-1, "bare-metal" placement, as Xen).');
    say('   The host started: its main thread is the hypervisor\'s control thread; machine memory, the frame table,');
    say('   the event-channel and grant tables are SharedArrayBuffers only the hypervisor\'s code writes. Then it built');
    say(`   one domain: ${list0.map((d) => `${d.name} (id ${d.domid})`).join(', ')}. Dom0 is not the host: it is the first guest,`);
    say('   with the privilege to build others, and it owns the devices (blkback, the device model, xenstored run in it).');
    say('   If ringvisor were hosted (Type-2, as VirtualBox or KVM with QEMU): the host OS would own the devices and');
    say('   schedule the vCPUs as its own threads; the backends would be host processes rather than a privileged guest,');
    say('   and there would be no Dom0 to trust. (Honestly: ringvisor itself runs on Linux as one Node process. What is');
    say('   Type-1 is its design: no guest\'s data path goes through the control thread or any host program.)');
    read('hypervisor/host.ts, hypervisor/state.ts, hypervisor/vcpu.ts, DESIGN.md section 2');
    say('');

    // 2 and 3. Dom0 and DomU; a hypercall; a trap. Two shipped VMs, traced while they run.
    cpSync(new URL('vms/', EXAMPLES), join(work, 'vms'), { recursive: true });
    const rec = new TraceRecording(TRC_PV | TRC_HVM | TRC_SCHED);
    const pv = await xl.call<CreateResult>({ verb: 'create', path: join(work, 'vms', 'guest-pv') });
    const hvm = await xl.call<CreateResult>({ verb: 'create', path: join(work, 'vms', 'guest-hvm') });
    const both = await xl.call<ListedDomain[]>({ verb: 'list' });
    say('2. Dom0 and DomU. Two unprivileged guests (DomUs) now run beside Dom0, as `ringvisor list` shows:');
    for (const d of both) say(`     ${d.name.padEnd(12)} id ${String(d.domid).padEnd(3)} ${String(d.memMiB).padStart(4)} MiB  ${d.vcpus} vCPU${d.domid === 0 ? '  (privileged: the control domain)' : ''}`);
    say('   A DomU reaches nothing but its own memory, its hypercalls and its CPU; its disk is served by Dom0.');
    read('dom0/dom0.ts, domu/kernel.ts, README.md "Isolation", test/boundaries.test.ts');
    await xl.call({ verb: 'wait', domain: String(pv.domid) });
    await xl.call({ verb: 'wait', domain: String(hvm.domid) });
    const recs = rec.stop();
    say('');
    say('3. A hypercall and a trapped privileged instruction, as the trace recorded them while the guests ran:');
    const hc = recs.find((r) => r.domid === pv.domid && r.event === (TRC_PV_EVTCHN_SEND | TRC_BEGIN));
    const trap = recs.find((r) => r.domid === hvm.domid && r.event === (TRC_HVM_IOREQ | TRC_BEGIN));
    const count = (d: number, ev: number) => recs.filter((r) => r.domid === d && r.event === ev).length;
    if (hc) {
      say(`   hypercall: guest-pv's kernel called HYPERVISOR_event_channel_op(EVTCHNOP_send, port ${hc.data[0]}) on its vCPU ${hc.vcpu};`);
      say('   the hypervisor ran it right there, on the guest\'s own thread, and marked Dom0\'s port pending. A PV guest');
      say(`   knows it is virtualized and asks (${count(pv.domid, TRC_PV_EVTCHN_SEND | TRC_BEGIN)} event sends in this run).`);
    } else say('   hypercall: none recorded for guest-pv (its trace buffer was empty)');
    // Every hypercall is recorded where they all enter (TRC_PV_HYPERCALL), named with its sub-op.
    const calls = new Map<string, number>();
    for (const r of recs) if (r.domid === pv.domid && r.event === TRC_PV_HYPERCALL) calls.set(hypercallName(r.data[0], r.data[1]), (calls.get(hypercallName(r.data[0], r.data[1])) ?? 0) + 1);
    const top = [...calls].sort((a, b) => b[1] - a[1]).slice(0, 4).map(([n, k]) => `${n} ×${k}`).join(', ');
    const total = [...calls.values()].reduce((a, b) => a + b, 0);
    say(`   All of guest-pv's hypercalls, as the one entry recorded them: ${total}, most often`);
    say(`     ${top || 'none'}.`);
    const ticks = recs.filter((r) => r.domid === DOMID_XEN && r.event === (TRC_CSCHED_TICK | TRC_BEGIN)).length;
    say(`   Meanwhile the hypervisor's control thread took ${ticks} timer ticks (csched_tick: charge the running vCPUs, share out`);
    say('   credit, ask one to give its pCPU up): the scheduler is the hypervisor\'s, not the guests\'.');
    if (trap) {
      say(`   trap: guest-hvm's IDE driver executed ${trap.data[1] ? 'OUT' : 'IN'} on port 0x${trap.data[0]!.toString(16)} as on real hardware; the access`);
      say('   trapped to the hypervisor, which sent an ioreq to the device model in Dom0 and held the vCPU until it answered.');
      say(`   An HVM guest does not know; it is caught (${count(hvm.domid, TRC_HVM_IOREQ | TRC_BEGIN)} trapped accesses in this run).`);
    } else say('   trap: none recorded for guest-hvm');
    read('hypervisor/hypercall.ts, hypervisor/event-channel.ts, hypervisor/trap.ts, hypervisor/ioreq-send.ts,');
    say('              dom0/device-models/xen-hvm.ts; `npm start -- tour --trace FILE` writes the whole trace for ui.perfetto.dev');
    say('');

    // 4. A VM is files.
    const tpl = new URL('templates/small-guest/', EXAMPLES);
    const web1 = newVmFromTemplate(tpl.pathname, join(work, 'vms', 'web1'));
    const web2 = newVmFromTemplate(join(work, 'vms', 'web1'), join(work, 'vms', 'web2'));
    const ident = (dir: string) => {
      const cfg = readFileSync(join(dir, 'vm.cfg'), 'utf8');
      const get = (k: string) => new RegExp(`^${k}\\s*=\\s*"?([^"\\n]*)"?`, 'm').exec(cfg)?.[1] ?? '?';
      return `name ${get('name')}, uuid ${get('uuid')}, vif ${/mac=([0-9a-f:]+)/.exec(cfg)?.[1] ?? '?'}`;
    };
    say('4. A VM is files. `ringvisor new-vm --from examples/templates/small-guest web1` provisions a template into a');
    say(`   VM directory (${readdirSync(web1.dir).join(', ')}), with a fresh identity; cloning web1 into web2 gives another:`);
    say(`     web1: ${ident(web1.dir)}`);
    say(`     web2: ${ident(web2.dir)}`);
    const w = await xl.call<CreateResult>({ verb: 'create', path: web1.dir });
    say(`   ringvisor create web1 → domain ${w.domid}; its disk image appeared beside its config: ${readdirSync(web1.dir).filter((f) => f.endsWith('.img')).join(', ')}.`);
    await xl.call({ verb: 'shutdown', domain: String(w.domid), kind: 'poweroff' });
    await xl.call({ verb: 'wait', domain: String(w.domid) });
    say('   ringvisor shutdown web1: the guest read control/shutdown in XenStore and powered itself off.');
    read('dom0/toolstack/config/vmdir.ts, dom0/toolstack/config/, dom0/toolstack/libxl.ts, examples/README.md');
    say('');
    say(`Done in ${((performance.now() - t0) / 1000).toFixed(1)} s. Next:`);
    say('  npm start -- pv-vs-emulated   the same workload over a PV disk and an emulated one, with the counters that explain it');
    say('  npm start -- ring-tour        one shared ring: grants, event channels, notification hold-off');
    say('  npm start -- NAME --trace F   any scenario, traced; open F in https://ui.perfetto.dev');
    say('  npx ringvisor host --http 127.0.0.1:0, then ringvisor top and ringvisor trace -w F   a live host, watched');
    say('  npm run docs                  the annotated source, in the README\'s reading order');
  } finally {
    xl.close();
    await rh.close();
    rmSync(work, { recursive: true, force: true });
  }
}
