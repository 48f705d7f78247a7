/**
 * Shared plumbing of the eval CLIs: argument parsing with one-line errors (exit code 2), backend start-up,
 * a progress line with ETA on stderr, and the "last line is JSON" convention.
 */
import { existsSync } from 'node:fs';
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { initBackend, type BackendInfo, type BackendName } from '../backend/index.js';
import { EpisodeFormatError, readEpisodes, type Dataset, type Episode } from '../data/index.js';

/** A usage or input problem: the CLI prints its message on one line and exits with code 2. */
export class CliError extends Error {}

export type Options = NonNullable<ParseArgsConfig['options']>;

export function parse(argv: string[], options: Options, usage: string): Record<string, string | boolean | undefined> {
  try {
    const { values } = parseArgs({ args: argv, options: { ...options, help: { type: 'boolean', short: 'h' } }, strict: true, allowPositionals: false });
    if (values.help) {
      process.stdout.write(usage + '\n');
      process.exit(0);
    }
    return values as Record<string, string | boolean | undefined>;
  } catch (e) {
    throw new CliError((e as Error).message.split('\n')[0]!);
  }
}

export function str(v: string | boolean | undefined, name: string, dflt?: string): string {
  if (v === undefined || v === true || v === false || v === '') {
    if (dflt === undefined) throw new CliError(`--${name} is required`);
    return dflt;
  }
  return v;
}

export function num(v: string | boolean | undefined, name: string, dflt: number, opts: { int?: boolean; min?: number; max?: number } = {}): number {
  if (v === undefined) return dflt;
  const n = Number(v);
  if (typeof v !== 'string' || v.trim() === '' || !Number.isFinite(n)) throw new CliError(`--${name} must be a number, got "${String(v)}"`);
  if (opts.int && !Number.isInteger(n)) throw new CliError(`--${name} must be an integer, got "${v}"`);
  if (opts.min !== undefined && n < opts.min) throw new CliError(`--${name} must be >= ${opts.min}, got ${n}`);
  if (opts.max !== undefined && n > opts.max) throw new CliError(`--${name} must be <= ${opts.max}, got ${n}`);
  return n;
}

export function optNum(v: string | boolean | undefined, name: string, opts: { int?: boolean; min?: number } = {}): number | undefined {
  return v === undefined ? undefined : num(v, name, 0, opts);
}

export function datasetArg(v: string | boolean | undefined): Dataset {
  const d = str(v, 'dataset');
  if (d !== 'iclevr' && d !== 'codraw') throw new CliError(`--dataset must be iclevr or codraw, got "${d}"`);
  return d;
}

/** Read and validate an episodes file; every malformed line is reported (file:line: what) before any work. */
export async function loadEpisodesArg(path: string): Promise<Episode[]> {
  if (!existsSync(path)) throw new CliError(`episodes file not found: ${path}`);
  try {
    return await readEpisodes(path);
  } catch (e) {
    if (e instanceof EpisodeFormatError) {
      const first = e.problems[0]!;
      const more = e.problems.length > 1 ? ` (and ${e.problems.length - 1} more malformed line(s))` : '';
      throw new CliError(`${first.file}:${first.line}: ${first.message}${more}`);
    }
    throw new CliError(`cannot read ${path}: ${(e as Error).message}`);
  }
}

const BACKENDS = ['auto', 'tensorflow', 'native-cpu', 'cpu'] as const;

/** Start the tensor backend: --backend NAME, else env TENSOR_BACKEND, else auto. */
export async function initBackendFromArgs(flag: string | boolean | undefined): Promise<BackendInfo> {
  const v = typeof flag === 'string' ? flag : process.env.TENSOR_BACKEND || 'auto';
  if (!(BACKENDS as readonly string[]).includes(v)) throw new CliError(`--backend must be one of ${BACKENDS.join(', ')}, got "${v}"`);
  return initBackend(v as 'auto' | BackendName);
}

/** Human-readable duration. */
export function fmtMs(ms: number | null): string {
  if (ms === null || !Number.isFinite(ms)) return '?';
  const s = Math.round(ms / 1000);
  if (s < 60) return `${s}s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m}m${String(s % 60).padStart(2, '0')}s`;
  return `${Math.floor(m / 60)}h${String(m % 60).padStart(2, '0')}m`;
}

/** A throttled single-line progress display on stderr (plain lines when stderr is not a terminal). */
export class Progress {
  private last = 0;
  private readonly t0 = Date.now();
  constructor(private readonly label: string, private readonly total: number, private readonly everyMs = 1000) {}
  update(done: number, extra = '', force = false): void {
    const now = Date.now();
    if (!force && now - this.last < this.everyMs && done < this.total) return;
    this.last = now;
    const el = now - this.t0;
    const eta = done > 0 ? (el / done) * (this.total - done) : null;
    const pct = this.total > 0 ? ((100 * done) / this.total).toFixed(1) : '100.0';
    const line = `${this.label} ${done}/${this.total} (${pct}%) elapsed ${fmtMs(el)} eta ${fmtMs(eta)}${extra ? ' ' + extra : ''}`;
    if (process.stderr.isTTY) process.stderr.write(`\r\x1b[K${line}${done >= this.total ? '\n' : ''}`);
    else process.stderr.write(line + '\n');
  }
}

/** Run a CLI main: CliError -> one line on stderr, exit 2; other errors -> message, exit 1. */
export function runCli(main: () => Promise<void>): void {
  main().then(
    () => process.exit(0),
    (e: unknown) => {
      if (e instanceof CliError) {
        process.stderr.write(`error: ${e.message}\n`);
        process.exit(2);
      }
      process.stderr.write(`error: ${(e as Error)?.stack ?? String(e)}\n`);
      process.exit(1);
    },
  );
}
