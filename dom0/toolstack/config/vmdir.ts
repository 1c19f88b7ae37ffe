/*
 * VM directories: a VM is a directory of files, and copying the directory copies the server.
 *
 * The lecture's "Virtual Machine Files": a configuration file, the virtual disks as files beside
 * it, and, once running, files for logging and paging. Xen leaves the layout to the admin (xl
 * takes a config path; disk targets are any paths); ringvisor fixes one so a VM is self-contained
 * and relocatable:
 *
 *   <vm>/vm.cfg        the xl.cfg; relative disk targets resolve against this directory
 *   <vm>/*.img         raw disk images (created sparse on demand: create_images)
 *   <vm>/console.log   run time: the guest console (xenconsoled writes it)
 *   <vm>/paging.bin    run time: the hypervisor's paging file
 *   <vm>/run/          run time: anything else of a live domain's
 *
 * Provisioning is the lecture's template deployment: copy the files, then give the copy what
 * uniquely identifies a server. Here that is a fresh name (unique among the VM directories beside
 * it), a fresh UUID, a fresh MAC for every vif (in Xen's OUI, as libxl picks them), and no
 * template marker. The config is rewritten line by line (xlcfg-edit.ts), so the admin's comments
 * and layout survive. The same step, run on a directory copied by hand, gives the copy its own
 * identity (provisionInPlace).
 */
import { randomBytes, randomUUID } from 'node:crypto';
import {
  closeSync, cpSync, existsSync, ftruncateSync, openSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync,
} from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { ConfigError, type Diagnostic } from './config-error.ts';
import { randomXenMac, withMac } from './vifspec.ts';
import { interpretXlConfig, type VmConfig } from './vmconfig.ts';
import { applyEdits, quote, removeKey, replaceValue, setString, type Edit } from './xlcfg-edit.ts';
import { parseXlConfig, type XlConfig } from './xlcfg-parse.ts';
import { RUNTIME_ENTRIES, VM_CONFIG } from './vm-layout.ts';

export { CONSOLE_LOG, PAGING_FILE, RUN_DIR, RUNTIME_ENTRIES, VM_CONFIG } from './vm-layout.ts';

const MiB = 1024 * 1024;

export interface VmDir {
  dir: string;
  configFile: string;
  config: VmConfig;
  warnings: Diagnostic[];
  /** The parsed file, kept for rewriting. */
  xl: XlConfig;
}

/** Loads <dir>/vm.cfg. Throws ConfigError; the images need not exist (see validateForBoot). */
export function loadVmDir(dir: string): VmDir {
  const configFile = join(dir, VM_CONFIG);
  let text: string;
  try {
    text = readFileSync(configFile, 'utf8');
  } catch (e) {
    throw fileError(configFile, `unable to open configuration file: ${(e as Error).message} ` +
      `(expected a VM directory holding ${VM_CONFIG})`);
  }
  const xl = parseXlConfig(text, configFile);
  const { config, warnings } = interpretXlConfig(xl, resolve(configFile));
  return { dir: resolve(dir), configFile, config, warnings, xl };
}

/** The VM directories directly inside `parent`: subdirectories holding a vm.cfg. */
export function listVmDirs(parent: string): string[] {
  if (!existsSync(parent)) return [];
  return readdirSync(parent, { withFileTypes: true })
    .filter((e) => e.isDirectory() && existsSync(join(parent, e.name, VM_CONFIG)))
    .map((e) => resolve(parent, e.name));
}

/** Creates a new raw image of sizeMiB, sparse: no block is allocated until the guest writes it. */
export function createRawImage(path: string, sizeMiB: number): void {
  if (!Number.isInteger(sizeMiB) || sizeMiB < 1) throw new RangeError(`image size ${sizeMiB} MiB (expected a whole number >= 1)`);
  const fd = openSync(path, 'wx'); // never overwrite: an existing image is someone's data
  try {
    ftruncateSync(fd, sizeMiB * MiB);
  } finally {
    closeSync(fd);
  }
}

/** Creates the image if it is missing; returns whether it did. An existing file is left as it is. */
export function ensureImage(path: string, sizeMiB: number): boolean {
  if (existsSync(path)) return false;
  createRawImage(path, sizeMiB);
  return true;
}

/** Creates every missing image the config's create_images lists; returns the paths created. */
export function ensureVmImages(vm: VmConfig): string[] {
  return vm.createImages.filter((c) => ensureImage(c.path, c.sizeMiB)).map((c) => c.path);
}

export interface ProvisionOptions {
  /** The new VM's name; by default the directory's name (made unique with -2, -3, ... if needed). */
  name?: string;
}

/**
 * Copies a template (or any VM directory) to destDir and provisions the copy. destDir must not
 * exist yet; on any failure nothing is left behind.
 */
export function newVmFromTemplate(templateDir: string, destDir: string, opts: ProvisionOptions = {}): VmDir {
  const source = loadVmDir(templateDir);
  const dest = resolve(destDir);
  if (existsSync(dest)) throw fileError(dest, 'destination already exists (expected a new directory for the new VM)');
  const name = chooseName(dest, opts.name, siblings(dest)); // before copying: a bad name leaves nothing behind
  cpSync(source.dir, dest, {
    recursive: true,
    filter: (src) => !RUNTIME_ENTRIES.includes(basename(src)) || dirname(resolve(src)) !== source.dir,
  });
  try {
    return provisionInPlace(dest, { name });
  } catch (e) {
    rmSync(dest, { recursive: true, force: true });
    throw e;
  }
}

