/*
 * Diagnostics for VM configuration files: one error type, and warnings that share its shape.
 *
 * Xen: libxlu reports through a FILE* with lines of the form "cfg:12: warning: ..." or
 * "cfg:12: config parsing error near `x': lexical error", and xl exits on the first fatal one
 * (tools/libs/util/libxlu_cfg.c, tools/xl/xl_parse.c). ringvisor keeps that "file:line:" shape
 * because it is what an admin's editor can jump to, but makes every message say what was
 * expected, and turns the report into values: a ConfigError carries all the errors it found,
 * and loaders return warnings as a list the caller may print or test.
 *
 * Nothing boots from a config that produced a ConfigError: the loaders throw rather than
 * return a half-interpreted config.
 */

export type Severity = 'error' | 'warning';

/**
 * One finding about a config file, located at file:line(:column). Lines and columns count from 1;
 * line 0 means the file as a whole (it could not be read at all).
 */
export interface Diagnostic {
  severity: Severity;
  file: string;
  line: number;
  /** Given where it helps (a bad character, one item of a list); omitted for whole-statement findings. */
  column?: number;
  message: string;
}

export function formatDiagnostic(d: Diagnostic): string {
  const where = d.line === 0 ? d.file : d.column === undefined ? `${d.file}:${d.line}` : `${d.file}:${d.line}:${d.column}`;
  return d.severity === 'warning' ? `${where}: warning: ${d.message}` : `${where}: ${d.message}`;
}

/**
 * A config that must not be used. The message is the user-facing text, one
 * "file:line: what was wrong (expected X)" line per error, most useful first.
 */
export class ConfigError extends Error {
  readonly diagnostics: readonly Diagnostic[];

  constructor(diagnostics: readonly Diagnostic[]) {
    if (diagnostics.length === 0) throw new RangeError('ConfigError needs at least one diagnostic');
    super(diagnostics.map(formatDiagnostic).join('\n'));
    this.name = 'ConfigError';
    this.diagnostics = diagnostics;
  }

  /** Where the first error is: what a caller shows when it has room for one location. */
  get file(): string { return this.diagnostics[0]!.file; }
  get line(): number { return this.diagnostics[0]!.line; }
}

/** Throws a ConfigError for a single finding; the common case while parsing. */
export function configError(file: string, line: number, column: number | undefined, message: string): never {
  const d: Diagnostic = { severity: 'error', file, line, message };
  if (column !== undefined) d.column = column;
  throw new ConfigError([d]);
}

/**
 * Collects findings while a config is interpreted, so that one run reports every broken key
 * instead of the first (an admin fixing a config wants the whole list).
 */
export class Report {
  readonly errors: Diagnostic[] = [];
  readonly warnings: Diagnostic[] = [];

  constructor(readonly file: string) {}

  error(line: number, message: string, column?: number): void {
    this.errors.push(this.make('error', line, message, column));
  }

  warn(line: number, message: string, column?: number): void {
    this.warnings.push(this.make('warning', line, message, column));
  }

  /** Throws the collected errors, in file order, if any; a loader calls this before returning. */
  throwIfErrors(): void {
    if (this.errors.length > 0) throw new ConfigError(byLine(this.errors));
  }

  /** The warnings in file order, as an admin reads them. */
  sortedWarnings(): Diagnostic[] {
    return byLine(this.warnings);
  }

  private make(severity: Severity, line: number, message: string, column: number | undefined): Diagnostic {
    const d: Diagnostic = { severity, file: this.file, line, message };
    if (column !== undefined) d.column = column;
    return d;
  }
}

/* Stable: findings on one line keep the order they were made in. */
function byLine(list: readonly Diagnostic[]): Diagnostic[] {
  return [...list].sort((a, b) => a.line - b.line || (a.column ?? 0) - (b.column ?? 0));
}
