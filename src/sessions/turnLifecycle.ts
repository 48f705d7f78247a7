/**
 * A turn's life after it was queued, as the engine drives it: the EngineHooks (start, progress, finished, failed,
 * cancelled), ending an active turn (cancel, failure), and start-up and drain (resume, mayStart, stopAccepting,
 * suspendRunning).
 */
import { decodePng } from '../data/index.js';
import { partLogger } from '../log/index.js';
import type { SessionsCore } from './core.js';
import type { EngineHooks, TurnInputs, TurnProgressReport } from './engineContract.js';
import { newId, sha256 } from './ids.js';
import { pngDataUrl, pngSize } from './pngBytes.js';
import { ACTIVE, IMAGE_META, type TurnRecord, type TurnProgressFrame } from './records.js';
import { previewKey, progressTopic, RETAIN_PREVIEW_MS } from './topics.js';
import { isSolverName } from './validation.js';

const log = partLogger('sessions');

export class TurnLifecycle implements EngineHooks {
  /** Next progress frame number per running turn. */
  private readonly sequences = new Map<string, number>();
  /** Model key of each turn this process started (where its result's latent is filed). */
  private readonly turnModels = new Map<string, string>();
  /** Turns this process marked RUNNING (put back to QUEUED on drain). */
  private readonly running = new Set<string>();

  constructor(private readonly core: SessionsCore) {}

  async start(turnId: string): Promise<TurnInputs | null> {
    const { db, writes } = this.core;
    const r = await writes.run(() =>
      db.$transaction(async (tx) => {
        const t = await tx.turn.findUnique({ where: { id: turnId } });
        if (!t || !ACTIVE.includes(t.status)) return null;
        // Reference: the result of the nearest succeeded ancestor (failed/cancelled parents are skipped), else the
        // session's background.
        let refId: string | null = null;
        for (let p = t.parentTurnId; p && !refId; ) {
          const parent: TurnRecord | null = await tx.turn.findUnique({ where: { id: p } });
          if (!parent) break;
          if (parent.status === 'SUCCEEDED' && parent.resultImageId) refId = parent.resultImageId;
          p = parent.parentTurnId;
        }
        const s = await tx.drawingSession.findUniqueOrThrow({ where: { id: t.sessionId }, select: { backgroundImageId: true, dataset: true } });
        refId ??= s.backgroundImageId;
        const startedAt = new Date();
        const turn = await tx.turn.update({
          where: { id: turnId },
          data: { status: 'RUNNING', startedAt, referenceImageId: refId, error: null },
        });
        const ref = await tx.generatedImage.findUniqueOrThrow({ where: { id: refId }, select: { png: true, sha256: true } });
        return { turn, png: Buffer.from(ref.png), refSha256: ref.sha256, dataset: s.dataset };
      }),
    );
    if (!r) return null;
    this.running.add(turnId);
    // A turn started again (its engine thread crashed) keeps numbering its frames where it was.
    if (!this.sequences.has(turnId)) this.sequences.set(turnId, 0);
    this.core.emit({ kind: 'TURN_STARTED', sessionId: r.turn.sessionId, turn: r.turn });
    const t = r.turn;
    const model = this.core.modelFor(r.dataset);
    this.turnModels.set(turnId, model.key);
    const referenceLatent = (await this.core.opts.latents?.get(model.key, r.refSha256)) ?? null;
    return {
      ...(referenceLatent ? { referenceLatent } : {}),
      turnId,
      sessionId: t.sessionId,
      text: t.text,
      reference: await decodePng(r.png, model.canvasSize),
      steps: t.steps,
      guidanceScale: t.guidanceScale,
      icmGuidanceScale: t.icmGuidanceScale,
      candidates: t.candidates,
      seed: t.seed,
      // Checked when submitted; null: the model's default.
      ...(t.solver && isSolverName(t.solver) ? { solver: t.solver } : {}),
    };
  }

  progress(p: TurnProgressReport): void {
    const seq = this.sequences.get(p.turnId);
    if (seq === undefined) return; // cancelled or unknown: no frames after the lifecycle event
    this.sequences.set(p.turnId, seq + 1);
    const frame: TurnProgressFrame = {
      turnId: p.turnId,
      sessionId: p.sessionId,
      sequence: seq,
      step: p.step,
      totalSteps: p.totalSteps,
      etaMs: Math.max(0, Math.round(p.etaMs)),
      preview: p.previewPng ? pngDataUrl(p.previewPng) : null,
      final: false,
      image: null,
      at: new Date(),
    };
    this.core.pubsub.publish(progressTopic(p.sessionId), frame);
    if (frame.preview) this.core.pubsub.retain(previewKey(p.turnId), frame, RETAIN_PREVIEW_MS);
  }

