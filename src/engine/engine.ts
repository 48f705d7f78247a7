/**
 * The generation engine: per-session queues served round-robin, step-wise batching of the turns in flight
 * (newcomers join between steps, items at different step positions share one U-Net call), previews encoded off
 * the step loop, cancellation within one step, failure isolation and drain.
 *
 * Life of a turn: queued (FairQueue) -> starting (hooks.start in flight) -> ready (inputs known) -> running (in
 * the batch) -> ending (the terminal hook in flight). The session's next turn may start only once the previous
 * turn's terminal hook has resolved, because that is when its result becomes the next turn's reference.
 */
import * as tf from '@tensorflow/tfjs-core';
import { setImmediate as yieldToEventLoop } from 'node:timers/promises';
import { tensorToImages, type RgbImage } from '../data/index.js';
import { backendInfo } from '../backend/index.js';
import { Sampler, type CddIcm, type SampleState } from '../model/index.js';
import { partLogger } from '../log/index.js';
import { FairQueue } from './fairQueue.js';
import { encodePngAsync } from '../data/index.js';
import { LatentCache } from './latentCache.js';
import { ProgressChannel } from './preview.js';
import type { BatchInfo, EngineHooks, EngineStatus, GenerationEngine, TurnInputs } from './types.js';

const log = partLogger('engine');

type Phase = 'starting' | 'ready' | 'running' | 'ending';

/** The engine's bookkeeping of one turn past the queue (not the stored Turn row). */
interface TurnSlot {
  turnId: string;
  sessionId: string;
  enqueuedAt: number;
  phase: Phase;
  cancelRequested: boolean;
  startedAt: number;
  inputs: TurnInputs | null;
  state: SampleState | null;
  channel: ProgressChannel | null;
  stepsRun: number;
  batchSizeSum: number;
  /** Its first step's preview went out before the step (Sampler.glimpse). */
  glimpsed: boolean;
}

export interface EngineCoreOptions {
  /** Resolves to the loaded model (loading may still be in progress when the engine is created). */
  model: Promise<CddIcm>;
  /** Dispose the model at the end of drain (when the engine loaded it itself). */
  ownsModel: boolean;
  hooks: EngineHooks;
  previewEvery: number;
  maxBatchSize: number;
  latentCacheSize: number;
  batching: boolean;
  /** How long a running batch waits for newcomers' hooks.start before the next step. */
  joinWaitMs: number;
  /** How long the loop lets preview encodings finish before the next step. */
  previewGraceMs: number;
  onBatch?: (info: BatchInfo) => void;
  backend?: { name: string; device: string; threads: number };
}

/** Turns of at most this many steps (few-step sampling) preview every step. */
export const FEW_STEP_TURN = 8;

/**
 * Which steps get a preview: the first (a glimpse as soon as the turn starts), every `every`-th, and every step of
 * a few-step turn (each step is a large part of it).
 */
export function previewAt(step: number, totalSteps: number, every: number): boolean {
  return step === 1 || step % every === 0 || totalSteps <= FEW_STEP_TURN;
}

/** How long the loop waits for a first glimpse's PNG before the step (a 64x64 PNG takes well under 1 ms). */
const GLIMPSE_GRACE_MS = 25;

/** Weight of the newest step time in the running mean used for etaMs. */
const STEP_EMA = 0.3;

export class Engine implements GenerationEngine {
  private readonly queue = new FairQueue();
  /** Turns past the queue (starting, ready, running, ending), by id. */
  private readonly turns = new Map<string, TurnSlot>();
  private readonly latents: LatentCache;
  private readonly readyTurns: TurnSlot[] = [];
  private batch: TurnSlot[] = [];
  private starting = 0;
  /** Newcomers taken from readyTurns whose condition is being encoded. */
  private preparing = 0;
  /** Hook calls in flight (start and terminal hooks), awaited by drain. */
  private readonly pendingHooks = new Set<Promise<unknown>>();
  private sampler: Sampler | null = null;
  private modelName = 'loading';
  private stepMs: number | null = null;
  private draining = false;
  private drainPromise: Promise<void> | null = null;
  private signalled = false;
  private wake: (() => void) | null = null;
  private readonly loopDone: Promise<void>;
  private readonly modelReady: Promise<void>;

