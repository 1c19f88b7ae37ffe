/*
 * The standard DomU kernel: the "kernel image" every VM config boots.
 *
 * Xen/Linux: what a Linux guest does from xen_start_kernel to a running init, reduced to its Xen
 * parts, in Linux's order: the hvc console (so printk lands in xenconsoled's log), xenbus (the
 * store ring), the control/shutdown watch (drivers/xen/manage.c), the vCPU hot-plug watch
 * (drivers/xen/cpu_hotplug.c: shared/kernel/cpu-hotplug.ts), the block devices
 * (xenbus_probe_frontend's wait_for_devices for PV disks, ata_piix for an emulated one), the
 * network interfaces (netfront, and the stack on the first one: ./nics.ts), then
 * "init": the workload named on the command line. A config's `kernel =` would pick the image in
 * Xen; here the toolstack boots this one (its URL comes from `ringvisor host`).
 *
 * The command line (shared/public/cmdline.ts) carries the workload and its arguments, the guest
 * type and the emulated disk, if any. After the workload the kernel idles (or powers off, as the
 * workload says: domu/workloads/run.ts) until the toolstack asks it to stop through
 * control/shutdown or someone types `poweroff` at its console. Stopping is orderly, as Linux's
 * orderly_poweroff: say so, close every disk (blkfront hands its grants back, the IDE driver
 * stops its channel), let xenconsoled take the last bytes, then switch the machine off
 * (domu/manage.ts), which is where the hypervisor stops the domain.
 *
 * A workload that finds bad data throws; the exception leaves main() and the domain crashes
 * (hypervisor/vcpu.ts), so on_crash decides what happens to it, as for a guest kernel panic.
 *
 * This kernel is resumable (DESIGN.md section 12; README, "Save, restore and live migration").
 * Xen saves a guest by copying its memory and its vCPUs' registers; this kernel's objects live on
 * its thread's heap, which no page copy reaches, so the rule is: what it needs to continue lives in
 * guest memory. Its workload keeps its progress there; rings, grants, ports and watches are
 * rebuilt after a move (Xen does not migrate those either). At suspend (control/shutdown =
 * "suspend", or a notification on its suspend event channel: ./manage.ts) the kernel quiesces
 * its frontends (below: no disconnect), writes a small vCPU-context record into a guest page and makes
 * SCHEDOP_shutdown(SHUTDOWN_suspend) naming it, as Linux's xen_suspend hands its start_info frame
 * to HYPERVISOR_suspend in a register; the hypervisor keeps that as the vCPU's
 * saved context. A restored domain boots this same main() on a fresh thread in resume mode: the
 * context record is found, read from memory, and the devices reconnect as Linux's resume path does
 * (xs_resume, then blkfront_resume / netfront_resume: each frontend goes through the xenbus
 * handshake with the new backends, blkfront re-issuing what was in flight as blkif_recover). The
 * target host receives nothing but the save stream: the guest's pages, that record, the config.
 *
 * The resume's critical path is the peer's: from the unpause to the first answer a client gets
 * (the migrate bench's detail.peer.firstAnswerAfterUnpauseMs). Measured phase by phase in the
 * guest's log, it went to the vCPU thread's first steps in code not yet compiled, to a workload
 * turn before every xenstore reply could be taken, to the vifs reconnecting last, after the
 * control watches, vCPU hot-plug, the balloon and the disks, one round trip per request (48 in
 * sequence), and to an ARP round trip before the first answer. So, in resume mode: the first
 * request (XS_RESET_WATCHES) and the vifs' first ones (not waiting for its reply: xenstored
 * answers in order) go out before the workload is thawed; the vifs reconnect first and
 * serve= starts as soon as they are up, while the rest of the boot path runs beside them (their
 * requests interleave on the ring; Linux's frontends also reconnect side by side, each driven by
 * its own watch); requests that do not depend on each other go together, and netfront writes its
 * keys and Connected in one transaction, started ahead, and the vifs it had (their devids in its
 * resume record) are probed at once, beside the listing of device/vif (4-5 sequential round trips
 * from the first step to the vif Connected, from 14-15: shared/kernel/xenbus/frontend.ts; tools/trace/resume-timeline.ts
 * times each step from the unpause to the peer's first answer); the neighbour table comes back
 * from guest memory (./resume.ts); and a workload yields whenever an event is pending
 * (Kernel.eventPending, as wake-up preemption lets a Linux kernel thread in at once).
 *
 * The suspend, as Linux's do_suspend does it: freeze the workload (freeze_processes), quiesce the
 * devices (dpm_suspend_start), write the record, make the hypercall. No frontend is disconnected:
 * blkfront stops putting requests on its rings and lets what is on them finish (Blkfront.quiesce),
 * the vifs are left as they are (an emulated disk or NIC is stopped, as before: no backend to stay
 * connected to, and no toolstack reset reaches a device model), and every backend stays Connected,
 * so the suspend makes no
 * xenstore request at all (it made 24, in 8-9 round trips, with a disk and a vif, when it closed
 * its frontends; the kernel's suspend line counts them). After a migration the target's backends
 * are fresh and the resumed kernel connects to them as it always has.
 *
 * What differs from Linux, and why. Linux leaves blkfront's in-flight requests in the shadow, in
 * kernel memory that crosses with the guest, and blkif_recover issues them again on the new host;
 * this kernel lets them finish before the hypercall instead, because their callers are on the old
 * thread's heap (no page copy reaches them) and because a write still in flight at the source while
 * the target starts writing the same shared image could land after a newer one. It costs the
 * suspend one request's service time when the disk is busy. And a cancelled suspend: Linux's
 * HYPERVISOR_suspend returns 1 (xc_domain_resume fast, libxl's suspend_cancel) and its frontends
 * carry on with the same backends, rings and grants (xenbus_dev_cancel does nothing). A ringvisor
 * kernel never carries on from the hypercall: even an in-place resume (XEN_DOMCTL_resumedomain)
 * boots a fresh vCPU thread, and a frontend's private ring state (req_prod_pvt, rsp_cons, which
 * grant holds which buffer) went with the old thread's heap. So before it resumes a domain in
 * place, the toolstack closes each frontend on the suspended kernel's behalf and waits for every
 * backend to let go of the old rings (dom0/toolstack/resume-reset.ts); the resumed kernel finds its
 * devices Closed and reconnects as after a close. That reconnection is outside any blackout: it
 * happens only when a migration or a save failed.
 */
