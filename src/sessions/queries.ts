/**
 * Reads: sessions, turns, images, messages, a turn's queue position and latest preview, the canvas, the engine's
 * status. Root reads check membership; nested ones are reached only through a root read that did.
 */
import type { SessionsCore } from './core.js';
import { DomainError } from './errors.js';
import { hashToken } from './ids.js';
import { pngDataUrl } from './pngBytes.js';
import {
  ACTIVE, IMAGE_META, type DrawingSession, type EngineStatusRecord, type ImageRecord, type MessageRecord, type ServedModelRecord,
  type SessionRecord, type TurnProgressFrame, type TurnRecord,
} from './records.js';
import { previewKey } from './topics.js';
import { clampLast } from './validation.js';

export class SessionQueries {
  constructor(private readonly core: SessionsCore) {}

  /** Is this token known at all (joined some session, even one it left)? */
  async tokenExists(token: string): Promise<boolean> {
    const p = await this.core.db.participant.findFirst({ where: { tokenHash: hashToken(token) }, select: { id: true } });
    return p !== null;
  }

  async getSession(tokenHash: string | null, sessionId: string): Promise<SessionRecord> {
    const me = await this.core.requireMember(tokenHash, sessionId);
    return this.core.sessionFor(me);
  }

  async listSessions(tokenHash: string | null): Promise<SessionRecord[]> {
    if (!tokenHash) throw new DomainError('UNAUTHENTICATED', 'Send the bearer token you got from joinSession.');
    const mine = await this.core.db.participant.findMany({
      where: { tokenHash, leftAt: null },
      include: { session: true },
      orderBy: { session: { createdAt: 'desc' } },
    });
    return mine.map(({ session, ...p }) => ({ ...session, viewerId: p.id }));
  }

  async getTurn(tokenHash: string | null, turnId: string): Promise<TurnRecord> {
    const t = await this.core.db.turn.findUnique({ where: { id: turnId } });
    if (!t) throw new DomainError('NOT_FOUND', 'No such turn.', { turnId });
    await this.core.requireMember(tokenHash, t.sessionId);
    return t;
  }

  async getImage(tokenHash: string | null, imageId: string): Promise<ImageRecord> {
    const img = await this.core.db.generatedImage.findUnique({ where: { id: imageId }, select: IMAGE_META });
    if (!img || !img.sessionId) throw new DomainError('NOT_FOUND', 'No such image.', { imageId });
    await this.core.requireMember(tokenHash, img.sessionId);
    return img;
  }

  /** The PNG bytes of an image the caller may read (HTTP route and data URLs). */
  async imagePng(tokenHash: string | null, imageId: string): Promise<{ png: Buffer; sha256: string }> {
    const img = await this.core.db.generatedImage.findUnique({ where: { id: imageId }, select: { sessionId: true, png: true, sha256: true } });
    if (!img || !img.sessionId) throw new DomainError('NOT_FOUND', 'No such image.', { imageId });
    await this.core.requireMember(tokenHash, img.sessionId);
    return { png: Buffer.from(img.png), sha256: img.sha256 };
  }

  /** The PNG of an image already authorised through its parent object (no second membership check). */
  async dataUrl(imageId: string): Promise<string> {
    const { maxDataUrlBytes } = this.core.config.limits;
    const img = await this.core.db.generatedImage.findUniqueOrThrow({ where: { id: imageId }, select: { png: true } });
    if (img.png.length > maxDataUrlBytes) {
      throw new DomainError('BAD_USER_INPUT', `The image is ${img.png.length} bytes; data URLs stop at ${maxDataUrlBytes}. Fetch its url instead.`);
    }
    return pngDataUrl(img.png);
  }

  imageMeta(imageId: string): Promise<ImageRecord> {
    return this.core.db.generatedImage.findUniqueOrThrow({ where: { id: imageId }, select: IMAGE_META });
  }

  async imageMetaOrNull(imageId: string | null): Promise<ImageRecord | null> {
    return imageId ? this.imageMeta(imageId) : null;
  }

  async messages(sessionId: string, last: number): Promise<MessageRecord[]> {
    const rows = await this.core.db.message.findMany({
      where: { sessionId },
      orderBy: [{ createdAt: 'desc' }, { id: 'desc' }],
      take: clampLast(last),
    });
    return rows.reverse();
  }

  async turns(sessionId: string, last: number): Promise<TurnRecord[]> {
    const rows = await this.core.db.turn.findMany({ where: { sessionId }, orderBy: { index: 'desc' }, take: clampLast(last) });
    return rows.reverse();
  }

  turnById(id: string | null): Promise<TurnRecord | null> {
    return id ? this.core.db.turn.findUnique({ where: { id } }) : Promise.resolve(null);
  }

  /** The latest preview of a turn still running (retained by whichever server or worker runs it). */
  async latestPreview(t: TurnRecord): Promise<TurnProgressFrame | null> {
    if (t.status !== 'RUNNING') return null;
    return this.core.pubsub.recall<TurnProgressFrame>(previewKey(t.id));
  }

  /** Active turns of the same session ahead of this one; null once the turn is finished. */
  async queuePosition(t: TurnRecord): Promise<number | null> {
    const now = await this.core.db.turn.findUnique({ where: { id: t.id }, select: { status: true } });
    if (!now || !ACTIVE.includes(now.status)) return null;
    return this.core.db.turn.count({
      where: { sessionId: t.sessionId, status: { in: ACTIVE }, queueSeq: { lt: t.queueSeq } },
    });
  }

  /** The current canvas: the nearest succeeded turn from the head back, else the background. */
  async canvas(s: DrawingSession): Promise<ImageRecord> {
    for (let id = s.headTurnId; id; ) {
      const t: TurnRecord | null = await this.core.db.turn.findUnique({ where: { id } });
      if (!t) break;
      if (t.status === 'SUCCEEDED' && t.resultImageId) return this.imageMeta(t.resultImageId);
      id = t.parentTurnId;
    }
    return this.imageMeta(s.backgroundImageId);
  }

  engineStatus(): EngineStatusRecord {
    const { models: engineModels, ...s } = this.core.requireEngine().status();
    const byKey = new Map((engineModels ?? []).map((m) => [m.key, m]));
    const served = new Map<string, ServedModelRecord>();
    for (const [dataset, m] of Object.entries(this.core.opts.models)) {
      if (!m) continue;
      const known = served.get(m.key);
      if (known) {
        known.datasets.push(dataset);
        continue;
      }
      const e = byKey.get(m.key);
      served.set(m.key, {
        key: m.key, name: m.name, loaded: e?.loaded ?? false, queueLength: e?.queueLength ?? 0, running: e?.running ?? 0,
        stepMs: e?.stepMs ?? null, datasets: [dataset], canvasSize: m.canvasSize, turnDefaults: m.turnDefaults,
      });
    }
    return {
      ...s,
      // The served models' names from their checkpoints, known before (and whether or not) they are loaded.
      model: [...new Set([...served.values()].map((m) => m.name))].join(', '),
      batching: this.core.config.batching,
      maxBatchSize: this.core.config.maxBatchSize,
      turnDefaults: this.core.modelFor(this.core.defaultDataset()).turnDefaults,
      models: [...served.values()],
    };
  }
}
