/*
 * `npm run soak`: a thousand guests created and destroyed on one host (scenarios/soak/soak.ts),
 * with the host's resources checked against their baseline after every hundred.
 *
 *   npm run soak -- [--cycles N] [--check-every N] [--rss-tolerance MiB]
 *
 * Runs with --expose-gc (package.json) so that RSS is read after a full collection. Exits 1 if
 * anything failed to come back.
 */
import { soakArgs } from './args.ts';
import { runSoak } from './soak.ts';

const USAGE = 'usage: npm run soak -- [--cycles N] [--check-every N] [--rss-tolerance MiB]';

async function main(): Promise<number> {
  const a = soakArgs(USAGE, 'cycles');
  if (typeof a === 'number') return a;
  const { count: cycles, checkEvery, rssToleranceMiB } = a;
  process.stdout.write(`soak: ${cycles} guests (PV and HVM in turn, each running disk-check on its disk), checked every ${checkEvery}\n`);
  const t0 = performance.now();
  const r = await runSoak({ cycles, checkEvery, rssToleranceMiB, progress: (l) => process.stdout.write(`${l}\n`) });
  const e = r.empty, w = r.warm, f = r.checks.at(-1)!.snapshot;
  process.stdout.write(
    `baseline (no guests): frames ${e.usage.framesUsed}, grants ${e.usage.grantsActive}, mappings ${e.usage.grantMappings}+${e.foreignMaps} foreign, ` +
    `ports ${e.usage.portsBound}, domains ${e.usage.domains}, vCPU threads ${e.usage.threadsAlive}, XenStore nodes ${e.xsNodes}\n` +
    `warm (after one PV and one HVM guest): fds ${w.fds}, threads ${w.threads}, RSS ${w.rssMiB.toFixed(0)} MiB\n` +
    `final: frames ${f.usage.framesUsed}, grants ${f.usage.grantsActive}, mappings ${f.usage.grantMappings}+${f.foreignMaps} foreign, ports ${f.usage.portsBound}, ` +
    `domains ${f.usage.domains}, vCPU threads ${f.usage.threadsAlive}, XenStore nodes ${f.xsNodes}, fds ${f.fds}, threads ${f.threads}, RSS ${f.rssMiB.toFixed(0)} MiB\n` +
    `${r.cycles} cycles in ${((performance.now() - t0) / 1000).toFixed(0)} s (${r.msPerCycle.toFixed(0)} ms per create + workload + destroy)\n`,
  );
  if (r.problems.length) {
    process.stdout.write(`soak: FAILED\n${r.problems.map((p) => `  ${p}`).join('\n')}\n`);
    return 1;
  }
  process.stdout.write('soak: everything came back\n');
  return 0;
}

process.exitCode = await main();
