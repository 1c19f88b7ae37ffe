#!/usr/bin/env node
/*
 * The `ringvisor` command (package.json "bin"): xl for ringvisor, and `ringvisor host`.
 *
 * Xen: /usr/sbin/xl. This file is plain JavaScript so that it runs under Node 20 with no build
 * step: it registers tsx's loader (the same one every vCPU thread uses, hypervisor/thread.ts)
 * and hands over to the TypeScript entry, cli/main.ts.
 */
import { register } from 'tsx/esm/api';

register();
// `ringvisor list | head -1`: a reader that stops reading is not an error.
process.stdout.on('error', (e) => { if (e.code === 'EPIPE') process.exit(0); throw e; });
const { run } = await import(new URL('../cli/main.ts', import.meta.url).href);
process.exitCode = await run(process.argv.slice(2), process);
