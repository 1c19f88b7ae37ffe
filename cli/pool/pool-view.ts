/*
 * The pool seen as one: every member's memory and domains (`ringvisor pool-list`, `list --pool`).
 *
 * XAPI: `xe vm-list` and `xe host-list params=memory-free` answered by the pool master from its
 * database. Here each member's toolstack is asked (xl info, xl list) over its own socket; a member
 * that does not answer is shown as down, not skipped, so a lost host is seen as lost.
 */
import type { HostInfo, ListedDomain } from '../../dom0/toolstack/protocol.ts';
import { XlClient } from '../client.ts';
import type { PoolFile, PoolMember } from './pool-file.ts';

export interface MemberView {
  member: PoolMember;
  master: boolean;
  info: HostInfo | null;
  domains: ListedDomain[];
  /** Why it could not be asked (null if it answered). */
  down: string | null;
}

export async function viewMember(m: PoolMember, master: boolean): Promise<MemberView> {
  let c: XlClient | null = null;
  try {
    c = await XlClient.open(m.runDir);
    const info = await c.call<HostInfo>({ verb: 'info' });
    const domains = await c.call<ListedDomain[]>({ verb: 'list' });
    return { member: m, master, info, domains, down: null };
  } catch (e) {
    return { member: m, master, info: null, domains: [], down: (e as Error).message };
  } finally {
    c?.close();
  }
}

export function viewPool(p: PoolFile): Promise<MemberView[]> {
  return Promise.all(p.members.map((m) => viewMember(m, m.name === p.master)));
}

/** The guests of the pool, one line each with its host, then a line per host. */
export function formatPoolList(p: PoolFile, views: readonly MemberView[]): string {
  const lines = [`Pool ${p.pool}`, 'Host             Name                            ID   Mem VCPUs  State'];
  for (const v of views) {
    for (const d of v.domains) {
      if (d.domid === 0) continue; // each host's Dom0 is in its summary below
      const state = (d.running ? 'r' : '-') + (d.blocked ? 'b' : '-') + (d.paused ? 'p' : '-') + (d.shutdown ? 's' : '-') + (d.dying ? 'd' : '-');
      lines.push(`${v.member.name.padEnd(16)} ${d.name.padEnd(30)} ${String(d.domid).padStart(4)} ${String(d.memMiB).padStart(5)} ${String(d.vcpus).padStart(5)}  ${state}`);
    }
  }
  lines.push('');
  for (const v of views) {
    const role = v.master ? ' (master)' : '';
    if (v.info === null) {
      lines.push(`${v.member.name}${role}: down (${v.down})`);
      continue;
    }
    const mm = v.info.mm ?? {};
    lines.push(`${v.member.name}${role}: ${v.info.free_memory} MiB free of ${v.info.total_memory}, ${v.domains.length - 1} guest(s), ` +
      `${mm.paged_out ?? 0} page(s) paged out (${mm.page_outs ?? 0} page-outs so far)`);
  }
  return `${lines.join('\n')}\n`;
}