  constructor(private readonly o: EngineCoreOptions) {
    if (!Number.isInteger(o.maxBatchSize) || o.maxBatchSize < 1) throw new Error(`maxBatchSize must be a positive integer, got ${o.maxBatchSize}`);
    if (!Number.isInteger(o.previewEvery) || o.previewEvery < 0) throw new Error(`previewEvery must be a non-negative integer, got ${o.previewEvery}`);
    this.latents = new LatentCache(o.latentCacheSize);
    this.modelReady = o.model.then((m) => {
      this.sampler = new Sampler(m);
      this.modelName = m.config.name;
    });
    this.modelReady.catch((err: unknown) => {
      this.modelName = 'unavailable';
      log.error({ err }, 'model failed to load; turns stay queued');
    });
    this.loopDone = this.loop();
  }

  ready(): Promise<void> {
    return this.modelReady;
  }

  enqueue(sessionId: string, turnId: string): void {
    if (this.draining) {
      log.warn({ turnId, sessionId }, 'enqueue after drain ignored');
      return;
    }
    if (this.turns.has(turnId) || this.queue.has(turnId)) return;
    this.queue.push({ sessionId, turnId, enqueuedAt: Date.now() });
    this.notify();
  }

  cancel(turnId: string): boolean {
    if (this.draining) return false;
    const queued = this.queue.remove(turnId);
    if (queued) {
      // The session's in-flight turn (if any) is another one: nothing to release.
      this.track(call(() => this.o.hooks.cancelled(turnId)).catch((err: unknown) => log.error({ err, turnId }, 'hooks.cancelled failed')));
      return true;
    }
    const rec = this.turns.get(turnId);
    if (!rec || rec.phase === 'ending') return false;
    rec.cancelRequested = true;
    this.notify();
    return true;
  }

  status(): EngineStatus {
    let b: { name: string; device: string; threads: number };
    try {
      b = this.o.backend ?? backendInfo();
    } catch {
      b = { name: 'uninitialised', device: 'none', threads: 0 };
    }
    return {
      backend: b.name,
      device: b.device,
      threads: b.threads,
      model: this.modelName,
      queueLength: this.queue.length,
      busy: this.batch.length + this.readyTurns.length + this.starting + this.preparing > 0,
      running: this.batch.length,
      batching: this.o.batching,
      maxBatchSize: this.o.maxBatchSize,
      referenceLatentHits: this.latents.hits,
      referenceLatentMisses: this.latents.misses,
      stepMs: this.stepMs === null ? null : Math.round(this.stepMs),
    };
  }

  drain(): Promise<void> {
    if (!this.drainPromise) {
      this.draining = true;
      this.notify();
      this.drainPromise = (async () => {
        await this.loopDone;
        // Starts and terminal hooks already under way complete (a finished turn's result is still recorded).
        while (this.pendingHooks.size > 0) await Promise.allSettled([...this.pendingHooks]);
        if (this.o.ownsModel) {
          const m = await this.o.model.catch(() => null);
          m?.dispose();
        }
        log.info('engine drained');
      })();
    }
    return this.drainPromise;
  }

  // ---- the step loop ----

  private async loop(): Promise<void> {
    try {
      await this.modelReady;
    } catch {
      return;
    }
    const sampler = this.sampler!;
    while (!this.draining) {
      try {
        this.signalled = false;
        this.admit();
        if (this.starting > 0) {
          // Nothing to run yet: wait for the first start (or any other news).
          if (this.batch.length === 0 && this.readyTurns.length === 0) {
            await this.waitForWork();
            continue;
          }
          // Give the other starts in flight a moment (a store write) so turns that arrive together begin together
          // and newcomers join this step instead of the next; a slow start never holds the others longer.
          await this.waitForStarts();
          if (this.draining) break;
        }
        await this.prepareReady(sampler);
        if (this.draining) break;
        this.dropCancelled();
        if (this.batch.length === 0) {
          await this.waitForWork();
          continue;
        }
        const encoding = this.stepBatch(sampler);
        // Issue the starts of turns that may join now, so they land while the loop yields.
        this.admit();
        // Let hooks, cancellations and the server run between steps. When previews were handed to the encoder,
        // give it up to previewGraceMs (a PNG of 64x64 takes well under 1 ms) so they go out before the next step
        // instead of after it; the loop never waits longer than that for an encoding.
        if (encoding.length > 0 && this.o.previewGraceMs > 0) {
          let timer: NodeJS.Timeout | undefined;
          await Promise.race([Promise.all(encoding.map((c) => c.idle())), new Promise<void>((r) => (timer = setTimeout(r, this.o.previewGraceMs)))]);
          clearTimeout(timer);
        } else {
          await yieldToEventLoop();
        }
      } catch (err) {
        // A bug in the engine itself: fail the turns in flight rather than stop serving everyone.
        log.error({ err }, 'engine step loop error; failing the running batch');
        for (const rec of [...this.batch]) this.failRunning(rec, toError(err));
        await yieldToEventLoop();
      }
    }
    for (const rec of this.batch) {
      rec.channel?.close();
      rec.state?.dispose();
      this.turns.delete(rec.turnId);
    }
    this.batch = [];
    log.info({ queued: this.queue.length }, 'step loop stopped for drain');
  }

