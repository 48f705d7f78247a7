/**
 * Checks of what callers send, each refusing with a DomainError before anything is written.
 */
import { checkPng, PngCheckError } from '../data/index.js';
import { SOLVERS, type SolverName } from './engineContract.js';
import { DomainError } from './errors.js';

/** Longest an invite may stay valid, and most joins one may allow. */
export const MAX_INVITE_SECONDS = 30 * 24 * 3600;
export const MAX_INVITE_USES = 10_000;
/** A lone UTF-16 surrogate (paired ones form one code point under the u flag): not text, and not storable. */
const LONE_SURROGATE = /\p{Cs}/u;

/** The text trimmed; refused when it has a lone surrogate, is empty, or is longer than `max`. */
export function checkText(what: string, text: string, max: number): string {
  if (LONE_SURROGATE.test(text)) {
    throw new DomainError('BAD_USER_INPUT', `${what} contains a lone UTF-16 surrogate; send valid Unicode text.`);
  }
  const t = text.trim();
  if (t.length === 0) throw new DomainError('BAD_USER_INPUT', `${what} must not be empty.`);
  if (t.length > max) {
    throw new DomainError('TEXT_TOO_LONG', `${what} is ${t.length} characters; the limit is ${max}.`, {
      limit: max,
      length: t.length,
    });
  }
  return t;
}

/** An optional number in [min, max] (an integer when `int`); null and undefined pass. */
export function checkNumber(what: string, v: number | null | undefined, min: number, max: number, int: boolean): void {
  if (v === null || v === undefined) return;
  if (!Number.isFinite(v) || v < min || v > max || (int && !Number.isInteger(v))) {
    throw new DomainError('BAD_USER_INPUT', `${what} must be ${int ? 'an integer' : 'a number'} in [${min}, ${max}].`);
  }
}

/** A solver name the sampler knows, or null (the model's default). GraphQL's enum refuses others first. */
export function checkSolver(v: string | null | undefined): SolverName | null {
  if (v === null || v === undefined) return null;
  if (!isSolverName(v)) throw new DomainError('BAD_USER_INPUT', `solver must be one of ${SOLVERS.join(', ')}.`);
  return v;
}

export function isSolverName(v: string): v is SolverName {
  return (SOLVERS as readonly string[]).includes(v);
}

/** The PNG bytes of a `data:image/png;base64,` background, checked before the decoder allocates anything. */
export function checkBackgroundPng(dataUrl: string, maxPixels: number): Buffer {
  const m = /^data:image\/png;base64,([A-Za-z0-9+/=]+)$/.exec(dataUrl);
  if (!m) throw new DomainError('BAD_USER_INPUT', 'backgroundPng must be a data:image/png;base64 URL.');
  const bytes = Buffer.from(m[1]!, 'base64');
  try {
    // PNG only, its size from the header, complete image data.
    checkPng(bytes, { maxPixels });
  } catch (err) {
    if (err instanceof PngCheckError) throw new DomainError('BAD_USER_INPUT', `backgroundPng is refused: ${err.message}.`);
    throw err;
  }
  return bytes;
}

/** A list's `last` argument, kept in 0..200. */
export function clampLast(n: number): number {
  return Math.max(0, Math.min(200, Math.floor(n)));
}
