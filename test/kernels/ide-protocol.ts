// Messages between the emulated-disk test harness (test/helpers/ide-rig.ts) and its two kernels
// (ide-dom0.ts runs the device model, ide-guest.ts the driver). Set-up and results only: every
// request the tests make travels by port I/O, ioreqs and DMA, never through this channel.
import type { IdeModelStats } from '../../dom0/device-models/ide/piix.ts';
import type { IdeMode } from '../../domu/ide/disk.ts';
import type { PortFuzzCase } from './ide-fuzz.ts';
import type { WorkloadResult, WorkloadSpec } from './ide-workload.ts';

export interface IdeDom0Module { channel: string }
export interface IdeGuestModule { channel: string; nonce: string }

export interface ModelSpec {
  domid: number;
  image: string;
  vcpus: number;
  readOnly?: boolean;
  discard?: boolean;
  mapcacheBuckets?: number;
  /** Also claim this MMIO range with an echo device (for the MMIO ioreq test). */
  mmioEcho?: { base: number; bytes: number };
}

/** What a guest is asked to do; results are plain data. */
export type GuestTask =
  | { do: 'probe'; mode: IdeMode; pio32?: boolean; lba48?: 'auto' | 'always' }
  | { do: 'workload'; spec: WorkloadSpec }
  | { do: 'io'; op: 'read' | 'write'; sector: number; sectors: number; scatter?: boolean; seed?: number }
  | { do: 'flush' }
  | { do: 'discard'; sector: number; sectors: number }
  | { do: 'regs'; script: string }
  | { do: 'mmio'; base: number }
  | { do: 'privileged-calls' }
  | { do: 'port'; port: number }
  | { do: 'stats' }
  | { do: 'port-fuzz'; case: PortFuzzCase }
  | { do: 'close' };

export type IdeMessage =
  | { kind: 'dom0-ready' }
  | { kind: 'start-model'; spec: ModelSpec }
  | { kind: 'model-started'; domid: number; sectors: number }
  | { kind: 'model-failed'; domid: number; error: string }
  | { kind: 'stop-model'; domid: number }
  | { kind: 'model-stopped'; domid: number; stats: IdeModelStats }
  | { kind: 'model-stats'; domid: number }
  | { kind: 'model-stats-reply'; domid: number; stats: IdeModelStats }
  | { kind: 'guest-ready'; nonce: string }
  | { kind: 'task'; nonce: string; id: number; task: GuestTask }
  | { kind: 'task-done'; nonce: string; id: number; result: unknown }
  | { kind: 'task-failed'; nonce: string; id: number; error: string };

export type { WorkloadResult, WorkloadSpec };