import { consoleInit, type XenConsole } from '../shared/kernel/console.ts';
import { Kernel } from '../shared/kernel/kernel.ts';
import { xenbusInit } from '../shared/kernel/xenbus/xs-ring.ts';
import type { XenbusClient } from '../shared/kernel/xenbus/client.ts';
import { XS_RESET_WATCHES } from '../shared/public/io/xs_wire.ts';
import { CMDLINE_DRIVER_DOMAIN, CMDLINE_E1000, CMDLINE_GUEST_TYPE, CMDLINE_IDE, parseCmdline, type CmdlineGuestType } from '../shared/public/cmdline.ts';
import type { KernelEnv } from '../shared/public/hypercall.ts';
import type { ShutdownRequest } from '../shared/public/io/xenbus.ts';
import { PAGE_SIZE } from '../shared/public/xen.ts';
import { type Balloon, balloonInit, balloonResume } from './balloon/balloon.ts';
import type { BlockDevice } from './block/blkdev.ts';
import { findDisks } from './disks.ts';
import { findNics } from './nics.ts';
import { NET_WORKLOADS, runNetWorkload, serveBeside } from './workloads/net-run.ts';
import { machineOff, watchShutdown } from './manage.ts';
import { R, WORKLOAD_MEM_TOUCH, plainRecord, resumeRecordAtBoot, type ResumeRecord } from './resume.ts';
import { startMemTouch, type MemTouch } from './workloads/mem-touch.ts';
import { runWorkload, type AfterWorkload } from './workloads/run.ts';
import { runDiskCheck } from './workloads/disk-check.ts';
import { CpuHotplug } from '../shared/kernel/cpu-hotplug.ts';
import { driverDomainInit } from './driver-domain.ts';

/** Every vCPU but 0 runs this kernel's secondary entry: shared work, and going down and up when told. */
export { secondary } from './smp.ts';