  private notify(): void {
    this.signalled = true;
    const w = this.wake;
    this.wake = null;
    w?.();
  }

  private waitForWork(): Promise<void> {
    if (this.signalled) return Promise.resolve();
    return new Promise((resolve) => (this.wake = resolve));
  }

  /** Wait until no start is in flight, at most joinWaitMs. */
  private async waitForStarts(): Promise<void> {
    const deadline = performance.now() + this.o.joinWaitMs;
    while (this.starting > 0 && !this.draining) {
      const left = deadline - performance.now();
      if (left <= 0) return;
      this.signalled = false;
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([this.waitForWork(), new Promise<void>((r) => (timer = setTimeout(r, left)))]);
      clearTimeout(timer);
    }
  }

  private capacity(): number {
    return this.o.batching ? this.o.maxBatchSize : 1;
  }

  /** Start turns (round-robin over sessions) while the batch has room. */
  private admit(): void {
    // In samples, as prepareReady counts them (a start in flight counts one: its candidates are not known yet).
    while (this.batchSamples() + this.readyTurns.reduce((n, r) => n + (r.inputs!.candidates ?? 1), 0) + this.starting < this.capacity()) {
      const q = this.queue.next();
      if (!q) return;
      const rec: TurnSlot = {
        ...q, phase: 'starting', cancelRequested: false, startedAt: 0, inputs: null, state: null, channel: null, stepsRun: 0, batchSizeSum: 0, glimpsed: false,
      };
      this.turns.set(q.turnId, rec);
      this.starting++;
      const p = call(() => this.o.hooks.start(q.turnId)).then(
        (inputs) => this.started(rec, inputs),
        (err: unknown) => {
          this.starting--;
          if (this.draining) return this.forget(rec);
          this.end(rec, 'failed', toError(err));
        },
      );
      this.track(p.finally(() => this.notify()));
    }
  }

  private started(rec: TurnSlot, inputs: TurnInputs | null): void {
    this.starting--;
    // Drained meanwhile: the turn is RUNNING in the store and is picked up again at restart.
    if (this.draining) return this.forget(rec);
    if (!inputs) {
      log.info({ turnId: rec.turnId }, 'turn gone before it started');
      return this.forget(rec);
    }
    if (rec.cancelRequested) return this.end(rec, 'cancelled');
    rec.inputs = inputs;
    rec.startedAt = Date.now();
    rec.phase = 'ready';
    this.readyTurns.push(rec);
  }

  /** Samples denoised per step by the batch (a best-of-n turn counts n). */
  private batchSamples(): number {
    return this.batch.reduce((n, r) => n + r.state!.width, 0);
  }

  /**
   * Encode the condition of every newcomer (yielding between them: each is a forward pass of the encoders);
   * a turn whose inputs the model rejects fails alone. maxBatchSize bounds the samples of a step: a best-of-n
   * newcomer that does not fit waits, first in line, while smaller ones behind it may join (admit starts no more
   * turns while it waits, so it is next once the batch has room); into an empty batch any turn fits.
   */
  private async prepareReady(sampler: Sampler): Promise<void> {
    const newcomers = this.readyTurns.splice(0);
    const waiting: TurnSlot[] = [];
    this.preparing = newcomers.length;
    for (const [i, rec] of newcomers.entries()) {
      if (i > 0) await yieldToEventLoop();
      this.preparing = newcomers.length - i;
      // Drained meanwhile: the rest stay RUNNING in the store and are picked up at restart.
      if (this.draining) {
        this.preparing = 0;
        return;
      }
      if (rec.cancelRequested) {
        this.end(rec, 'cancelled');
        continue;
      }
      const inp = rec.inputs!;
      if (this.batch.length > 0 && this.batchSamples() + (inp.candidates ?? 1) > this.capacity()) {
        waiting.push(rec);
        continue;
      }
      try {
        const request = {
          text: inp.text, reference: inp.reference, steps: inp.steps, guidanceScale: inp.guidanceScale,
          icmGuidanceScale: inp.icmGuidanceScale, seed: inp.seed, ...(inp.candidates ? { candidates: inp.candidates } : {}),
          ...(inp.solver ? { solver: inp.solver } : {}),
        };
        const referenceLatent = inp.referenceLatent ?? this.latents.get(inp.reference);
        try {
          rec.state = sampler.prepare({ ...request, ...(referenceLatent ? { referenceLatent } : {}) });
        } catch (err) {
          // A handed-in latent that does not fit this model (a stale shared cache): encode the reference instead.
          if (!referenceLatent) throw err;
          log.warn({ err, turnId: rec.turnId }, 'reference latent refused; encoding the reference');
          rec.state = sampler.prepare(request);
        }
      } catch (err) {
        this.end(rec, 'failed', toError(err));
        continue;
      }
      rec.phase = 'running';
      rec.channel = new ProgressChannel({
        turnId: rec.turnId,
        sessionId: rec.sessionId,
        totalSteps: rec.state.totalSteps,
        emit: (p) => this.o.hooks.progress(p),
        onError: (err) => log.warn({ err, turnId: rec.turnId }, 'progress report failed'),
      });
      this.batch.push(rec);
      log.debug({ turnId: rec.turnId, batch: this.batch.length }, 'turn joined the batch');
    }
    this.readyTurns.unshift(...waiting);
    this.preparing = 0;
    await this.glimpseNewcomers(sampler, this.batch.filter((r) => newcomers.includes(r)));
  }

