/*
 * `ringvisor`: the xl-like command line, and the command that runs a host.
 *
 * Xen: xl(1) and its command table (tools/xl/xl_cmdtable.c); the xenstore-* tools
 * (tools/xenstore/xenstore_client.c). Verbs are named and behave as xl's do; where ringvisor
 * differs, the verb's help says so. Exit codes: 0 done, 1 failed (including a config error, which
 * names file:line and starts nothing), 2 usage.
 *
 * Why this folder may import dom0/ and hypervisor/ (the trust boundaries bind the kernels, not
 * the tools): `ringvisor host` IS the machine, so it builds the hypervisor and boots Dom0; the
 * other verbs are what an administrator runs beside it, speaking Dom0's wire formats
 * (dom0/toolstack/protocol.ts to the toolstack daemon, xs_wire through dom0/lib/libxenstore.ts to xenstored)
 * and using the toolstack's config library (dom0/toolstack/) for new-vm, which needs no host.
 *
 * Argument parsing is commander (pinned in package.json): fourteen verbs, each with its own
 * options, help and usage errors, is what it does well.
 */
import { Command, CommanderError, InvalidArgumentError, Option } from 'commander';
import { resolve } from 'node:path';
import { ConfigError } from '../dom0/toolstack/config/config-error.ts';
import type { XenbusClient } from '../shared/kernel/xenbus/client.ts';
import type { BlockListRow, CreateResult, HostInfo, ListedDomain, TopSample } from '../dom0/toolstack/protocol.ts';
import { CliError, XlClient } from './client.ts';
import { attachConsole, type ConsoleIo } from './console.ts';
import { formatBlockList, formatInfo, formatList } from './format.ts';
import { defaultRunDir, hostMemoryProblem } from './defaults.ts';
import { addXenstoreVerbs } from './xenstore.ts';
import type { WaitPolicy } from '../shared/wait.ts';
import { runTop } from './top.ts';
import { addTraceVerb } from './trace.ts';
import { parseLoopbackAddress, serveWebView } from './webview/server.ts';
import { registerMemVerbs } from './mem.ts';
import { registerSchedVerbs } from './sched.ts';
import { registerNetworkVerbs } from './network.ts';
import { registerPciVerbs } from './pci.ts';
import { registerSaveRestoreVerbs } from './save-restore.ts';
import { poolListText, registerPoolVerbs } from './pool/verbs.ts';
import type { BridgeConfig } from '../dom0/backends/netback/module.ts';

interface Io extends ConsoleIo { stdin: NodeJS.ReadStream; stdout: NodeJS.WriteStream; stderr: NodeJS.WriteStream }

const EXIT_OK = 0;
const EXIT_FAILED = 1;
const EXIT_USAGE = 2;

