/*
 * Disk specifications: one entry of `disk = [ ... ]`, in both of Xen's forms.
 *
 * Xen: docs/man/xl-disk-configuration.5.pod.in (the syntax) and tools/libs/util/libxlu_disk_l.l
 * (the scanner libxl really uses, which this follows rule by rule). A spec is a comma-separated
 * run of parameters; each is one of
 *   key=value   format= vdev= access= devtype= backend= backendtype= script= specification=
 *               target= (which takes the whole rest of the spec, commas and all: it must be last)
 *   a flag      cdrom, discard, no-discard, trusted, untrusted, direct-io-safe, colo, no-colo
 *   positional  anything else, filling target, format, vdev, access in that order; an empty
 *               positional means "the default"
 * so these are one disk:  '/img/d.img,raw,xvda,rw'   'format=raw, vdev=xvda, target=/img/d.img'
 * Legacy prefixes are accepted as libxl does: 'raw:' 'qcow2:' 'vhd:' set the format, 'phy:'
 * 'file:' 'tap:' 'aio:' 'tapdisk:' 'tap2:' 'ioemu:' are dropped, and 'hdc:cdrom' as a vdev means
 * devtype=cdrom. Note that a flag wins over a positional of the same spelling, as in flex's
 * first-rule tie-break: a target literally named "cdrom" needs target=cdrom.
 *
 * ringvisor differences: a relative target is relative to the config's directory (vmconfig.ts;
 * libxl would prepend /dev), COLO parameters are accepted and ignored, and only raw images can
 * be served (checked when validating for boot, so a Xen config with qcow2 still loads).
 */
import { parseVdev, VDEV_EXPECTED, type Vdev } from './vdev.ts';

export type DiskFormat = 'raw' | 'qcow' | 'qcow2' | 'vhd' | 'qed' | 'empty';
export type BackendType = 'phy' | 'tap' | 'qdisk' | 'standalone';

export interface DiskSpec {
  /** The image path as written; null when absent (only an empty CD-ROM drive may omit it). */
  target: string | null;
  format: DiskFormat;
  vdev: Vdev;
  readonly: boolean;
  /**
   * access `w!` (or `rw!`): read-write even if the image is in use elsewhere. The block hotplug
   * script's override of its sharing check (dom0/toolstack/image-lock.ts); for shared-disk
   * clusters that coordinate writes themselves.
   */
  sharedWrite: boolean;
  devtype: 'disk' | 'cdrom';
  backendtype: BackendType | null;
  /** Backend domain name (driver domains). */
  backend: string | null;
  script: string | null;
  specification: 'xen' | 'virtio' | null;
  discard: boolean | null;
  trusted: boolean | null;
  directIoSafe: boolean;
  /** Any colo* parameter was given (COLO replication is not modelled). */
  colo: boolean;
}

export type DiskSpecResult = { ok: true; disk: DiskSpec } | { ok: false; error: string };

const FORMATS: readonly DiskFormat[] = ['raw', 'qcow', 'qcow2', 'vhd', 'qed', 'empty'];
const BACKENDTYPES: readonly BackendType[] = ['phy', 'tap', 'qdisk', 'standalone'];
const DROPPED_PREFIXES = ['tapdisk', 'tap2', 'tap', 'aio', 'ioemu', 'file', 'phy'];
const SCRIPT_PREFIXES = ['iscsi', 'nbd', 'enbd', 'drbd'];
const KNOWN_PREFIXES = ['raw', 'qcow', 'qcow2', 'vhd', ...DROPPED_PREFIXES, ...SCRIPT_PREFIXES];
const COLO_KEYS = ['colo-host', 'colo-port', 'colo-export', 'active-disk', 'hidden-disk'];

/** What a well-formed spec looks like, for error messages. */
export const DISKSPEC_EXPECTED = "'TARGET,FORMAT,VDEV,ACCESS' such as '/img/disk.img,raw,xvda,rw', " +
  "or 'format=raw, vdev=xvda, access=rw, target=/img/disk.img'";

class SpecError extends Error {}

/** Parses one diskspec string as libxlu_disk_l.l does; never throws. */
export function parseDiskSpec(spec: string): DiskSpecResult {
  try {
    return { ok: true, disk: parse(spec) };
  } catch (e) {
    if (e instanceof SpecError) return { ok: false, error: e.message };
    throw e;
  }
}