/** Gives the VM in `dir` a fresh identity: name, UUID, vif MACs; removes the template marker. */
export function provisionInPlace(dir: string, opts: ProvisionOptions = {}): VmDir {
  const vm = loadVmDir(dir);
  const sibs = siblings(vm.dir);
  const name = chooseName(vm.dir, opts.name, sibs);
  const usedMacs = new Set<string>(vm.config.vifs.flatMap((v) => (v.mac ? [v.mac] : [])));
  for (const sib of sibs) for (const v of sib.vm?.config.vifs ?? []) if (v.mac) usedMacs.add(v.mac);

  const edits: Edit[] = [
    ...setString(vm.xl, 'name', name),
    ...setString(vm.xl, 'uuid', randomUUID(), { after: 'name' }),
    ...removeKey(vm.xl, 'template'),
    ...(vm.config.template ? templateCommentEdits(vm.xl, name) : []),
  ];
  const vifList = vm.xl.settings.get('vif')?.value;
  if (vifList?.kind === 'list') {
    for (const item of vifList.items) {
      if (item.kind !== 'atom') continue; // interpretation already refused nested lists
      let mac: string;
      do mac = randomXenMac(randomBytes); while (usedMacs.has(mac));
      usedMacs.add(mac);
      const style = vm.xl.source[item.loc.offset] === '\'' ? '\'' : '"'; // keep the file's quotes
      edits.push(replaceValue(item.loc, quote(withMac(item.text, mac), style)));
    }
  }
  const tmp = `${vm.configFile}.new`;
  writeFileSync(tmp, applyEdits(vm.xl.source, edits));
  renameSync(tmp, vm.configFile); // the old config stays whole until the new one is complete
  return loadVmDir(dir);
}

/*
 * A template's own words do not describe the VM made from it: its opening comment, if it speaks
 * of the template, becomes a line saying where the VM came from; the comment directly above
 * `template = 1` goes with that line.
 */
function templateCommentEdits(xl: XlConfig, name: string): Edit[] {
  const src = xl.source;
  const edits: Edit[] = [];
  const lines = src.split('\n');
  let headerEnd = 0; // offset just past the file's opening comment block
  for (const line of lines) {
    if (!line.startsWith('#')) break;
    headerEnd += line.length + 1;
  }
  // Only an opening comment that speaks of the template is the template's; an admin's own stays.
  if (headerEnd > 0 && /template/i.test(src.slice(0, headerEnd))) {
    edits.push({ offset: 0, end: Math.min(headerEnd, src.length),
      text: `# VM ${name}, provisioned by \`ringvisor new-vm\` from a template on ${new Date().toISOString().slice(0, 10)}.\n` +
        '# Syntax: xl.cfg(5); the keys ringvisor adds: dom0/toolstack/config/README.md.\n' });
  }
  for (const stmt of xl.settings.get('template')?.statements ?? []) {
    const lineStart = src.lastIndexOf('\n', stmt.loc.offset - 1) + 1;
    let start = lineStart;
    while (start > headerEnd) {
      const prev = src.lastIndexOf('\n', start - 2) + 1;
      if (!src.slice(prev, start).startsWith('#')) break;
      start = prev;
    }
    // and the blank line that set it apart, so no double gap is left
    if (start >= headerEnd + 1 && src[start - 1] === '\n' && (start - 1 === 0 || src[start - 2] === '\n')) start -= 1;
    if (start < lineStart) edits.push({ offset: start, end: lineStart, text: '' });
  }
  return edits;
}

interface Sibling {
  dir: string;
  vm: VmDir | null;
}

/* The VM directories beside `dir` (not itself); a sibling whose config does not load still counts by its name. */
function siblings(dir: string): Sibling[] {
  return listVmDirs(dirname(dir)).filter((d) => d !== dir).map((d) => {
    try {
      return { dir: d, vm: loadVmDir(d) };
    } catch (e) {
      if (e instanceof ConfigError) return { dir: d, vm: null };
      throw e;
    }
  });
}

const NAME = /^[A-Za-z0-9][A-Za-z0-9._-]*$/;

/*
 * A name no VM directory beside `dir` has, either as its directory name or as its config's name:
 * the given one (refused if taken), or the directory's own name, with -2, -3, ... if taken.
 */
function chooseName(dir: string, wanted: string | undefined, sibs: readonly Sibling[]): string {
  const taken = new Map<string, Diagnostic>();
  for (const s of sibs) {
    const cfg = s.vm?.config;
    taken.set(basename(s.dir), { severity: 'error', file: s.dir, line: 0, message: '' });
    if (cfg) taken.set(cfg.name, { severity: 'error', file: cfg.displayFile, line: cfg.lines['name'] ?? 1, message: '' });
  }
  if (wanted !== undefined) {
    if (!NAME.test(wanted)) {
      throw fileError(dir, `name "${wanted}" (expected letters, digits, '.', '_' and '-', starting with a letter or digit)`);
    }
    const clash = taken.get(wanted);
    if (clash) {
      throw new ConfigError([{ ...clash, message: `name "${wanted}" is already used by this VM (expected a new name)` }]);
    }
    return wanted;
  }
  const base = NAME.test(basename(dir)) ? basename(dir) : 'vm';
  let name = base;
  for (let n = 2; taken.has(name); n++) name = `${base}-${n}`;
  return name;
}

function fileError(file: string, message: string): ConfigError {
  return new ConfigError([{ severity: 'error', file, line: 0, message }]);
}
