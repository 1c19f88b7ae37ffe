/*
 * What `xl migrate` reports of a move (./migrate.ts MigrateResult): its rounds, its downtime phase
 * by phase, its total in parts, and the sender thread's time on a CPU, for the migrate bench
 * (scenarios/bench/migrate.ts) and the live-migration scenario.
 *
 * Xen: libxc's saver keeps per-round figures for its precopy policy (xg_sr_save.c, struct
 * precopy_stats: iteration, total_written, dirty_count); the rest is ringvisor's, to tell where a
 * move's time goes.
 */
import type { ThreadTime } from './thread-time.ts';

export interface BlackoutPhase { phase: string; ms: number; cpuMs?: number; runqMs?: number }

export interface MigrateResult {
  name: string;
  /** Precopy rounds, the first (every page) included; the stop-and-copy is not one of them. */
  rounds: number;
  pagesPerRound: number[];
  finalPages: number;
  pagesSent: number;
  bytesSent: number;
  /** Each precopy round: its pages read and sent, and the CLEAN after it. */
  roundMs: number[];
  /** After each round: the pages the log returned that the next round holds back, dirtied in the round before too (./precopy-hot.ts). */
  carriedPerRound: number[];
  /** Of each round: the dirty pages not sent because they were written again before their batch (SkipDirty). */
  skippedPerRound: number[];
  /** Of each round: its CLEAN with the guest paused (the pause domctl and the CLEAN; the unpause is asked, not waited for). */
  cleanMs: number[];
  /**
   * Of each round, and then of the stop-and-copy (the last entry): the sender's reads of the pages
   * from the guest into the records, and its waits for the socket to take more (the receiver
   * slower than the sender); the rest of its time is types, mappings, framing and the event loop.
   */
  readMs: number[];
  sinkWaitMs: number[];
  /**
   * The total's other parts: from the sender's start to its first page (the receiver's banner,
   * the config, the suspend channel, log-dirty on, the headers), and from the last round's CLEAN
   * to the receiver's "domain built" (its vCPU threads up: MIGRATE_RECEIVER_BUILT).
   */
  setupMs: number;
  builtWaitMs: number;
  /**
   * The sender thread's CPU time and its waits for a CPU (./thread-time.ts): over the precopy
   * rounds, and over the stop-and-copy (not live: every page); null where Linux's schedstat is not.
   */
  threadRounds: ThreadTime | null;
  threadCopy: ThreadTime | null;
  totalMs: number;
  /** From the suspend request to the target's "unpaused" report. */
  downtimeMs: number;
  /**
   * That downtime, phase by phase, on the sender's clock; with, where schedstat is read
   * (./thread-time.ts), the sender thread's CPU time in the phase and its wait for a CPU, so that
   * the phase's work can be told from the machine's load.
   */
  blackout: BlackoutPhase[];
  /** When the suspend was asked for, on the host's clock (performance.timeOrigin + now), to compare with the guest's. */
  suspendedAt: number;
  /**
   * The stop-and-copy's pages, from the first read to the target's "ready" (all written there);
   * not live: every page of the guest once, the bench's "one copy".
   */
  lastCopyMs: number;
}