interface Draft {
  target?: string;
  format?: DiskFormat;
  vdev?: string;
  access?: string;
  accessPositional: boolean;
  cdrom?: boolean;
  backendtype?: BackendType;
  backend?: string;
  script?: string;
  specification?: 'xen' | 'virtio';
  discard?: boolean;
  trusted?: boolean;
  directIoSafe: boolean;
  colo: boolean;
  hadPrefix: boolean;
}

function parse(spec: string): DiskSpec {
  const d: Draft = { accessPositional: false, directIoSafe: false, colo: false, hadPrefix: false };
  let rest = spec;
  while (rest.length > 0) {
    rest = rest.replace(/^[ \t\n]+/, '');
    if (rest.length === 0) break;
    if (rest.startsWith('target=')) { // "eats the rest of the string", minus one trailing comma
      setString(d, 'target', rest.slice('target='.length).replace(/,$/, ''));
      break;
    }
    const prefix = /^([a-z][a-z0-9]*):/.exec(rest);
    if (prefix && isLegacyPrefix(prefix[1]!, rest[prefix[0].length])) {
      legacyPrefix(d, prefix[1]!);
      rest = rest.slice(prefix[0].length);
      continue;
    }
    const comma = rest.indexOf(',');
    const param = comma < 0 ? rest : rest.slice(0, comma);
    rest = comma < 0 ? '' : rest.slice(comma + 1);
    const eq = param.indexOf('=');
    if (eq < 0) {
      if (!flag(d, param)) positional(d, param);
    } else if (/^[a-z][-a-z0-9_]*$/.test(param.slice(0, eq))) {
      keyValue(d, param.slice(0, eq), param.slice(eq + 1));
    } else {
      throw new SpecError(`bad disk syntax near \`${param}' (a target containing \`=' or \`,' must come last, as target=...)`);
    }
  }
  return finish(d);
}

/*
 * In libxlu's scanner a known prefix ('phy:', 'raw:', ...) always wins, whatever follows it. An
 * unknown word before a colon is an error only when what follows is not a letter or digit:
 * 'hdc:cdrom' is a positional vdev:devtype, 'foo:/x' is an unknown prefix.
 */
function isLegacyPrefix(word: string, after: string | undefined): boolean {
  if (KNOWN_PREFIXES.includes(word)) return true;
  return after === undefined || !/[a-z0-9]/.test(after);
}

function legacyPrefix(d: Draft, p: string): void {
  d.hadPrefix = true;
  if (p === 'raw' || p === 'qcow' || p === 'qcow2' || p === 'vhd') setFormat(d, p);
  else if (SCRIPT_PREFIXES.includes(p)) setString(d, 'script', `block-${p}`);
  else if (!DROPPED_PREFIXES.includes(p)) {
    throw new SpecError(`unknown deprecated disk prefix \`${p}:' (expected one of raw: qcow2: vhd: phy: file: tap: aio:)`);
  }
}

/* Flags are whole parameters; libxlu's flex rules list them before the positional rule. */
function flag(d: Draft, p: string): boolean {
  switch (p) {
    case 'cdrom': d.cdrom = true; return true;
    case 'direct-io-safe': d.directIoSafe = true; return true;
    case 'discard': d.discard = true; return true;
    case 'no-discard': d.discard = false; return true;
    case 'trusted': d.trusted = true; return true;
    case 'untrusted': d.trusted = false; return true;
    case 'colo': case 'no-colo': d.colo = true; return true;
    default: return false;
  }
}

function keyValue(d: Draft, key: string, value: string): void {
  switch (key) {
    case 'format': setFormat(d, value); return;
    case 'vdev': setString(d, 'vdev', value); return;
    case 'access': setAccess(d, value); return;
    case 'backend': setString(d, 'backend', value); return;
    case 'script': setString(d, 'script', value); return;
    case 'devtype':
      if (value === 'cdrom') d.cdrom = true;
      else if (value === 'disk') d.cdrom = false;
      else throw new SpecError(`unknown value for devtype: \`${value}' (expected cdrom or disk)`);
      return;
    case 'backendtype':
      if (!(BACKENDTYPES as readonly string[]).includes(value)) {
        throw new SpecError(`unknown value for backendtype: \`${value}' (expected ${BACKENDTYPES.join(', ')})`);
      }
      if (d.backendtype && d.backendtype !== value) throw new SpecError('backendtype respecified');
      d.backendtype = value as BackendType;
      return;
    case 'specification':
      if (value !== 'xen' && value !== 'virtio') {
        throw new SpecError(`unknown value for specification: \`${value}' (expected xen or virtio)`);
      }
      d.specification = value;
      return;
    case 'grant_usage':
      if (value !== '0' && value !== '1') throw new SpecError(`unknown value for grant_usage: \`${value}' (expected 0 or 1)`);
      return; // meaningful only with specification=virtio, which ringvisor does not model
    default:
      if (COLO_KEYS.includes(key)) { d.colo = true; return; }
      throw new SpecError(`unknown parameter \`${key}=' (expected format=, vdev=, access=, devtype=, ` +
        'backend=, backendtype=, script=, specification= or target=)');
  }
}

