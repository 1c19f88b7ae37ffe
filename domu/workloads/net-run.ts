/*
 * The network workloads a VM config can name, run by the standard DomU kernel on its first NIC:
 *
 *   ping        target=IP [count=N] [size=BYTES]          ICMP echo, each reply checked and timed
 *   udp-stream  role=recv [port=P]                          count and check what arrives, until the end marker
 *               role=send target=IP [port=P] [size=BYTES] [count=N]   (netperf UDP_STREAM)
 *   udp-rr      role=server [port=P] | role=client target=IP [port=P] [size=BYTES] [count=N]   (UDP_RR)
 *   udp-probe   target=IP [port=P] [count=N, 0: forever] [size=BYTES] [retry=MS] [report=N] [gap=MS]   (./udp-probe.ts)
 *
 * Beside any workload, serve=PORT runs a udp-rr server on that port (serveBeside): a daemon next to
 * init's job, as a game or web server runs beside whatever else the machine does (Clark et al.'s
 * Quake 3 and SPECweb servers were migrated while serving). It keeps nothing, so a resumed kernel
 * simply serves again.
 *
 * Each run ends with one `workload-result {JSON}` line, as the disk workloads do (./run.ts).
 */
import { parseIPv4, formatIPv4 } from '../../shared/public/net/inet.ts';
import type { NetStack } from '../net/stack.ts';
import { runPing } from './ping.ts';
import { RESULT_PREFIX } from './run.ts';
import { udpProbe } from './udp-probe.ts';
import { udpRrClient, udpRrServer, udpStreamRecv, udpStreamSend } from './udp-stream.ts';

export const NET_WORKLOADS = ['ping', 'udp-stream', 'udp-rr', 'udp-probe'];

export async function runNetWorkload(stack: NetStack | null, args: ReadonlyMap<string, string>, say: (line: string) => void,
  sleep: (ms: number) => Promise<void>): Promise<void> {
  const name = args.get('workload')!;
  if (stack === null) {
    say(`workload ${name}: this VM has no network interface (add a vif = [ ... ]); idling`);
    return;
  }
  const num = (key: string, dflt: number) => {
    const v = Number(args.get(key) ?? dflt);
    return Number.isSafeInteger(v) && v >= 0 ? v : dflt;
  };
  const target = () => {
    const t = parseIPv4(args.get('target') ?? '');
    if (t === null) throw new Error(`workload ${name}: target=IP is needed (e.g. target=10.0.0.11)`);
    return t;
  };
  const role = args.get('role') ?? (name === 'ping' ? 'send' : '');
  const port = num('port', 5001);
  const before = { ...stack.dev.stats() };
  let result: object;
  if (name === 'ping') {
    const t = target();
    const count = num('count', 4);
    say(`PING ${formatIPv4(t)} from ${formatIPv4(stack.ip)} ${stack.dev.name}: ${num('size', 56)} data bytes`);
    const r = await runPing(stack, { target: t, count, size: num('size', 56) }, say);
    say(`--- ${r.target} ping statistics ---`);
    say(`${r.sent} packets transmitted, ${r.received} received, ${r.badReplies} bad, ${(((r.sent - r.received) / r.sent) * 100).toFixed(0)}% packet loss`);
    say(`rtt min/avg/max/median = ${r.rttMs.min.toFixed(3)}/${r.rttMs.avg.toFixed(3)}/${r.rttMs.max.toFixed(3)}/${r.rttMs.median.toFixed(3)} ms`);
    result = r;
  } else if (name === 'udp-stream' && role === 'recv') {
    say(`udp-stream: receiving on ${formatIPv4(stack.ip)}:${port}`);
    result = await udpStreamRecv(stack, port).done;
  } else if (name === 'udp-stream' && role === 'send') {
    result = await udpStreamSend(stack, target(), port, port + 1, num('size', 1472), num('count', 10000), sleep);
  } else if (name === 'udp-rr' && role === 'server') {
    say(`udp-rr: serving on ${formatIPv4(stack.ip)}:${port}`);
    result = { requests: await udpRrServer(stack, port).done };
  } else if (name === 'udp-rr' && role === 'client') {
    result = await udpRrClient(stack, target(), port, port + 1, num('size', 64), num('count', 1000));
  } else if (name === 'udp-probe') {
    const t = target();
    say(`udp-probe: asking ${formatIPv4(t)}:${port}, re-asking after ${num('retry', 20)} ms`);
    const gap = args.has('gap') ? num('gap', 0) : undefined;
    result = await udpProbe(stack, t, port, port + 2, { size: num('size', 64), count: num('count', 0), retryMs: Math.max(1, num('retry', 20)), report: num('report', 200), gapMs: gap }, sleep, say);
  } else {
    throw new Error(`workload ${name}: role=${role || '(none)'} (expected ${name === 'udp-rr' ? 'server or client' : 'recv or send'})`);
  }
  const after = stack.dev.stats();
  const device = Object.fromEntries(Object.entries(after).map(([k, v]) => [k, v - (before[k] ?? 0)]));
  if ('MBps' in result) say(`${name} ${role}: ${JSON.stringify(result)}`);
  say(`${RESULT_PREFIX}${JSON.stringify({ workload: name, role, nic: stack.dev.name, ...result, device })}`);
}

/** serve=PORT beside the workload (see the header): a udp-rr server on the first NIC, if there is one. */
export function serveBeside(stack: NetStack | null, args: ReadonlyMap<string, string>, say: (line: string) => void): void {
  const v = args.get('serve');
  if (v === undefined) return;
  const port = Number(v);
  if (!Number.isSafeInteger(port) || port < 1 || port > 65535) { say(`serve=${v}: expected a UDP port (1-65535); not serving`); return; }
  if (stack === null) { say(`serve=${port}: this VM has no network interface (add a vif = [ ... ]); not serving`); return; }
  say(`udp-rr: serving on ${formatIPv4(stack.ip)}:${port}, beside the workload`);
  void udpRrServer(stack, port).done;
}