  /**
   * The first frame of each turn that just joined, before the batch takes its step: the x0 estimate of its first
   * step, computed for the newcomers alone (a small U-Net call; the step then reuses it), so the first glimpse
   * does not wait for a whole batched, best-of-n step. The loop waits (briefly) for its PNG: the step that follows
   * blocks this thread, and the frame would go out only after it.
   */
  private async glimpseNewcomers(sampler: Sampler, joined: TurnSlot[]): Promise<void> {
    const fresh = joined.filter((r) => r.state!.stepIndex === 0);
    if (this.o.previewEvery <= 0 || fresh.length === 0) return;
    let pixels: (tf.Tensor3D | null)[];
    const t0 = performance.now();
    try {
      pixels = sampler.glimpse(fresh.map((r) => r.state!));
    } catch (err) {
      log.warn({ err, turns: fresh.length }, 'first-step glimpse failed; previews start after the step');
      return;
    }
    for (const [i, rec] of fresh.entries()) {
      const p = pixels[i];
      if (!p) continue;
      const x = p.expandDims(0) as tf.Tensor4D;
      const [img] = tensorToImages(x);
      tf.dispose([x, p]);
      // Before any step of this engine, the glimpse's own time stands in for a step's.
      const etaMs = Math.max(1, Math.round(rec.state!.totalSteps * (this.stepMs ?? performance.now() - t0)));
      rec.channel!.step(1, etaMs, img ?? null);
      rec.glimpsed = img !== undefined;
    }
    const encoding = fresh.map((r) => r.channel!).filter((c) => c.busy);
    if (encoding.length === 0) return;
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([Promise.all(encoding.map((c) => c.idle())), new Promise<void>((r) => (timer = setTimeout(r, Math.max(GLIMPSE_GRACE_MS, this.o.previewGraceMs))))]);
    clearTimeout(timer);
  }

  private dropCancelled(): void {
    const keep: TurnSlot[] = [];
    for (const rec of this.batch) {
      if (!rec.cancelRequested) {
        keep.push(rec);
        continue;
      }
      rec.channel?.close();
      rec.state?.dispose();
      this.end(rec, 'cancelled');
    }
    this.batch = keep;
  }

  /** One denoising step for the whole batch (one U-Net call), then results, previews and progress. */
  private stepBatch(sampler: Sampler): ProgressChannel[] {
    const t0 = performance.now();
    try {
      sampler.step(this.batch.map((r) => r.state!));
    } catch (err) {
      // The batched call failed: step the items one by one so only the turns that throw fail. Sampler.step
      // assigns new states only after the whole computation succeeded, so nothing was advanced twice.
      if (this.batch.length === 1) {
        this.failRunning(this.batch[0]!, toError(err));
      } else {
        log.warn({ err, batch: this.batch.length }, 'batched step failed; stepping items one by one');
        for (const rec of [...this.batch]) {
          try {
            sampler.step([rec.state!]);
          } catch (e) {
            this.failRunning(rec, toError(e));
          }
        }
      }
    }
    const ms = performance.now() - t0;
    if (this.batch.length === 0) return [];
    this.stepMs = this.stepMs === null ? ms : STEP_EMA * ms + (1 - STEP_EMA) * this.stepMs;
    const size = this.batch.length;
    if (this.o.onBatch) {
      try {
        this.o.onBatch({
          size,
          samples: this.batchSamples(),
          turnIds: this.batch.map((r) => r.turnId),
          steps: this.batch.map((r) => r.state!.stepIndex),
          stepMs: ms,
        });
      } catch (err) {
        log.warn({ err }, 'onBatch callback threw');
      }
    }
    const keep: TurnSlot[] = [];
    const encoding: ProgressChannel[] = [];
    for (const rec of this.batch) {
      const s = rec.state!;
      rec.stepsRun++;
      rec.batchSizeSum += size;
      if (s.done) {
        this.complete(rec);
        continue;
      }
      keep.push(rec);
      const etaMs = Math.round((s.totalSteps - s.stepIndex) * this.stepMs);
      // Step 1's preview already went out as the glimpse.
      const wantPreview = this.o.previewEvery > 0 && previewAt(s.stepIndex, s.totalSteps, this.o.previewEvery) && !(s.stepIndex === 1 && rec.glimpsed);
      rec.channel!.step(s.stepIndex, etaMs, wantPreview ? this.preview(rec) : null);
      if (rec.channel!.busy) encoding.push(rec.channel!);
    }
    this.batch = keep;
    return encoding;
  }