export async function main(env: KernelEnv): Promise<void> {
  const k = new Kernel(env);
  // Resume mode (see the header): take back the pages the suspended kernel kept its state in,
  // before anything else allocates.
  const resumed = resumeRecordAtBoot(k, env.resume_gfn);
  const ballooned = resumed ? balloonResume(k, resumed) : []; // its pages too, before anything allocates
  void k.events.run(); // the idle loop: events, xenbus replies and the console are served from here
  const cons = consoleInit(k);
  const args = parseCmdline(k.si.cmd_line);
  const type = (['pv', 'pvh', 'hvm'].includes(args.get(CMDLINE_GUEST_TYPE) ?? '') ? args.get(CMDLINE_GUEST_TYPE) : 'pv') as CmdlineGuestType;
  const xs = xenbusInit(k);
  // Resumed in the domain it suspended in (a migration that failed: xc_domain_resume), the kernel
  // finds the store connection its predecessor used, its watches still set: drop them first, as
  // Linux's xs_reset_watches does for a kexec'd kernel. On a new host the connection is new anyway.
  const reset = resumed ? xs.request(XS_RESET_WATCHES, ['']) : null;
  // Resume: the network first. A peer waits for the guest's answers from the moment it was paused,
  // and what it needs is netfront Connected to this host's netback (whose hotplug step has put the
  // vif on the bridge) and the gratuitous ARP; so the vifs reconnect, and a server beside the
  // workload starts again, while the rest of the boot path (the control watches, vCPU hot-plug,
  // the balloon, the disks) runs beside them, their xenstore requests interleaved on the ring
  // (xenstored answers them in order, so nothing waits for a whole round trip of another's).
  // Linux's devices resume side by side the same way: each frontend's handshake is driven by
  // watches (netback_changed, blkback_changed), none waits for another's.
  const netReady = resumed === null ? null
    : findNics(k, xs, (line) => k.log(line), (nic) => k.log(`${nic.name}: hot-plugged`), args.get(CMDLINE_E1000) ?? null, resumed.neighbours(), resumed.vifs())
      .then((net) => { serveBeside(net.stack, args, (line) => k.log(line)); return net; });
  netReady?.catch(() => undefined); // its failure is thrown where it is awaited, below, not as an unhandled rejection meanwhile
  // Linux thaws user space once the devices' resume callbacks have run (do_suspend: xs_resume,
  // dpm_resume_end, then thaw_processes), while its frontends' handshakes go on behind it: a
  // workload whose state is in guest memory carries on now, the vifs' first xenstore requests
  // already on their way (as xenbus_dev_resume has run), before the devices are back. It gives way whenever an event is pending
  // (Kernel.eventPending), so the reconnection below is not held up by its turns.
  let memTouch: MemTouch | null = resumed?.words[R.WORKLOAD] === WORKLOAD_MEM_TOUCH && args.get('workload') === 'mem-touch'
    ? startMemTouch(k, args, resumed, (line) => k.log(line)) : null;
  await reset; // the vifs' first requests went out behind it: xenstored answers them in order, after the reset
  const name = await xs.read('name');
  k.log(`ringvisor DomU kernel: ${name}, ${type.toUpperCase()} guest, ${(k.si.nr_pages * PAGE_SIZE) >> 20} MiB, ` +
    `${k.nr_vcpus} vCPU(s)`);
  k.log(`Command line: ${k.si.cmd_line}`);
  if (resumed) k.log(`resume: restored from a save stream, or resumed in place (suspend #${resumed.words[R.SUSPENDS]}), running again ` +
    `${resumed.msSinceFrozen().toFixed(1)} ms after it froze; reconnecting devices to this host's backends`);

  let stop: (req: ShutdownRequest) => void = () => undefined;
  const stopRequested = new Promise<ShutdownRequest>((resolve) => { stop = resolve; });
  let askedAt = 0; // when the request reached this kernel (the suspend line below reports from it)
  await watchShutdown(k, xs, (req, via) => {
    askedAt = performance.now();
    k.log(`xenbus: ${via} says ${req}`);
    stop(req);
  });
  await CpuHotplug.setup(k, xs, (line) => k.log(line)); // vCPU hot-plug: cpu/N/availability (./smp.ts runs the others)
  const balloon = await balloonInit(k, xs, (line) => k.log(line), ballooned);
  // driver_domain=1: this guest serves other guests' disks (./driver-domain.ts).
  if (args.get(CMDLINE_DRIVER_DOMAIN) === '1') await driverDomainInit(k, xs, (line) => k.log(line));
  const disks = await findDisks(k, xs, {
    ide: args.has(CMDLINE_IDE) ? args.get(CMDLINE_IDE)! : null,
    log: (line) => k.log(line),
    onHotplug: (dev) => k.log(`${dev.name}: hot-plugged`),
  });
  k.log(`disks: ${disks.disks.map((d) => `${d.name} (${d.path}, ${mib(d)})`).join(', ') || 'none'}`);
  const net = await (netReady ?? findNics(k, xs, (line) => k.log(line), (nic) => k.log(`${nic.name}: hot-plugged`), args.get(CMDLINE_E1000) ?? null));
  serveConsole(k, cons, disks.disks, (req) => stop(req));
  if (netReady === null) serveBeside(net.stack, args, (line) => k.log(line)); // serve=PORT: udp-rr beside the workload (./workloads/net-run.ts)

  const wname = args.get('workload') ?? 'idle';
  // A server that keeps no progress (udp-rr's echo: each answer is the request sent back) simply
  // serves again after a resume, as a daemon does after Linux's resume; anything else idles.
  const stateless = wname === 'udp-rr' && args.get('role') === 'server';
  if (resumed !== null && resumed.words[R.WORKLOAD] !== WORKLOAD_MEM_TOUCH && wname !== 'idle' && !stateless) {
    k.log(`resume: workload ${wname} kept its progress on the kernel's heap, not in guest memory, so it cannot carry on; idling`);
  }
  const workload: Promise<AfterWorkload> = resumed !== null && resumed.words[R.WORKLOAD] !== WORKLOAD_MEM_TOUCH && !stateless
    ? Promise.resolve('idle')
    : wname === 'mem-touch'
    ? (memTouch ??= startMemTouch(k, args, resumed, (line) => k.log(line))).done.then((): AfterWorkload => (args.get('then') === 'poweroff' ? 'poweroff' : 'idle'))
    : NET_WORKLOADS.includes(wname)
    ? runNetWorkload(net.stack, args, (line) => k.log(line), (ms) => k.timers.sleep(ms)).then((): AfterWorkload => (args.get('then') === 'poweroff' ? 'poweroff' : 'idle'))
    : runWorkload(k, disks.disks, args, (line) => k.log(line));
  // A shutdown request does not wait for the workload: Linux stops user space first.
  const first = await Promise.race([workload.then((then) => ({ then })), stopRequested.then((req) => ({ req }))]);
  const req: ShutdownRequest = 'req' in first ? first.req : first.then === 'poweroff' ? 'poweroff' : await stopRequested;
  if (req === 'suspend') {
    const rec = await suspend(k, xs, askedAt, memTouch?.record ?? resumed ?? null, memTouch, async () => (await Promise.all([disks.quiesceAll(), net.quiesceAll()]))[0], balloon,
      net.stack?.arp.entries() ?? [], net.vifs());
    await cons.drained();
    return k.hypercall.sched_suspend(rec.gfn);
  }
  const reboot = req === 'reboot';
  k.log(reboot ? 'reboot: Restarting system' : 'reboot: Power down');
  await disks.closeAll();
  await net.closeAll();
  await cons.drained();
  machineOff(k, type, reboot);
}