export async function run(argv: readonly string[], io: Io): Promise<number> {
  let code = EXIT_OK;
  const out = (s: string) => io.stdout.write(s);
  const err = (s: string) => io.stderr.write(s);
  const program = new Command('ringvisor')
    .description('ringvisor: Xen\'s split-driver architecture in TypeScript. Run a host, then manage its VMs as with xl.')
    .option('--run-dir <dir>', `the host's run directory (its sockets; default $RINGVISOR_RUN_DIR, else one per user: ${defaultRunDir()})`)
    .exitOverride()
    .configureOutput({ writeOut: out, writeErr: err })
    .showHelpAfterError('(add --help for usage)');
  let verb = '';
  program.hook('preAction', (_program, action) => { verb = action.name(); });
  program.addHelpText('after', `
A session:
  $ ringvisor host &                                  # hypervisor + Dom0 (xenstored, xenconsoled, blkback, xl daemon)
  $ ringvisor new-vm --from examples/templates/small-guest vms/web1
  $ ringvisor create vms/web1                         # boots it; images are created on first start
  $ ringvisor list
  $ ringvisor console web1                            # Ctrl-] detaches
  $ ringvisor shutdown -w web1`);

  const runDir = (cmd: Command) => resolve((cmd.optsWithGlobals() as { runDir?: string }).runDir ?? defaultRunDir());
  const client = (cmd: Command) => XlClient.open(runDir(cmd));
  const withClient = async <T>(cmd: Command, f: (c: XlClient) => Promise<T>): Promise<T> => {
    const c = await client(cmd);
    try {
      return await f(c);
    } finally {
      c.close();
    }
  };
  const domainVerb = (name: string, summary: string) => program.command(name).description(summary).argument('<domain>', 'domain name or id');

  program.command('host').description('run a host in the foreground: the hypervisor, Dom0 and its services; Ctrl-C stops it')
    .addOption(new Option('--memory <MiB>', 'guest RAM the hypervisor manages').default(256).argParser(positiveInt))
    .addOption(new Option('--wait <policy>', 'how every driver waits for the other side: sleep on the event, or spin up to 200 µs first (shared/wait.ts)')
      .choices(['irq', 'poll']).default('irq'))
    .addOption(new Option('--pcpus <N>', 'pCPU slots: at most N vCPUs run at once, as the credit scheduler decides (default: this machine\'s cores; 0: no scheduler, the host OS decides)').argParser(nonNegativeInt))
    .option('--bridge <name>', 'the bridge in Dom0 that vifs join (default xenbr0)', 'xenbr0')
    .option('--uplink <port>', 'give the bridge an uplink: a UDP socket on 127.0.0.1:PORT (0: any free port)')
    .option('--uplink-peer <addr...>', 'another host\'s uplink, 127.0.0.1:PORT: their bridges become one segment')
    .option('--http <address:port>', 'serve the live web view on a loopback address, e.g. 127.0.0.1:8080 (read-only)', loopbackArg)
    .action(async (opts: { memory: number; wait: WaitPolicy; http?: string; pcpus?: number; bridge: string; uplink?: string; uplinkPeer?: string[] }, cmd: Command) => {
      const bridge: BridgeConfig = { name: opts.bridge };
      if (opts.uplink !== undefined || opts.uplinkPeer !== undefined) bridge.uplink = { port: Number(opts.uplink ?? 0), peers: opts.uplinkPeer ?? [] };
      const problem = hostMemoryProblem(opts.memory);
      if (problem !== null) throw new CliError('failed', `ringvisor host: ${problem}`);
      code = await runHost(runDir(cmd), opts.memory, opts.wait, io, opts.http, opts.pcpus, [bridge]);
    });

  program.command('create').description('boot a VM from its directory or its config file (xl create)')
    .argument('<cfg>', 'a VM directory (holding vm.cfg) or an xl.cfg file')
    .option('-p, --paused', 'leave it paused after building it (xl create -p)')
    .option('-c, --console', 'attach to its console once it runs (xl create -c)')
    .action(async (cfg: string, opts: { paused?: boolean; console?: boolean }, cmd: Command) => {
      const abs = resolve(cfg);
      await withClient(cmd, async (c) => {
        err(`Parsing config from ${cfg}\n`);
        let r: CreateResult;
        try {
          r = await c.call<CreateResult>({ verb: 'create', path: abs, paused: opts.paused });
        } catch (e) {
          if (e instanceof CliError && e.kind === 'config') throw new CliError('config', `${e.message.replaceAll(abs, cfg)}\nnothing was started`);
          throw e;
        }
        for (const w of r.warnings) err(`${w.replaceAll(abs, cfg)}\n`);
        for (const img of r.imagesCreated) err(`created disk image ${img} (sparse)\n`);
        out(`Started domain ${r.name} (id=${r.domid})${opts.paused ? ', paused' : ''}; console log: ${r.consoleLog}\n`);
        if (opts.console) code = await attachConsole(c, String(r.domid), io);
      });
    });

  program.command('list').description('list domains: Name, ID, Mem (MiB), VCPUs, State (r b p s c d), Time(s) (xl list)')
    .argument('[domain...]', 'only these (names or ids)')
    .option('--pool <poolfile>', 'every guest of the pool instead, with its host (pool-list)')
    .action(async (domains: string[], o: { pool?: string }, cmd: Command) => {
      if (o.pool !== undefined) { out(await poolListText(o.pool)); return; }
      const all = await withClient(cmd, (c) => c.call<ListedDomain[]>({ verb: 'list' }));
      const wanted = domains.length === 0 ? all : all.filter((d) => domains.includes(d.name) || domains.includes(String(d.domid)));
      const missing = domains.filter((x) => !all.some((d) => d.name === x || String(d.domid) === x));
      if (missing.length > 0) throw new CliError('domain', `${missing[0]} is an invalid domain identifier`);
      out(formatList(wanted));
    });

  domainVerb('destroy', 'stop a domain at once and free everything it held (xl destroy)')
    .action(async (domain: string, _o: unknown, cmd: Command) => {
      await withClient(cmd, (c) => c.call({ verb: 'destroy', domain }));
    });

  for (const kind of ['shutdown', 'reboot'] as const) {
    domainVerb(kind, kind === 'shutdown'
      ? 'ask a guest to power off: it reads control/shutdown and stops itself (xl shutdown)'
      : 'ask a guest to reboot: it stops itself and the toolstack builds it again (xl reboot)')
      .option('-w, --wait', `wait until the domain has ${kind === 'shutdown' ? 'shut down' : 'gone down for its restart'}`)
      .option('-F, --force', 'a guest that does not answer control/shutdown is shut down from outside (Xen: an ACPI power event)')
      .action(async (domain: string, opts: { wait?: boolean; force?: boolean }, cmd: Command) => {
        await withClient(cmd, async (c) => {
          // Which domain, before asking: by the time the wait begins it may be gone (destroyed, or restarted under a new id).
          const target = opts.wait
            ? (await c.call<ListedDomain[]>({ verb: 'list' })).find((d) => d.name === domain || String(d.domid) === domain)
            : undefined;
          const how = await c.call<string>({ verb: 'shutdown', domain, kind: kind === 'shutdown' ? 'poweroff' : 'reboot', force: opts.force });
          if (how === 'forced') err(`${domain}: no PV control in the guest; shut down from outside (-F)\n`);
          if (opts.wait && target) {
            err(`Waiting for domain ${domain} to ${kind === 'shutdown' ? 'shut down' : 'reboot'}...\n`);
            // A paused guest cannot read control/shutdown: say so rather than wait in silence.
            if (target.paused && how !== 'forced') {
              err(`Domain ${domain} is paused: it cannot answer the request until it is unpaused (ringvisor unpause ${domain}); ` +
                'still waiting (Ctrl-C stops waiting; the request stays)\n');
            }
            await c.call({ verb: 'wait', domain: String(target.domid) }).catch((e: unknown) => {
              if (!(e instanceof CliError && e.kind === 'domain')) throw e; // that domain id is gone: it is down
            });
            err(`Domain ${domain} is ${kind === 'shutdown' ? 'down' : 'rebooting'}\n`);
          }
        });
      });
  }

  for (const verb of ['pause', 'unpause'] as const) {
    domainVerb(verb, verb === 'pause' ? 'stop a domain\'s vCPUs where they are (xl pause)' : 'let a paused domain run again (xl unpause)')
      .action(async (domain: string, _o: unknown, cmd: Command) => {
        await withClient(cmd, (c) => c.call({ verb, domain }));
      });
  }

  domainVerb('console', 'attach to a guest\'s console: its output, your keystrokes; Ctrl-] detaches (xl console)')
    .action(async (domain: string, _o: unknown, cmd: Command) => {
      code = await withClient(cmd, (c) => attachConsole(c, domain, io));
    });

  program.command('info').description('the host: CPUs, memory, domains, sockets (xl info)')
    .action(async (_o: unknown, cmd: Command) => {
      out(formatInfo(await withClient(cmd, (c) => c.call<HostInfo>({ verb: 'info' }))));
    });

  program.command('top').description('every domain\'s CPU, memory and I/O, refreshed, with the mechanism counters per second (xentop)')
    .option('-b, --batch', 'print samples one after another, for scripts (xentop -b)')
    .option('-i, --iterations <n>', 'stop after N samples (default: until q)', positiveInt, 0)
    .option('-d, --delay <seconds>', 'seconds between samples', positiveNumber, 3)
    .option('-x, --vbds', 'one line per virtual block device')
    .option('-n, --networks', 'one line per network device')
    .option('-c, --counters', 'under each domain: every hypervisor counter per second, every other figure, every device\'s counters')
    .action(async (o: { batch?: boolean; iterations: number; delay: number; vbds?: boolean; networks?: boolean; counters?: boolean }, cmd: Command) => {
      const opts = { batch: o.batch === true, iterations: o.iterations, delaySeconds: o.delay, vbds: o.vbds === true, nets: o.networks === true, counters: o.counters === true };
      await withClient(cmd, (c) => runTop(c, opts, io));
    });

  domainVerb('block-list', 'a domain\'s virtual block devices: Vdev BE handle state evt-ch ring-ref BE-path (xl block-list)')
    .action(async (domain: string, _o: unknown, cmd: Command) => {
      out(formatBlockList(await withClient(cmd, (c) => c.call<BlockListRow[]>({ verb: 'block-list', domain }))));
    });

  domainVerb('block-backend-kill', 'kill the backend serving one of a domain\'s disks mid-I/O and start a new one; the frontend re-issues what was not answered (blkif_recover)')
    .argument('<vdev>', 'the disk: xvda, hda, or its device number')
    .option('--no-restart', 'leave the disk without a backend (its I/O waits)')
    .option('--after <n>', 'die when one of its rings has taken N more requests, not now', nonNegativeInt)
    .action(async (domain: string, vdev: string, o: { restart: boolean; after?: number }, cmd: Command) => {
      const r = await withClient(cmd, (c) => c.call<{ backend: string; killed: boolean; restarted: boolean }>({ verb: 'block-backend-kill', domain, vdev, restart: o.restart, afterRequests: o.after }));
      out(!r.killed ? `${r.backend}: armed; blkback dies after ${o.after} more request(s) on a ring${o.restart ? ', then a new one starts' : ''}`
        : `${r.backend}: blkback killed${r.restarted ? '; a new blkback is bound and waits in InitWait for the frontend' : ''}`);
    });

  domainVerb('block-backend-start', 'start a new backend for a disk whose backend was killed with --no-restart')
    .argument('<vdev>', 'the disk: xvda, hda, or its device number')
    .action(async (domain: string, vdev: string, _o: unknown, cmd: Command) => {
      const r = await withClient(cmd, (c) => c.call<{ backend: string; restarted: boolean }>({ verb: 'block-backend-start', domain, vdev }));
      out(`${r.backend}: ${r.restarted ? 'a new blkback is bound and waits in InitWait for the frontend' : 'the new blkback failed to start'}`);
    });

  addTraceVerb(program, withClient, (s) => io.stdout.write(`${s}\n`));
  registerNetworkVerbs({ domainVerb, program, withClient, out });
  registerSaveRestoreVerbs({ domainVerb, program, withClient, out });
  registerPoolVerbs({ program, runDir, out });

  addXenstoreVerbs(program, { stdout: io.stdout, stderr: io.stderr, runDir, setCode: (c) => { code = c; } });

  registerSchedVerbs(program, { withClient, out });
  registerMemVerbs(program, { withClient, out });
  registerPciVerbs(program, { withClient, out });

  program.command('new-vm').description('provision a new VM directory from a template: fresh name, UUID and MACs (needs no host)')
    .requiredOption('--from <template>', 'the template (or any VM) directory to copy')
    .option('--name <name>', 'the new VM\'s name (default: the directory\'s name, made unique)')
    .argument('<dest>', 'the new VM directory (must not exist)')
    .action(async (dest: string, opts: { from: string; name?: string }) => {
      const { newVmFromTemplate } = await import('../dom0/toolstack/config/vmdir.ts');
      const vm = newVmFromTemplate(opts.from, dest, opts.name === undefined ? {} : { name: opts.name });
      const macs = vm.config.vifs.map((v) => v.mac).filter((m) => m !== null);
      out(`Created VM ${vm.config.name} in ${dest}: uuid ${vm.config.uuid}${macs.length ? `, mac ${macs.join(', ')}` : ''}\n`);
      out(`Boot it with: ringvisor create ${dest}\n`);
    });

  if (argv.length === 0) {
    program.outputHelp({ error: true });
    return EXIT_USAGE;
  }
  try {
    await program.parseAsync(argv, { from: 'user' });
    return code;
  } catch (e) {
    if (e instanceof CommanderError) {
      if (e.code === 'commander.helpDisplayed' || e.code === 'commander.version' || e.code === 'commander.help') return EXIT_OK;
      if (e.code === 'ringvisor.usage') err(`${e.message}\n`);
      return EXIT_USAGE;
    }
    if (e instanceof CliError || e instanceof ConfigError) {
      err(`${e.message}\n`);
      return EXIT_FAILED;
    }
    const m = e instanceof Error ? e.message : String(e);
    err(`ringvisor ${verb}: ${m}\n`);
    return EXIT_FAILED;
  }
}

