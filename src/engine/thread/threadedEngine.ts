/**
 * The generation engine as the main thread sees it when the tensor work runs in a worker thread: the same
 * GenerationEngine interface (enqueue, cancel, status, drain), with the engine itself (ModelRouter -> Engine per
 * model) in src/engine/thread/engineThread.ts. The main thread answers the engine's hook calls (the sessions
 * service and its database live here) and relays progress.
 *
 * A crashed engine thread is restarted and the turns it had are queued again in their original order (a turn
 * that was running when the thread died three times is failed rather than retried forever: it may be what kills
 * it). Hook replies from a dead thread's calls are dropped; a terminal hook that was already under way on this
 * thread (a result being stored) completes, and that turn is not run again.
 */
import { Worker } from 'node:worker_threads';
import { createRequire } from 'node:module';
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { partLogger } from '../../log/index.js';
import type { BackendPreference } from '../../backend/index.js';
import type { BatchInfo, EngineHooks, EngineStatus, GenerationEngine, TurnInputs } from '../types.js';
import type { SharedEngineSettings } from '../modelRouter.js';
import type { EngineThreadData, FromEngineThread, HookCall, ToEngineThread } from './protocol.js';

const log = partLogger('engine');

export interface ThreadedEngineOptions {
  /** Model key -> checkpoint folder; the first key is the default. Models load in the thread on first use. */
  models: Record<string, string>;
  hooks: EngineHooks;
  settings: SharedEngineSettings;
  backend?: BackendPreference;
  /** Called after every denoising step with the batch it ran (on this thread). */
  onBatch?(info: BatchInfo): void;
  /** A turn running in this many crashed threads is failed instead of queued again. Default 3. */
  maxCrashesPerTurn?: number;
}

type Phase = 'queued' | 'started' | 'ending';

/** What this thread knows of a turn it handed to the engine thread. */
interface HandedTurn {
  sessionId: string;
  model: string | undefined;
  phase: Phase;
  /** Engine threads that died while this turn was started in them. */
  crashes: number;
}

export class ThreadedEngine implements GenerationEngine {
  /** Turns handed over and not yet ended, in enqueue order (a Map keeps insertion order). */
  private readonly turns = new Map<string, HandedTurn>();
  private worker: Worker | null = null;
  /** Incarnation of the engine thread; replies to an older one's calls are dropped. */
  private generation = 0;
  private snapshot: EngineStatus;
  private draining = false;
  private drainPromise: Promise<void> | null = null;
  private drained: (() => void) | null = null;
  private readonly readyPromise: Promise<void>;
  private markReady: (() => void) | null = null;
  private failReady: ((e: Error) => void) | null = null;
  private restarts = 0;
  private everReady = false;
  private lastError: Error | null = null;
  private readonly maxCrashes: number;

  constructor(private readonly o: ThreadedEngineOptions) {
    if (Object.keys(o.models).length === 0) throw new Error('ThreadedEngine: no models to serve');
    this.maxCrashes = o.maxCrashesPerTurn ?? 3;
    this.snapshot = {
      backend: 'starting', device: 'none', threads: 0, model: 'loading', models: [], queueLength: 0, busy: false,
      running: 0, batching: o.settings.batching, maxBatchSize: o.settings.maxBatchSize, stepMs: null,
    };
    this.readyPromise = new Promise<void>((resolve, reject) => {
      this.markReady = resolve;
      this.failReady = reject;
    });
    this.readyPromise.catch(() => undefined);
    this.spawn();
  }

  /** Resolves when the engine thread has its tensor backend (models load later, on their first turn). */
  ready(): Promise<void> {
    return this.readyPromise;
  }

  /** Thread id of the current engine thread (null between a crash and its restart). */
  get threadId(): number | null {
    return this.worker?.threadId ?? null;
  }

  /** Engine threads started after a crash so far. */
  get restartCount(): number {
    return this.restarts;
  }