  /** The predicted x0 as an image (the PNG is encoded later, off the loop). */
  private preview(rec: TurnSlot): RgbImage | null {
    try {
      const x = tf.tidy(() => rec.state!.predX0().expandDims(0) as tf.Tensor4D);
      const [img] = tensorToImages(x);
      x.dispose();
      return img ?? null;
    } catch (err) {
      log.warn({ err, turnId: rec.turnId }, 'preview failed');
      return null;
    }
  }

  private failRunning(rec: TurnSlot, err: Error): void {
    this.batch = this.batch.filter((r) => r !== rec);
    rec.channel?.close();
    rec.state?.dispose();
    this.end(rec, 'failed', err);
  }

  /** The last step is done: take the image, free the state, and record the result off the loop. */
  private complete(rec: TurnSlot): void {
    rec.channel!.close();
    let image: RgbImage;
    let latent: Float32Array;
    try {
      image = rec.state!.result();
      // The next turn's reference is this image (as the PNG stores it: the same 8-bit pixels).
      latent = rec.state!.latent();
      this.latents.set(image, latent);
    } catch (err) {
      rec.state!.dispose();
      return this.end(rec, 'failed', toError(err));
    }
    rec.state!.dispose();
    const timings = {
      queuedMs: rec.startedAt - rec.enqueuedAt,
      runMs: Date.now() - rec.startedAt,
      steps: rec.stepsRun,
      meanBatchSize: rec.stepsRun > 0 ? rec.batchSizeSum / rec.stepsRun : 1,
    };
    rec.phase = 'ending';
    const p = encodePngAsync(image).then(
      (png) => call(() => this.o.hooks.finished(rec.turnId, png, timings, latent)).catch((err: unknown) => log.error({ err, turnId: rec.turnId }, 'hooks.finished failed')),
      (err: unknown) => call(() => this.o.hooks.failed(rec.turnId, toError(err))).catch((e: unknown) => log.error({ err: e, turnId: rec.turnId }, 'hooks.failed failed')),
    );
    this.settle(rec, p);
    log.info({ turnId: rec.turnId, ...timings }, 'turn finished');
  }

  /** Record a turn's end through its hook; the session's next turn may start once the hook has resolved. */
  private end(rec: TurnSlot, how: 'failed' | 'cancelled', err?: Error): void {
    rec.phase = 'ending';
    const h = this.o.hooks;
    const done = call(() => (how === 'failed' ? h.failed(rec.turnId, err!) : h.cancelled(rec.turnId)));
    if (how === 'failed') log.warn({ err, turnId: rec.turnId }, 'turn failed');
    this.settle(rec, done.catch((e: unknown) => log.error({ err: e, turnId: rec.turnId }, `hooks.${how} failed`)));
  }

  private settle(rec: TurnSlot, p: Promise<unknown>): void {
    this.track(
      p.finally(() => {
        this.forget(rec);
        this.notify();
      }),
    );
  }

  /** The turn leaves the engine; its session may run its next turn. */
  private forget(rec: TurnSlot): void {
    this.turns.delete(rec.turnId);
    this.queue.release(rec.sessionId);
  }

  private track(p: Promise<unknown>): void {
    const q = p.catch((err: unknown) => log.error({ err }, 'engine bookkeeping failed'));
    this.pendingHooks.add(q);
    void q.finally(() => this.pendingHooks.delete(q));
  }
}

/** Run a hook so that a synchronous throw becomes a rejection. */
async function call<T>(hook: () => Promise<T>): Promise<T> {
  return hook();
}

function toError(err: unknown): Error {
  return err instanceof Error ? err : new Error(String(err));
}