  async finished(turnId: string, png: Buffer, timings: { queuedMs: number; runMs: number }, latent?: Float32Array): Promise<void> {
    const { db, writes, pubsub } = this.core;
    const modelKey = this.turnModels.get(turnId);
    this.turnModels.delete(turnId);
    // Before the result is visible: a next turn that starts at once finds its reference's latent.
    if (latent && modelKey && this.core.opts.latents) await this.core.opts.latents.set(modelKey, sha256(png), latent);
    const { width, height } = pngSize(png);
    const r = await writes.run(() =>
      db.$transaction(async (tx) => {
        const t = await tx.turn.findUnique({ where: { id: turnId } });
        if (!t || !ACTIVE.includes(t.status)) return null; // cancelled meanwhile: the result is dropped
        const imageId = newId();
        const image = await tx.generatedImage.create({
          data: {
            id: imageId,
            sessionId: t.sessionId,
            width,
            height,
            png: new Uint8Array(png),
            byteLength: png.length,
            sha256: sha256(png),
          },
          select: IMAGE_META,
        });
        const turn = await tx.turn.update({
          where: { id: turnId },
          data: {
            status: 'SUCCEEDED',
            resultImageId: imageId,
            finishedAt: new Date(),
            queuedMs: Math.round(timings.queuedMs),
            runMs: Math.round(timings.runMs),
          },
        });
        return { turn, image };
      }),
    );
    const seq = this.sequences.get(turnId);
    this.sequences.delete(turnId);
    this.running.delete(turnId);
    pubsub.forget(previewKey(turnId));
    if (!r) return;
    const frame: TurnProgressFrame = {
      turnId,
      sessionId: r.turn.sessionId,
      sequence: seq ?? 0,
      step: r.turn.steps,
      totalSteps: r.turn.steps,
      etaMs: 0,
      preview: null,
      final: true,
      image: r.image,
      at: new Date(),
    };
    pubsub.publish(progressTopic(r.turn.sessionId), frame);
    this.core.emit({ kind: 'TURN_FINISHED', sessionId: r.turn.sessionId, turn: r.turn });
  }

  async failed(turnId: string, error: Error): Promise<void> {
    log.warn({ turnId, err: error }, 'turn failed');
    await this.finish(turnId, 'FAILED', error.message || String(error));
  }

  async cancelled(turnId: string): Promise<void> {
    await this.finish(turnId, 'CANCELLED', null);
  }

  /**
   * Move an active turn to a terminal status (and the head back to its parent if it was the head).
   * Returns null when the turn was not active (already finished: nothing written).
   */
  async finish(turnId: string, status: 'CANCELLED' | 'FAILED', error: string | null): Promise<TurnRecord | null> {
    const r = await this.core.writes.run(() =>
      this.core.db.$transaction(async (tx) => {
        const t = await tx.turn.findUnique({ where: { id: turnId } });
        if (!t || !ACTIVE.includes(t.status)) return null;
        const finishedAt = new Date();
        const turn = await tx.turn.update({
          where: { id: turnId },
          data: {
            status,
            error,
            finishedAt,
            runMs: t.startedAt ? finishedAt.getTime() - t.startedAt.getTime() : null,
            queuedMs: t.startedAt ? t.startedAt.getTime() - t.createdAt.getTime() : finishedAt.getTime() - t.createdAt.getTime(),
          },
        });
        const s = await tx.drawingSession.findUniqueOrThrow({ where: { id: t.sessionId } });
        let headMoved = false;
        if (s.headTurnId === turnId) {
          await tx.drawingSession.update({ where: { id: s.id }, data: { headTurnId: t.parentTurnId } });
          headMoved = true;
        }
        return { turn, headMoved };
      }),
    );
    if (!r) return null;
    this.running.delete(turnId);
    this.sequences.delete(turnId);
    this.core.emit({ kind: status === 'CANCELLED' ? 'TURN_CANCELLED' : 'TURN_FAILED', sessionId: r.turn.sessionId, turn: r.turn });
    if (r.headMoved) this.core.emit({ kind: 'HEAD_MOVED', sessionId: r.turn.sessionId, headTurnId: r.turn.parentTurnId });
    return r.turn;
  }

  /**
   * At start: nobody is online, and QUEUED and RUNNING turns are queued again in their original order. With
   * `shared` (scale-out: other servers and workers are live) nothing is reset, since other servers hold the
   * subscriptions and workers run the RUNNING turns; unfinished turns are only handed to the queue again, which
   * ignores those it already has.
   */
  async resume(opts: { shared?: boolean } = {}): Promise<number> {
    const { db, writes } = this.core;
    const engine = this.core.requireEngine();
    if (!opts.shared) {
      await writes.run(async () => {
        await db.participant.updateMany({ where: { online: true }, data: { online: false } });
        await db.turn.updateMany({ where: { status: 'RUNNING' }, data: { status: 'QUEUED', startedAt: null } });
      });
    }
    const turns = await db.turn.findMany({
      where: { status: { in: ACTIVE } },
      orderBy: { queueSeq: 'asc' },
      select: { id: true, sessionId: true, session: { select: { dataset: true } } },
    });
    // A dataset this server no longer serves: the engine fails the turn with that reason.
    for (const t of turns) engine.enqueue(t.sessionId, t.id, this.core.opts.models[t.session.dataset]?.key ?? `unserved:${t.session.dataset}`);
    if (turns.length) log.info({ turns: turns.length }, 'resumed queued turns');
    return turns.length;
  }

  /**
   * Whether a turn may start now (scale-out workers ask before running a job): 'later' while its session has an
   * earlier unfinished turn, 'gone' once it has ended or does not exist.
   */
  async mayStart(turnId: string, sessionId: string): Promise<'now' | 'later' | 'gone'> {
    const { db } = this.core;
    const t = await db.turn.findUnique({ where: { id: turnId }, select: { status: true, queueSeq: true } });
    if (!t || !ACTIVE.includes(t.status)) return 'gone';
    const ahead = await db.turn.count({ where: { sessionId, status: { in: ACTIVE }, queueSeq: { lt: t.queueSeq } } });
    return ahead > 0 ? 'later' : 'now';
  }

  /** Refuse new turns (drain has begun). */
  stopAccepting(): void {
    this.core.accepting = false;
  }

  /** After the engine drained: turns it was running go back to QUEUED so the next start picks them up. */
  async suspendRunning(): Promise<number> {
    const ids = [...this.running];
    this.running.clear();
    this.sequences.clear();
    if (!ids.length) return 0;
    const r = await this.core.writes.run(() =>
      this.core.db.turn.updateMany({
        where: { id: { in: ids }, status: 'RUNNING' },
        data: { status: 'QUEUED', startedAt: null },
      }),
    );
    return r.count;
  }
}