  enqueue(sessionId: string, turnId: string, model?: string): void {
    if (this.draining) {
      log.warn({ turnId, sessionId }, 'enqueue after drain ignored');
      return;
    }
    if (this.turns.has(turnId)) return;
    this.turns.set(turnId, { sessionId, model, phase: 'queued', crashes: 0 });
    this.send({ kind: 'enqueue', sessionId, turnId, model });
  }

  cancel(turnId: string): boolean {
    if (this.draining) return false;
    const t = this.turns.get(turnId);
    if (!t || t.phase === 'ending') return false;
    this.send({ kind: 'cancel', turnId });
    return true;
  }

  status(): EngineStatus {
    // The queue length is this thread's own count, so it is exact the moment a turn is enqueued; the rest is the
    // engine thread's latest snapshot.
    let queued = 0;
    for (const t of this.turns.values()) if (t.phase === 'queued') queued++;
    return { ...this.snapshot, queueLength: queued, busy: this.snapshot.busy || this.turns.size > 0 };
  }

  drain(): Promise<void> {
    this.drainPromise ??= (async () => {
      this.draining = true;
      if (this.worker) {
        await new Promise<void>((resolve) => {
          this.drained = resolve;
          this.send({ kind: 'drain' });
        });
      }
      const w = this.worker;
      this.worker = null;
      await w?.terminate();
      log.info('engine drained');
    })();
    return this.drainPromise;
  }

  /**
   * Fault injection: end the engine thread as a crash would (tests and drills). It is restarted and its turns are
   * queued again, exactly as after a real crash.
   */
  async crashThread(): Promise<void> {
    await this.worker?.terminate();
  }

  private send(m: ToEngineThread): void {
    // Between a crash and the restart there is no thread; the restart re-sends every unfinished turn.
    this.worker?.postMessage(m);
  }

  private spawn(): void {
    const gen = ++this.generation;
    const data: EngineThreadData = { models: this.o.models, settings: this.o.settings, backend: this.o.backend ?? 'auto' };
    const worker = startEngineThread(data);
    this.worker = worker;
    worker.on('message', (m: FromEngineThread) => this.onMessage(gen, m));
    worker.on('error', (err) => {
      this.lastError = err;
      log.error({ err }, 'engine thread error');
    });
    worker.on('exit', (code) => this.onExit(gen, code));
  }

  private onMessage(gen: number, m: FromEngineThread): void {
    if (gen !== this.generation) return;
    switch (m.kind) {
      case 'ready':
        this.snapshot = m.status;
        this.everReady = true;
        this.markReady?.();
        return;
      case 'fatal':
        this.failReady?.(new Error(m.message));
        return;
      case 'status':
        this.snapshot = m.status;
        return;
      case 'batch':
        this.o.onBatch?.(m.info);
        return;
      case 'progress':
        if (this.turns.get(m.turnId)?.phase !== 'started') return;
        this.o.hooks.progress({
          turnId: m.turnId, sessionId: m.sessionId, step: m.step, totalSteps: m.totalSteps, etaMs: m.etaMs,
          previewPng: m.previewPng ? Buffer.from(m.previewPng.buffer, m.previewPng.byteOffset, m.previewPng.byteLength) : null,
        });
        return;
      case 'call':
        void this.answer(gen, m);
        return;
      case 'drained':
        this.drained?.();
        return;
    }
  }