/* libxlu's positional rule: target, then format (unless a legacy prefix gave one), vdev, access. */
function positional(d: Draft, p: string): void {
  if (d.target === undefined) { d.target = p; return; }
  if (!d.hadPrefix && d.format === undefined) {
    // xend's empty CD-ROM: ',hdc:cdrom,r' (no target, vdev:devtype where the format would be)
    if (d.target === '' && vdevAndDevtype(d, p)) { d.format = 'empty'; return; }
    setFormat(d, p);
    return;
  }
  if (d.vdev === undefined) {
    if (!vdevAndDevtype(d, p)) d.vdev = p;
    return;
  }
  if (!d.accessPositional) { d.accessPositional = true; setAccess(d, p); return; }
  throw new SpecError(`too many positional parameters at \`${p}' (expected at most TARGET,FORMAT,VDEV,ACCESS)`);
}

/* The deprecated 'hdc:cdrom' / 'xvda:disk' form of a vdev. */
function vdevAndDevtype(d: Draft, p: string): boolean {
  const colon = p.lastIndexOf(':');
  if (colon < 0) return false;
  setString(d, 'vdev', p.slice(0, colon));
  const t = p.slice(colon + 1);
  if (t === 'cdrom') d.cdrom = true;
  else if (t === 'disk') d.cdrom = false;
  else throw new SpecError(`unknown deprecated type \`${t}' after the vdev (expected cdrom or disk)`);
  return true;
}

function setFormat(d: Draft, value: string): void {
  const f = (value === '' ? 'raw' : value) as DiskFormat;
  if (!FORMATS.includes(f)) throw new SpecError(`unknown value for format: \`${value}' (expected ${FORMATS.join(', ')})`);
  if (d.format !== undefined && d.format !== f) throw new SpecError(`format respecified: \`${value}' after \`${d.format}'`);
  d.format = f;
}

function setAccess(d: Draft, value: string): void {
  if (!['r', 'ro', 'w', 'rw', 'w!', 'rw!', ''].includes(value)) {
    throw new SpecError(`unknown value for access: \`${value}' (expected r, ro, w or rw; w! to share an image read-write)`);
  }
  d.access = value;
}

/* libxlu's savestring: a second non-empty value for the same parameter is an error. */
function setString(d: Draft, what: 'target' | 'vdev' | 'backend' | 'script', value: string): void {
  const prev = d[what];
  if (prev !== undefined && prev !== '') throw new SpecError(`${what} respecified: \`${value}' after \`${prev}'`);
  d[what] = value;
}

function finish(d: Draft): DiskSpec {
  if (d.vdev === undefined || d.vdev === '') {
    throw new SpecError(`no vdev given (expected ${VDEV_EXPECTED}, as the third positional or vdev=)`);
  }
  const vdev = parseVdev(d.vdev);
  if (!vdev) throw new SpecError(`invalid or unsupported vdev \`${d.vdev}' (expected ${VDEV_EXPECTED})`);
  const cdrom = d.cdrom === true;
  const target = d.target === undefined || d.target === '' ? null : d.target;
  if (target === null && !cdrom) {
    throw new SpecError('no target given (expected the path of the disk image; only a CD-ROM drive may be empty)');
  }
  let format = d.format ?? 'raw';
  if (target === null) format = 'empty';
  return {
    target, format, vdev,
    // access defaults to rw, except that a CD-ROM is read-only media whatever the spec says
    readonly: cdrom || d.access === 'r' || d.access === 'ro',
    sharedWrite: !cdrom && (d.access === 'w!' || d.access === 'rw!'),
    devtype: cdrom ? 'cdrom' : 'disk',
    backendtype: d.backendtype ?? null,
    backend: d.backend === undefined || d.backend === '' ? null : d.backend,
    script: d.script === undefined || d.script === '' ? null : d.script,
    specification: d.specification ?? null,
    discard: d.discard ?? null,
    trusted: d.trusted ?? null,
    directIoSafe: d.directIoSafe,
    colo: d.colo,
  };
}
