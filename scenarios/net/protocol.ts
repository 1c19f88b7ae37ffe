/*
 * What the network harness, its DomU kernel and its Dom0 module say to each other (on a
 * BroadcastChannel: set-up, task lists and results only; no frame ever travels here).
 */
import type { NetfrontOptions } from '../../domu/netfront/netfront.ts';
import type { PingResult } from '../../domu/workloads/ping.ts';
import type { StreamResult } from '../../domu/workloads/udp-stream.ts';

export type NetTask =
  | { kind: 'ping'; target: string; count: number; size?: number }
  | { kind: 'stream-recv'; port: number }
  | { kind: 'stream-send'; target: string; port: number; size: number; count: number }
  | { kind: 'rr-server'; port: number }
  | { kind: 'rr-client'; target: string; port: number; size: number; count: number }
  /** Wait here until the harness says go (so a sender starts after its receiver listens). */
  | { kind: 'barrier'; name: string }
  /** Hostile kernels only: raw tx-ring requests (see test/kernels/net-hostile.ts). */
  | { kind: 'hostile'; case: string };

export type NetTaskResult =
  | { kind: 'ping'; result: PingResult }
  | { kind: 'stream'; result: StreamResult }
  | { kind: 'rr-server'; requests: number }
  | { kind: 'barrier' }
  | { kind: 'hostile'; result: Record<string, unknown> };

export interface NetGuestModule {
  channel: string;
  nonce: string;
  front?: NetfrontOptions;
  tasks: NetTask[];
  /** An emulated e1000 at slot 0 instead of a vif (./e1000-guest.ts). */
  e1000?: { ip?: string; txKick?: 'burst' | 'each' };
}

export type NetMessage =
  | { kind: 'connected'; nonce: string; mac: string; ip: string; negotiated: Record<string, number | boolean>; mtu: number }
  | { kind: 'note'; nonce: string; name: string }
  | { kind: 'go'; nonce: string; name: string }
  | { kind: 'task-done'; nonce: string; index: number; result: NetTaskResult; stats: Record<string, number> }
  | { kind: 'task-failed'; nonce: string; index: number; error: string }
  | { kind: 'closed'; nonce: string; stats: Record<string, number>; stack: Record<string, number> }
  | { kind: 'vif-stats'; id: number }
  | { kind: 'vif-stats-reply'; id: number; stats: Record<string, Record<string, number>>; pool: number;
      bridges: Record<string, { ports: string[]; fdb: { mac: string; port: string }[]; stats: Record<string, number> }> }
  | { kind: 'uplink-peer'; id: number; bridge: string; peer: string }
  | { kind: 'uplink-port'; id: number; bridge: string }
  | { kind: 'uplink-reply'; id: number; port?: number; error?: string }
  | { kind: 'capture'; id: number; port: string; file: string | null }
  | { kind: 'capture-reply'; id: number; frames?: number; error?: string }
  | { kind: 'wait-connected'; id: number; path: string }
  | { kind: 'wait-connected-reply'; id: number }
  | { kind: 'watch-log'; id: number; path: string }
  | { kind: 'watch-log-reply'; id: number; entries: string[] }
  | { kind: 'hostile-report'; nonce: string; report: Record<string, unknown> }
  | { kind: 'booted'; nonce: string }
  | { kind: 'bridge-send'; id: number; bridge: string; frames: number; size: number }
  | { kind: 'bridge-send-reply'; id: number; ms: number; frames: number }
  /* A netback module parameter (dom0/backends/netback/tx.ts netbackParams), for vifs connected after it. */
  | { kind: 'netback-param'; id: number; txMap: boolean }
  | { kind: 'netback-param-reply'; id: number }
  /* The floor with the guests' stacks and workloads in Dom0 (./bridge-floor.ts). */
  | { kind: 'floor-run'; id: number; bridge: string; workload: 'udp-stream' | 'udp-rr'; size: number; count: number }
  | { kind: 'floor-reply'; id: number; error?: string; ms: number; pps: number; MBps: number; received: number; lost: number; packets: number }
  /* An emulated e1000 for an HVM test guest (./e1000-dom0.ts). */
  | { kind: 'e1000-start'; id: number; domid: number; vcpus: number; mac: string; bridge?: string; buffered: boolean }
  | { kind: 'e1000-stop' | 'e1000-stats'; id: number; domid: number }
  | { kind: 'e1000-inject'; id: number; bridge: string; frames: number }
  | { kind: 'e1000-reply'; id: number; error?: string; stats?: Record<string, number> };
