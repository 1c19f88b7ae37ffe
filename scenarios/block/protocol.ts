/*
 * What the block harness, its DomU kernel and its Dom0 module say to each other (on a
 * BroadcastChannel: set-up, task lists and results only; no request ever travels here).
 */
import type { BlkfrontOptions } from '../../domu/blkfront/blkfront.ts';
import type { FioJob, FioResult } from '../../domu/workloads/fio.ts';
import type { VerifyJob, VerifyResult } from '../../domu/workloads/verify.ts';
import type { BlockFeatures } from '../../domu/block/blkdev.ts';
import type { WaitPolicy } from '../../shared/wait.ts';

/** A kernel's waiting policy as it understood its command line, and what its idle loop did under it. */
export interface WaitReport { wait: WaitPolicy; idle: { polls: number; pollHits: number; armHits: number; sleeps: number; peerStops?: number } }

/** One explicit request, for tests that want to see each status. */
export interface BlockOpStep { op: 'read' | 'write' | 'flush' | 'discard'; sector: number; count: number; seed?: number }
export interface BlockOpOutcome { ok: boolean; error?: string; sum?: number }

export type BlockTask =
  | { kind: 'fio'; job: FioJob }
  | { kind: 'verify'; job: VerifyJob }
  | { kind: 'ops'; steps: BlockOpStep[] };
export type BlockTaskResult =
  | { kind: 'fio'; result: FioResult }
  | { kind: 'verify'; result: VerifyResult }
  | { kind: 'ops'; result: BlockOpOutcome[] };

/** Which way the guest reaches its disk. */
export type DiskPath = 'pv' | 'emu-dma' | 'emu-pio';

export interface BlockGuestModule {
  channel: string;
  nonce: string;
  /** pv: blkfront through xenbus; emu-*: the IDE controller, driven register by register. */
  path?: DiskPath;
  front?: BlkfrontOptions;
  tasks: BlockTask[];
}

export interface DeviceReport {
  name: string;
  sectors: number;
  readOnly: boolean;
  features: BlockFeatures;
  negotiated: Record<string, number | boolean>;
}

export type BlockMessage =
  | { kind: 'connected'; nonce: string; device: DeviceReport }
  | { kind: 'mark'; nonce: string; index: number; phase: 'warmup' | 'timed' }
  | { kind: 'go'; nonce: string; index: number }
  | { kind: 'task-done'; nonce: string; index: number; result: BlockTaskResult; stats: Record<string, number> }
  | { kind: 'task-failed'; nonce: string; index: number; error: string }
  | { kind: 'closed'; nonce: string; states: number[]; kernel?: WaitReport }
  | { kind: 'ide-start'; id: number; domid: number; image: string; readOnly: boolean }
  | { kind: 'ide-stop'; id: number; domid: number }
  | { kind: 'ide-done'; id: number; error?: string; stats?: Record<string, number> }
  | { kind: 'vbd-stats'; id: number }
  | { kind: 'vbd-stats-reply'; id: number; stats: Record<string, Record<string, number>> }
  | { kind: 'native'; id: number; image: string; job: FioJob }
  | { kind: 'native-done'; id: number; result: NativeResult | null; error?: string }
  | { kind: 'dom0-wait'; id: number }
  | { kind: 'dom0-wait-reply'; id: number; kernel: WaitReport };

/** A native job's result, with the depth it really kept (see dom0-module.ts). */
export interface NativeResult extends FioResult { inFlight: number; threads: number }
