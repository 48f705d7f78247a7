/**
 * Real EngineHooks for the engine tests: a small in-memory turn store that behaves like the sessions service
 * (a turn's reference is its session's latest result, or the background) and records every call in order.
 */
import { blankImage, decodePng, type RgbImage } from '../../src/data/index.js';
import { Sampler, WordTokenizer, createModel, type CddIcm, type SampleRequest, type SolverName } from '../../src/model/index.js';
import type { EngineHooks, TurnInputs, TurnProgress, TurnTimings } from '../../src/engine/index.js';

export const CORPUS = ['add a red cube in the middle', 'add a blue sphere left of the red cube', 'put a green cylinder behind it'];

/** The tiny preset (16x16 pixels) with a word tokenizer over the test corpus. */
export function tinyModel(): CddIcm {
  return createModel('tiny', { tokenizer: WordTokenizer.fromCorpus(CORPUS, { contextLength: 12 }) });
}

export type Outcome = 'finished' | 'failed' | 'cancelled';

export type HookEvent =
  | { type: 'start'; turnId: string; at: number }
  | { type: 'progress'; turnId: string; at: number; p: TurnProgress }
  | { type: 'finished'; turnId: string; at: number; png: Buffer; timings: TurnTimings }
  | { type: 'failed'; turnId: string; at: number; error: Error }
  | { type: 'cancelled'; turnId: string; at: number };

interface StoredTurn {
  sessionId: string;
  text: string;
  steps: number;
  seed: number;
  guidanceScale: number;
  icmGuidanceScale: number;
  candidates?: number;
  solver?: SolverName;
  /** Replaces the session head as the reference (e.g. a corrupt image to make the model throw). */
  reference?: RgbImage;
  /** start() rejects with this. */
  startError?: Error;
}

export class RecordingHooks implements EngineHooks {
  readonly events: HookEvent[] = [];
  readonly background = blankImage(16, 16, [60, 60, 60]);
  /** The reference each turn was started with. */
  readonly references = new Map<string, RgbImage>();
  /** What start() returned for each turn. */
  readonly inputs = new Map<string, TurnInputs>();
  readonly results = new Map<string, RgbImage>();
  private readonly turns = new Map<string, StoredTurn>();
  private readonly heads = new Map<string, RgbImage>();
  private readonly waiters = new Map<string, Array<(o: Outcome) => void>>();
  private readonly outcomes = new Map<string, Outcome>();

  add(turnId: string, sessionId: string, over: Partial<StoredTurn> = {}): void {
    this.turns.set(turnId, {
      sessionId, text: CORPUS[this.turns.size % CORPUS.length]!, steps: 4, seed: this.turns.size + 1, guidanceScale: 1, icmGuidanceScale: 0, ...over,
    });
  }

  async start(turnId: string): Promise<TurnInputs | null> {
    this.events.push({ type: 'start', turnId, at: Date.now() });
    await Promise.resolve();
    const t = this.turns.get(turnId);
    if (!t) return null;
    if (t.startError) throw t.startError;
    const reference = t.reference ?? this.heads.get(t.sessionId) ?? this.background;
    this.references.set(turnId, reference);
    const inputs = { turnId, sessionId: t.sessionId, text: t.text, reference, steps: t.steps, guidanceScale: t.guidanceScale, icmGuidanceScale: t.icmGuidanceScale, seed: t.seed,
      ...(t.candidates ? { candidates: t.candidates } : {}), ...(t.solver ? { solver: t.solver } : {}) };
    this.inputs.set(turnId, inputs);
    return inputs;
  }

  progress(p: TurnProgress): void {
    this.events.push({ type: 'progress', turnId: p.turnId, at: Date.now(), p });
  }

  async finished(turnId: string, png: Buffer, timings: TurnTimings): Promise<void> {
    this.events.push({ type: 'finished', turnId, at: Date.now(), png, timings });
    // Like the sessions service: the result becomes the session's canvas head (stored as PNG, read back).
    const img = await decodePng(png);
    this.results.set(turnId, img);
    this.heads.set(this.turns.get(turnId)!.sessionId, img);
    this.settle(turnId, 'finished');
  }

  async failed(turnId: string, error: Error): Promise<void> {
    this.events.push({ type: 'failed', turnId, at: Date.now(), error });
    this.settle(turnId, 'failed');
  }

  async cancelled(turnId: string): Promise<void> {
    this.events.push({ type: 'cancelled', turnId, at: Date.now() });
    this.settle(turnId, 'cancelled');
  }

  /** Resolves with the turn's terminal outcome. */
  outcome(turnId: string): Promise<Outcome> {
    const o = this.outcomes.get(turnId);
    if (o) return Promise.resolve(o);
    return new Promise((resolve) => this.waiters.set(turnId, [...(this.waiters.get(turnId) ?? []), resolve]));
  }

  of<T extends HookEvent['type']>(type: T, turnId?: string): Extract<HookEvent, { type: T }>[] {
    return this.events.filter((e): e is Extract<HookEvent, { type: T }> => e.type === type && (turnId === undefined || e.turnId === turnId));
  }

  /** Index in the event log of the first event of a type for a turn (-1 if none). */
  indexOf(type: HookEvent['type'], turnId: string): number {
    return this.events.findIndex((e) => e.type === type && e.turnId === turnId);
  }

  private settle(turnId: string, o: Outcome): void {
    this.outcomes.set(turnId, o);
    for (const w of this.waiters.get(turnId) ?? []) w(o);
    this.waiters.delete(turnId);
  }
}

/** What a model makes of one request alone, on this thread (the result an engine must reproduce). */
export function soloSample(model: CddIcm, req: SampleRequest): RgbImage {
  const sampler = new Sampler(model);
  const s = sampler.prepare(req);
  try {
    while (!s.done) sampler.step([s]);
    return s.result();
  } finally {
    s.dispose();
  }
}

/** Largest per-channel difference of two images of one size. */
export function maxDiff(a: RgbImage, b: RgbImage): number {
  if (a.width !== b.width || a.height !== b.height) throw new Error(`sizes differ: ${a.width}x${a.height} vs ${b.width}x${b.height}`);
  let m = 0;
  for (let i = 0; i < a.data.length; i++) m = Math.max(m, Math.abs(a.data[i]! - b.data[i]!));
  return m;
}
