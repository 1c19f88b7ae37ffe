/*
 * The shape every fuzz property shares, so that the suite (test/fuzz.test.ts, a bounded number
 * of cases) and `npm run fuzz` (test/fuzz/main.ts, as long as asked) run the very same ones.
 *
 * Library: fast-check (dubzzz/fast-check), the property-based testing library the JavaScript
 * world keeps up to date: generators that shrink a failure to a small counterexample, a seed and
 * a path printed with every failure so it replays exactly, model-based command sequences, and
 * async properties. It is to TypeScript what proptest (Firecracker's choice) is to Rust.
 */
import type fc from 'fast-check';

export interface FuzzCase<C> {
  /** What must hold, as a sentence (the test's title). */
  name: string;
  /** Cases `npm test` runs: enough to catch a regression, bounded so the suite stays quick. */
  ciRuns: number;
  property: (ctx: C) => fc.IRawProperty<unknown[]>;
}

/** A family of properties sharing one context (a running host, say), made once per run. */
export interface FuzzGroup<C = void> {
  name: string;
  setup?: () => Promise<C>;
  teardown?: (ctx: C) => Promise<void>;
  properties: FuzzCase<C>[];
}