/* `ringvisor host`: until SIGINT or SIGTERM, then destroy the VMs and stop. */
async function runHost(runDir: string, memoryMiB: number, wait: WaitPolicy, io: Io, http?: string, pcpus?: number, bridges?: BridgeConfig[]): Promise<number> {
  const { startHost } = await import('./host.ts'); // only `host` loads the machine
  const h = await startHost({ runDir, memoryMiB, wait, pcpus, bridges, log: (l) => io.stdout.write(`${l}\n`) });
  const web = http === undefined ? null : await startWebView(http, h.runDir);
  const slots = h.host.sched.pcpus;
  io.stdout.write(`ringvisor host up: ${memoryMiB} MiB, ${slots === 0 ? 'no scheduler (the host OS decides)' : `${slots} pCPU slot(s), credit scheduler`}, waiting policy ${wait}, run directory ${h.runDir}\n` +
    `  xl socket        ${h.xlSocket}\n  xenstored socket ${h.xenstoredSocket}\n` +
    (web ? `  web view         ${web.url}\n` : '') +
    `Try: ringvisor${runDir === defaultRunDir() ? '' : ` --run-dir ${runDir}`} list   (Ctrl-C stops the host)\n`);
  await new Promise<void>((resolveStop) => {
    const stop = (sig: string) => {
      io.stdout.write(`${sig}: stopping the host (destroying its VMs)\n`);
      process.once(sig, () => process.exit(130)); // a second one: now
      resolveStop();
    };
    process.once('SIGINT', () => stop('SIGINT'));
    process.once('SIGTERM', () => stop('SIGTERM'));
  });
  await web?.close();
  await h.close();
  io.stdout.write('host stopped\n');
  return EXIT_OK;
}

function loopbackArg(v: string): string {
  const a = parseLoopbackAddress(v);
  if (a instanceof Error) throw new InvalidArgumentError(a.message);
  return v;
}

/* The web view reads the host through the same toolstack socket the command line uses. */
async function startWebView(spec: string, runDir: string): Promise<{ url: string; close(): Promise<void> }> {
  const c = await XlClient.open(runDir);
  const view = await serveWebView(spec, {
    sample: () => c.call<TopSample>({ verb: 'top' }),
    consoleHistory: (domid) => c.call<Uint8Array>({ verb: 'console-history', domain: String(domid), max: 16384 }),
  });
  return { url: view.url, close: async () => { await view.close(); c.close(); } };
}

function positiveNumber(v: string): number {
  const n = Number(v);
  if (!Number.isFinite(n) || n <= 0) throw new InvalidArgumentError('expected a positive number');
  return n;
}

function nonNegativeInt(v: string): number {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 0 || n > 31) throw new InvalidArgumentError('expected a whole number 0..31');
  return n;
}

function positiveInt(v: string): number {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1) throw new InvalidArgumentError('expected a positive whole number');
  return n;
}