/*
 * What is typed at the console (xl console): echoed back, a line at a time, with a few commands,
 * so an attached operator can look around and power the guest off from inside.
 */
function serveConsole(k: Kernel, cons: XenConsole, disks: readonly BlockDevice[], stop: (req: ShutdownRequest) => void): void {
  let line = '';
  const decoder = new TextDecoder();
  cons.onInput = (bytes) => {
    for (const ch of decoder.decode(bytes)) {
      if (ch === '\r' || ch === '\n') {
        cons.write('\r\n');
        command(line.trim());
        line = '';
      } else if (ch === '\x7f' || ch === '\b') {
        if (line.length > 0) { line = line.slice(0, -1); cons.write('\b \b'); }
      } else if (ch >= ' ') {
        line += ch;
        cons.write(ch);
      }
    }
  };
  const command = (cmd: string) => {
    if (cmd === '') return;
    const check = /^disk-check(?:\s+(\d+))?$/.exec(cmd);
    if (cmd === 'help') k.log('commands: help, disks, stats, disk-check [BLOCKS], poweroff, reboot, crash');
    else if (check !== null) consoleDiskCheck(k, disks[0], Number(check[1] ?? 64));
    else if (cmd === 'disks') for (const d of disks) k.log(`${d.name}: ${d.path}, ${d.sectors} sectors (${mib(d)})`);
    else if (cmd === 'stats') for (const d of disks) k.log(`${d.name}: ${JSON.stringify(d.stats())}`);
    else if (cmd === 'poweroff' || cmd === 'halt') stop('poweroff');
    else if (cmd === 'reboot') stop('reboot');
    // Linux's sysrq-c: a deliberate kernel crash, so on_crash can be seen at work.
    else if (cmd === 'crash') queueMicrotask(() => { throw new Error('sysrq: trigger a crash (typed at the console)'); });
    else k.log(`${cmd}: command not found (try help)`);
  };
}