  /** Run a hook the engine thread called and send its reply. */
  private async answer(gen: number, c: HookCall): Promise<void> {
    const t = this.turns.get(c.turnId);
    const h = this.o.hooks;
    try {
      let inputs: TurnInputs | null | undefined;
      if (c.hook === 'start') {
        inputs = await h.start(c.turnId);
        if (gen === this.generation && t && t.phase === 'queued') {
          if (inputs) t.phase = 'started';
          else this.turns.delete(c.turnId); // gone: nothing to re-run
        }
      } else {
        if (t) t.phase = 'ending';
        try {
          if (c.hook === 'finished') await h.finished(c.turnId, Buffer.from(c.png.buffer, c.png.byteOffset, c.png.byteLength), c.timings);
          else if (c.hook === 'failed') await h.failed(c.turnId, new Error(c.message));
          else await h.cancelled(c.turnId);
        } finally {
          this.turns.delete(c.turnId);
        }
      }
      if (gen === this.generation) this.worker?.postMessage({ kind: 'reply', callId: c.callId, ok: true, inputs } satisfies ToEngineThread);
    } catch (err) {
      if (gen === this.generation) {
        this.worker?.postMessage({ kind: 'reply', callId: c.callId, ok: false, message: err instanceof Error ? err.message : String(err) } satisfies ToEngineThread);
      }
    }
  }

  private onExit(gen: number, code: number): void {
    if (gen !== this.generation) return;
    this.worker = null;
    if (this.draining) {
      this.drained?.();
      return;
    }
    if (!this.everReady) {
      // It never came up (no backend, a broken install): restarting would only loop. ready() says why.
      const why = this.lastError ? `: ${this.lastError.message}` : '';
      this.failReady?.(new Error(`the engine thread exited with code ${code} before it was ready${why}`));
      return;
    }
    log.error({ code, turns: this.turns.size }, 'engine thread died; restarting it');
    const again: string[] = [];
    for (const [turnId, t] of this.turns) {
      if (t.phase === 'ending') continue;
      if (t.phase === 'started') t.crashes++;
      if (t.crashes >= this.maxCrashes) {
        t.phase = 'ending';
        const err = new Error(`The generation engine crashed ${t.crashes} times while running this turn; it was given up.`);
        void this.o.hooks.failed(turnId, err).catch((e: unknown) => log.error({ err: e, turnId }, 'hooks.failed failed')).finally(() => this.turns.delete(turnId));
        continue;
      }
      t.phase = 'queued';
      again.push(turnId);
    }
    // Back off when it keeps dying (0.1 s, 0.2 s, ... up to 5 s); a thread that lived a while resets nothing: the
    // delay is only there so a crash loop cannot spin the CPU.
    const delay = Math.min(5000, 100 * 2 ** Math.min(this.restarts, 6));
    this.restarts++;
    setTimeout(() => {
      if (this.draining) return;
      this.spawn();
      for (const turnId of again) {
        const t = this.turns.get(turnId);
        if (t && t.phase === 'queued') this.send({ kind: 'enqueue', sessionId: t.sessionId, turnId, model: t.model });
      }
    }, delay).unref();
  }
}

/**
 * Start the engine thread. Built code runs engineThread.js; from TypeScript sources (tsx, vitest) the worker
 * loads engineThread.ts through tsx's loader, because a worker does not inherit the parent's module hooks.
 */
function startEngineThread(data: EngineThreadData): Worker {
  const here = import.meta.url;
  if (!/\.ts($|\?)/.test(here)) return new Worker(new URL('./engineThread.js', here), { workerData: data });
  const entry = new URL('./engineThread.ts', here).href;
  const tsxApi = tsxEsmApi(here);
  const boot = `import(${JSON.stringify(tsxApi)}).then(({ tsImport }) => tsImport(${JSON.stringify(entry)}, ${JSON.stringify(entry)}));`;
  return new Worker(boot, { eval: true, workerData: data });
}

/** URL of tsx's ESM API (`tsx/esm/api` under the import condition), found through its package.json exports. */
function tsxEsmApi(from: string): string {
  const pkgJson = createRequire(from).resolve('tsx/package.json');
  const pkg = JSON.parse(readFileSync(pkgJson, 'utf8')) as { exports: Record<string, { import?: { default?: string } }> };
  const rel = pkg.exports['./esm/api']?.import?.default;
  if (!rel) throw new Error('tsx has no ESM API export (./esm/api); run the built server (npm start) instead');
  return pathToFileURL(join(dirname(pkgJson), rel)).href;
}
