/*
 * The DomU kernel of the network harness: boots, lets xenbus find its vif, brings up the network
 * stack with the vif's MAC and `ip`, runs its task list (ping, UDP stream and request/response
 * ends, barriers), reports each result, closes the vif and powers off.
 */
import { BroadcastChannel } from 'node:worker_threads';
import { Netfront } from '../../domu/netfront/netfront.ts';
import { NetStack } from '../../domu/net/stack.ts';
import { runPing } from '../../domu/workloads/ping.ts';
import { udpRrClient, udpRrServer, udpStreamRecv, udpStreamSend } from '../../domu/workloads/udp-stream.ts';
import { Kernel } from '../../shared/kernel/kernel.ts';
import { registerFrontend } from '../../shared/kernel/xenbus/frontend.ts';
import { xenbusInit } from '../../shared/kernel/xenbus/xs-ring.ts';
import type { KernelEnv } from '../../shared/public/hypercall.ts';
import { XS_NET, formatMac } from '../../shared/public/io/netif.ts';
import { formatIPv4, parseIPv4 } from '../../shared/public/net/inet.ts';
import type { NetGuestModule, NetMessage, NetTaskResult } from './protocol.ts';
import { e1000ForHarness, type HarnessNic } from './e1000-guest.ts';

export async function main(env: KernelEnv): Promise<void> {
  const k = new Kernel(env);
  void k.events.run();
  const m = env.module as NetGuestModule;
  const ch = new BroadcastChannel(m.channel);
  const post = (msg: NetMessage) => ch.postMessage(msg);
  const goes = new Map<string, () => void>();
  const early = new Set<string>();
  ch.onmessage = (ev) => {
    const msg = (ev as { data: NetMessage }).data;
    if (msg.kind !== 'go' || msg.nonce !== m.nonce) return;
    const g = goes.get(msg.name);
    if (g) g(); else early.add(msg.name);
  };
  const xs = xenbusInit(k);
  post({ kind: 'booted', nonce: m.nonce });
  const { nic, ip } = m.e1000 !== undefined ? e1000ForHarness(k, m.e1000) : await new Promise<{ nic: HarnessNic; ip: number }>((resolve) => {
    let front: Netfront;
    void registerFrontend(xs, 'vif', () => (front = new Netfront(k, m.front)), {
      onProbe: (fe) => {
        front.shutdownHook = () => fe.shutdown();
        void front.connected.then(async () => {
          const ipKey = await xs.tryRead(`${fe.dev.otherend}/${XS_NET.ip}`);
          resolve({ nic: front, ip: parseIPv4(ipKey ?? '') ?? 0 });
        });
      },
    });
  });
  const stack = new NetStack(nic, ip);
  stack.sleep = (ms) => k.timers.sleep(ms);
  post({ kind: 'connected', nonce: m.nonce, mac: formatMac(nic.mac), ip: formatIPv4(ip), negotiated: { ...nic.negotiated }, mtu: nic.mtu });
  for (let i = 0; i < m.tasks.length; i++) {
    const t = m.tasks[i];
    try {
      let result: NetTaskResult;
      switch (t.kind) {
        case 'ping':
          result = { kind: 'ping', result: await runPing(stack, { target: addr(t.target), count: t.count, size: t.size }) };
          break;
        case 'stream-recv': {
          const r = udpStreamRecv(stack, t.port);
          post({ kind: 'note', nonce: m.nonce, name: `listen:${t.port}` });
          result = { kind: 'stream', result: await r.done };
          break;
        }
        case 'stream-send':
          result = { kind: 'stream', result: await udpStreamSend(stack, addr(t.target), t.port, t.port + 1, t.size, t.count, (ms) => k.timers.sleep(ms)) };
          break;
        case 'rr-server': {
          const r = udpRrServer(stack, t.port);
          post({ kind: 'note', nonce: m.nonce, name: `listen:${t.port}` });
          result = { kind: 'rr-server', requests: await r.done };
          break;
        }
        case 'rr-client':
          result = { kind: 'stream', result: await udpRrClient(stack, addr(t.target), t.port, t.port + 1, t.size, t.count) };
          break;
        case 'barrier':
          post({ kind: 'note', nonce: m.nonce, name: `barrier:${t.name}` });
          if (!early.delete(t.name)) await new Promise<void>((r) => goes.set(t.name, r));
          goes.delete(t.name);
          result = { kind: 'barrier' };
          break;
        default:
          throw new Error(`task ${t.kind} is not for this kernel`);
      }
      post({ kind: 'task-done', nonce: m.nonce, index: i, result, stats: nic.stats() });
    } catch (e) {
      post({ kind: 'task-failed', nonce: m.nonce, index: i, error: e instanceof Error ? `${e.message}\n${e.stack}` : String(e) });
    }
  }
  const stats = nic.stats();
  await nic.closeDevice();
  post({ kind: 'closed', nonce: m.nonce, stats, stack: { ...stack.stats, ...stack.arp.stats } });
  ch.close();
}

function addr(s: string): number {
  const ip = parseIPv4(s);
  if (ip === null) throw new Error(`not an IPv4 address: ${s}`);
  return ip;
}