/*
 * `disk-check [BLOCKS]` at the console: the disk-check workload's write-then-verify pass over the
 * first BLOCKS 4 KiB blocks of the first disk (what was there is overwritten, as that workload
 * does), for an operator (or a test) to see that the disk answers, correctly, right now: after a
 * resume, say, when the workload the guest was started with does not carry on.
 */
function consoleDiskCheck(k: Kernel, dev: BlockDevice | undefined, blocks: number): void {
  if (dev === undefined) return k.log('disk-check: no disk');
  runDiskCheck(k, dev, { bs: 4096, blocks, iodepth: 8, seed: 7 }).then((r) => {
    k.log(r.mismatchedBlocks === 0 ? `disk-check on ${dev.name}: OK, ${r.bytes} bytes written and read back`
      : `disk-check on ${dev.name}: ${r.mismatchedBlocks} block(s) read back wrong: ${r.mismatches.join('; ')}`);
  }, (e: unknown) => k.log(`disk-check on ${dev.name}: ${(e as Error).message}`));
}

function mib(d: BlockDevice): string {
  return `${((d.sectors * 512) / 1048576).toFixed(0)} MiB`;
}

/*
 * do_suspend (drivers/xen/manage.c): freeze the workload between two steps (freeze_processes),
 * quiesce the devices (dpm_suspend_start: each PV disk stops issuing and waits for what is on its
 * rings, all side by side; rings, grants and ports stay, the backends stay Connected, no xenstore
 * request is made; the new host's backends will be handshaken with afresh), then write the resume
 * record (domu/resume.ts). The caller makes the hypercall. The console line it leaves times each
 * step and counts the xenstore requests and the disk requests let finish (tools/suspend-phase.ts).
 */
async function suspend(k: Kernel, xs: XenbusClient, askedAt: number, found: ResumeRecord | null, memTouch: MemTouch | null,
  quiesce: () => Promise<number>, balloon: Balloon, neighbours: readonly (readonly [number, Uint8Array])[], vifs: readonly number[]): Promise<ResumeRecord> {
  k.log('suspend: freezing the workload and quiescing devices');
  const frozenAt = performance.now();
  if (memTouch) await memTouch.freeze();
  const t1 = performance.now();
  const xs0 = { ...xs.stats };
  const inFlight = await quiesce();
  const t2 = performance.now();
  const xsUsed = { requests: xs.stats.requests - xs0.requests, rounds: xs.stats.rounds - xs0.rounds, watchEvents: xs.stats.watchEvents - xs0.watchEvents };
  const rec = found ?? plainRecord(k);
  rec.words[R.SUSPENDS]++;
  balloon.save(rec); // its list of ballooned-out gfns, into guest memory
  rec.saveNeighbours(neighbours); // the network stack's neighbour table, as Linux's stays in kernel memory
  rec.saveVifs(vifs); // its vifs, as Linux's xenbus devices stay in kernel memory (probed at once on resume)
  rec.stampFrozen(frozenAt);
  rec.store();
  const t3 = performance.now();
  // The phase's breakdown, for the migrate bench's reader (absolute times on the machine's clock,
  // performance.timeOrigin + now, which the toolstack's blackout uses too).
  k.log(`suspend: resume record at gfn ${rec.gfn}; SCHEDOP_shutdown(SHUTDOWN_suspend); ` +
    `${SUSPEND_TIMES}asked ${(askedAt > 0 ? frozenAt - askedAt : 0).toFixed(2)} freeze ${(t1 - frozenAt).toFixed(2)} ` +
    `quiesce ${(t2 - t1).toFixed(2)} record ${(t3 - t2).toFixed(2)} at ${(performance.timeOrigin + t3).toFixed(2)} ms; ` +
    `xenstore ${xsUsed.requests} requests in ${xsUsed.rounds} round trips, ${xsUsed.watchEvents} watch events; ` +
    `${inFlight} disk request(s) were in flight and were let finish`);
  return rec;
}

/** The suspend line's timing part (tools/suspend-phase.ts reads it). */
export const SUSPEND_TIMES = 'times: ';
