/**
 * The domain service: drawing sessions, participants, messages, turns and images over Prisma, and the engine's
 * hooks. Resolvers are thin calls into this; every rule (roles, limits, branching) lives here.
 *
 * Writes are serialised through one async mutex and each operation's writes happen in one transaction, so a
 * refused operation writes nothing and concurrent submissions cannot overshoot the per-session queue limit.
 */
import crypto from 'node:crypto';
import type { Config, TurnSettings } from '../config/index.js';
import { checkPng, decodePng, PngCheckError, type RgbImage } from '../data/index.js';
import { partLogger } from '../log/index.js';
import type { Db } from './db.js';
import type { EngineHooks, EngineStatusInfo, GenerationEngine, ModelStatusInfo, TurnInputs, TurnProgressReport } from './engineContract.js';
import { DomainError } from './errors.js';
import type { PubSub, Subscription } from './events.js';
import type { LatentStore } from './latentStore.js';
import type {
  DrawingSession,
  GeneratedImage,
  Invite,
  Message,
  Participant,
  Role,
  Turn,
  TurnStatus,
} from '../generated/prisma/client.js';

const log = partLogger('sessions');

export type ParticipantRecord = Participant;
export type MessageRecord = Message;
export type TurnRecord = Turn;
/** An invite code's row; `code` is set only in createInvite's answer (the database keeps its hash). */
export type InviteRecord = Omit<Invite, 'codeHash'> & { code: string | null };
/** Image metadata (the PNG bytes are loaded only when asked for). */
export type ImageRecord = Omit<GeneratedImage, 'png'>;
/** A session as seen by one of its participants (`viewerId`). */
export type SessionRecord = DrawingSession & { viewerId: string };
export type { Role, TurnStatus };

export interface JoinResult {
  session: SessionRecord;
  participant: ParticipantRecord;
  token: string;
}

export type SessionEventKind =
  | 'PARTICIPANT_JOINED'
  | 'PARTICIPANT_LEFT'
  | 'PARTICIPANT_ONLINE'
  | 'PARTICIPANT_OFFLINE'
  | 'MESSAGE'
  | 'TURN_QUEUED'
  | 'TURN_STARTED'
  | 'TURN_FINISHED'
  | 'TURN_FAILED'
  | 'TURN_CANCELLED'
  | 'HEAD_MOVED';

/** A lifecycle event as published (mapped to the GraphQL SessionEvent). */
export type SessionEventRecord = SessionEvent;

export interface SessionEvent {
  kind: SessionEventKind;
  sessionId: string;
  at: Date;
  participant?: ParticipantRecord | null;
  message?: MessageRecord | null;
  turn?: TurnRecord | null;
  headTurnId?: string | null;
}

export interface TurnProgressFrame {
  turnId: string;
  sessionId: string;
  sequence: number;
  step: number;
  totalSteps: number;
  etaMs: number;
  /** PNG data URL of the predicted x0. */
  preview: string | null;
  final: boolean;
  image: ImageRecord | null;
  /** When the frame was published. */
  at: Date;
}

/** A served model as `engineStatus` reports it: the engine's view plus the datasets it renders and their settings. */
export type ServedModelRecord = ModelStatusInfo & { datasets: string[]; canvasSize: number; turnDefaults: TurnSettings };

/** What `engineStatus` reports: the engine's status with the batching settings always present. */
export type EngineStatusRecord = Omit<EngineStatusInfo, 'batching' | 'maxBatchSize' | 'models'> & {
  batching: boolean;
  maxBatchSize: number;
  /** Of the default dataset's model. */
  turnDefaults: TurnSettings;
  models: ServedModelRecord[];
};

/** The model that renders one dataset's sessions, as the sessions service needs to know it. */
export interface SessionModel {
  /** The key the engine knows the model by (turns are enqueued with it). */
  key: string;
  /** Shown on sessions (`DrawingSession.model`). */
  name: string;
  /** Side of the square canvas the model draws. */
  canvasSize: number;
  /** Settings of a turn that sets none (resolveTurnDefaults: configuration, then the model's recommendation). */
  turnDefaults: TurnSettings;
}

export interface CreateSessionInput {
  title: string;
  name: string;
  dataset?: string | null;
  allowDrawerTurns?: boolean | null;
  backgroundPng?: string | null;
}

export interface JoinSessionInput {
  sessionId: string;
  name: string;
  role: Role;
  /** An invite code for `role`, created by a teller of the session. */
  invite: string;
}

export interface CreateInviteInput {
  sessionId: string;
  role: Role;
  /** Seconds until the code stops working (null: no expiry). */
  expiresInSeconds?: number | null;
  /** Joins the code allows (null: no limit). */
  maxUses?: number | null;
}

export interface SubmitTurnInput {
  sessionId: string;
  instruction: string;
  steps?: number | null;
  guidanceScale?: number | null;
  icmGuidanceScale?: number | null;
  candidates?: number | null;
  seed?: number | null;
}

export interface SessionsServiceOptions {
  db: Db;
  pubsub: PubSub;
  config: Config;
  /** Dataset -> the model that renders its sessions; only these datasets can have new sessions. */
  models: Partial<Record<string, SessionModel>>;
  /** The empty canvas of a dataset. */
  background(dataset: string, size: number): RgbImage;
  encodePng(image: RgbImage): Buffer;
  /** Results' latents shared across generation workers (scale-out); none: each engine keeps its own. */
  latents?: LatentStore;
}

export const sessionTopic = (sessionId: string): string => `session:${sessionId}`;
export const progressTopic = (sessionId: string): string => `progress:${sessionId}`;
/** Retained latest preview of a running turn. */
const previewKey = (turnId: string): string => `preview:${turnId}`;
const RETAIN_PREVIEW_MS = 10 * 60_000;

const ACTIVE: TurnStatus[] = ['QUEUED', 'RUNNING'];
/** Longest an invite may stay valid, and most joins one may allow. */
const MAX_INVITE_SECONDS = 30 * 24 * 3600;
const MAX_INVITE_USES = 10_000;
/** A lone UTF-16 surrogate (paired ones form one code point under the u flag): not text, and not storable. */
const LONE_SURROGATE = /\p{Cs}/u;
const IMAGE_META = {
  id: true,
  sessionId: true,
  width: true,
  height: true,
  byteLength: true,
  sha256: true,
  createdAt: true,
} as const;

export function hashToken(token: string): string {
  return crypto.createHash('sha256').update(token).digest('hex');
}

function newToken(): string {
  return crypto.randomBytes(32).toString('base64url');
}

function newInviteCode(): string {
  return crypto.randomBytes(16).toString('base64url');
}

function inviteRecord({ codeHash: _hash, ...row }: Invite, code: string | null = null): InviteRecord {
  return { ...row, code };
}

function newId(): string {
  return crypto.randomUUID();
}

/** Width and height from a PNG's IHDR chunk. */
function pngSize(png: Buffer): { width: number; height: number } {
  if (png.length < 24 || png.readUInt32BE(12) !== 0x49484452) throw new Error('not a PNG');
  return { width: png.readUInt32BE(16), height: png.readUInt32BE(20) };
}

export function pngDataUrl(png: Buffer | Uint8Array): string {
  return `data:image/png;base64,${Buffer.from(png).toString('base64')}`;
}

/** A FIFO async mutex. */
class Mutex {
  private tail: Promise<unknown> = Promise.resolve();
  run<T>(fn: () => Promise<T>): Promise<T> {
    const result = this.tail.then(fn, fn);
    this.tail = result.catch(() => undefined);
    return result;
  }
}

export class SessionsService implements EngineHooks {
  private readonly db: Db;
  private readonly pubsub: PubSub;
  private readonly config: Config;
  private engine: GenerationEngine | null = null;
  private readonly writes = new Mutex();
  /** Next progress frame number per running turn. */
  private readonly sequences = new Map<string, number>();
  /** Live subscriptions per participant (online while > 0). */
  private readonly connections = new Map<string, number>();
  /** Live subscriptions per participant. */
  private readonly live = new Map<string, Set<Subscription<unknown>>>();
  /** Model key of each turn this process started (where its result's latent is filed). */
  private readonly turnModels = new Map<string, string>();
  /** Turns this process marked RUNNING (put back to QUEUED on drain). */
  private readonly running = new Set<string>();
  private accepting = true;

  constructor(private readonly opts: SessionsServiceOptions) {
    this.db = opts.db;
    this.pubsub = opts.pubsub;
    this.config = opts.config;
  }

  attachEngine(engine: GenerationEngine): void {
    this.engine = engine;
  }

  private requireEngine(): GenerationEngine {
    if (!this.engine) throw new Error('no engine attached');
    return this.engine;
  }

  /** The dataset a session gets when it names none: i-CLEVR when served, else the first served one. */
  private defaultDataset(): string {
    return this.opts.models.iclevr ? 'iclevr' : Object.keys(this.opts.models)[0]!;
  }

  /** The model of a dataset's sessions. */
  private modelFor(dataset: string): SessionModel {
    const m = this.opts.models[dataset];
    if (!m) {
      throw new DomainError('INVALID_STATE', `This server serves no model for "${dataset}" sessions (served: ${Object.keys(this.opts.models).join(', ')}).`, { dataset });
    }
    return m;
  }

  // ---------------------------------------------------------------- auth

  /** Is this token known at all (joined some session, even one it left)? */
  async tokenExists(token: string): Promise<boolean> {
    const p = await this.db.participant.findFirst({ where: { tokenHash: hashToken(token) }, select: { id: true } });
    return p !== null;
  }

  /** The caller's active participant in a session, or FORBIDDEN. */
  async requireMember(tokenHash: string | null, sessionId: string): Promise<ParticipantRecord> {
    if (!tokenHash) throw new DomainError('UNAUTHENTICATED', 'Send the bearer token you got from joinSession.');
    const p = await this.db.participant.findUnique({ where: { sessionId_tokenHash: { sessionId, tokenHash } } });
    if (!p || p.leftAt) throw new DomainError('FORBIDDEN', 'You have not joined this session.', { sessionId });
    return p;
  }

  private async sessionFor(viewer: ParticipantRecord): Promise<SessionRecord> {
    const s = await this.db.drawingSession.findUniqueOrThrow({ where: { id: viewer.sessionId } });
    return { ...s, viewerId: viewer.id };
  }

  // ---------------------------------------------------------------- validation

  private checkText(what: string, text: string, max: number): string {
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

  private checkNumber(what: string, v: number | null | undefined, min: number, max: number, int: boolean): void {
    if (v === null || v === undefined) return;
    if (!Number.isFinite(v) || v < min || v > max || (int && !Number.isInteger(v))) {
      throw new DomainError('BAD_USER_INPUT', `${what} must be ${int ? 'an integer' : 'a number'} in [${min}, ${max}].`);
    }
  }

  // ---------------------------------------------------------------- mutations

  async createSession(callerTokenHash: string | null, input: CreateSessionInput): Promise<JoinResult> {
    const { limits } = this.config;
    const title = this.checkText('The title', input.title, limits.maxNameLength);
    const name = this.checkText('The name', input.name, limits.maxNameLength);
    const dataset = input.dataset ?? this.defaultDataset();
    const served = this.opts.models[dataset];
    if (!served) throw new DomainError('BAD_USER_INPUT', `Unknown dataset "${dataset}" (this server serves ${Object.keys(this.opts.models).join(', ')}).`);
    let png: Buffer;
    if (input.backgroundPng) {
      const m = /^data:image\/png;base64,([A-Za-z0-9+/=]+)$/.exec(input.backgroundPng);
      if (!m) throw new DomainError('BAD_USER_INPUT', 'backgroundPng must be a data:image/png;base64 URL.');
      const bytes = Buffer.from(m[1]!, 'base64');
      try {
        // PNG only, its size from the header, complete image data: checked before the decoder allocates anything.
        checkPng(bytes, { maxPixels: limits.maxImagePixels });
      } catch (err) {
        if (err instanceof PngCheckError) throw new DomainError('BAD_USER_INPUT', `backgroundPng is refused: ${err.message}.`);
        throw err;
      }
      let img: RgbImage;
      try {
        img = await decodePng(bytes, served.canvasSize);
      } catch {
        throw new DomainError('BAD_USER_INPUT', 'backgroundPng is not a readable PNG.');
      }
      png = this.opts.encodePng(img);
    } else {
      png = this.opts.encodePng(this.opts.background(dataset, served.canvasSize));
    }
    const { width, height } = pngSize(png);
    const token = callerTokenHash ? null : newToken();
    const tokenHash = callerTokenHash ?? hashToken(token!);
    const result = await this.writes.run(() =>
      this.db.$transaction(async (tx) => {
        const sessionId = newId();
        const imageId = newId();
        await tx.generatedImage.create({
          data: { id: imageId, width, height, png: new Uint8Array(png), byteLength: png.length, sha256: sha256(png) },
        });
        await tx.drawingSession.create({
          data: {
            id: sessionId,
            title,
            dataset,
            model: served.name,
            allowDrawerTurns: input.allowDrawerTurns ?? false,
            backgroundImageId: imageId,
          },
        });
        await tx.generatedImage.update({ where: { id: imageId }, data: { sessionId } });
        const participant = await tx.participant.create({
          data: { id: newId(), sessionId, name, role: 'TELLER', tokenHash },
        });
        const session = await tx.drawingSession.findUniqueOrThrow({ where: { id: sessionId } });
        return { session: { ...session, viewerId: participant.id }, participant };
      }),
    );
    log.info({ sessionId: result.session.id }, 'session created');
    return { ...result, token: token ?? '' };
  }

  /**
   * Join a session with an invite code that grants the asked role. The code must be the session's, not revoked,
   * not expired, not used up, and its creator must still be an active teller. Joining again while active returns
   * the participant as it is (no use counted); a participant who left rejoins with the invite's role.
   */
  async joinSession(callerTokenHash: string | null, callerToken: string | null, input: JoinSessionInput): Promise<JoinResult> {
    const name = this.checkText('The name', input.name, this.config.limits.maxNameLength);
    const token = callerToken ?? newToken();
    const tokenHash = callerTokenHash ?? hashToken(token);
    const { participant, joined } = await this.writes.run(() =>
      this.db.$transaction(async (tx) => {
        const s = await tx.drawingSession.findUnique({ where: { id: input.sessionId }, select: { id: true } });
        if (!s) throw new DomainError('NOT_FOUND', 'No such session.', { sessionId: input.sessionId });
        const invite = await tx.invite.findUnique({ where: { codeHash: hashToken(input.invite) }, include: { createdBy: true } });
        if (!invite || invite.sessionId !== input.sessionId) {
          throw new DomainError('FORBIDDEN', 'The invite code is not valid for this session; ask a teller for one.');
        }
        if (invite.revokedAt) throw new DomainError('FORBIDDEN', 'This invite code was revoked; ask a teller for a new one.');
        if (invite.expiresAt && invite.expiresAt.getTime() <= Date.now()) {
          throw new DomainError('FORBIDDEN', 'This invite code has expired; ask a teller for a new one.');
        }
        if (invite.maxUses !== null && invite.uses >= invite.maxUses) {
          throw new DomainError('FORBIDDEN', 'This invite code is used up; ask a teller for a new one.');
        }
        if (invite.role !== input.role) {
          throw new DomainError('FORBIDDEN', `This invite code grants ${invite.role}, not ${input.role}.`, { role: invite.role });
        }
        if (invite.createdBy.role !== 'TELLER' || invite.createdBy.leftAt) {
          throw new DomainError('FORBIDDEN', 'The teller who created this invite code has left; ask a teller for a new one.');
        }
        const existing = await tx.participant.findUnique({
          where: { sessionId_tokenHash: { sessionId: input.sessionId, tokenHash } },
        });
        if (existing && !existing.leftAt) return { participant: existing, joined: false };
        await tx.invite.update({ where: { id: invite.id }, data: { uses: { increment: 1 } } });
        const data = { name, role: input.role, leftAt: null, online: false };
        const participant = existing
          ? await tx.participant.update({ where: { id: existing.id }, data })
          : await tx.participant.create({ data: { id: newId(), sessionId: input.sessionId, tokenHash, ...data } });
        return { participant, joined: true };
      }),
    );
    if (joined) this.emit({ kind: 'PARTICIPANT_JOINED', sessionId: input.sessionId, participant });
    return { session: await this.sessionFor(participant), participant, token };
  }

  /** A teller creates an invite code for a role; the code is in this answer only. */
  async createInvite(tokenHash: string | null, input: CreateInviteInput): Promise<InviteRecord> {
    const me = await this.requireMember(tokenHash, input.sessionId);
    if (me.role !== 'TELLER') throw new DomainError('FORBIDDEN', 'Only a teller of the session creates invite codes.');
    this.checkNumber('expiresInSeconds', input.expiresInSeconds, 1, MAX_INVITE_SECONDS, true);
    this.checkNumber('maxUses', input.maxUses, 1, MAX_INVITE_USES, true);
    const code = newInviteCode();
    const invite = await this.writes.run(() =>
      this.db.invite.create({
        data: {
          id: newId(),
          sessionId: input.sessionId,
          role: input.role,
          codeHash: hashToken(code),
          createdById: me.id,
          expiresAt: input.expiresInSeconds ? new Date(Date.now() + input.expiresInSeconds * 1000) : null,
          maxUses: input.maxUses ?? null,
        },
      }),
    );
    log.info({ sessionId: input.sessionId, inviteId: invite.id, role: invite.role }, 'invite created');
    return inviteRecord(invite, code);
  }

  /** A teller revokes an invite code of their session; who joined with it stays. */
  async revokeInvite(tokenHash: string | null, inviteId: string): Promise<InviteRecord> {
    const found = await this.db.invite.findUnique({ where: { id: inviteId } });
    if (!found) throw new DomainError('NOT_FOUND', 'No such invite.', { inviteId });
    const me = await this.requireMember(tokenHash, found.sessionId);
    if (me.role !== 'TELLER') throw new DomainError('FORBIDDEN', 'Only a teller of the session revokes invite codes.');
    const invite = await this.writes.run(() =>
      this.db.invite.update({ where: { id: inviteId }, data: { revokedAt: found.revokedAt ?? new Date() } }),
    );
    return inviteRecord(invite);
  }

  async leaveSession(tokenHash: string | null, sessionId: string): Promise<ParticipantRecord> {
    const me = await this.requireMember(tokenHash, sessionId);
    const p = await this.writes.run(() =>
      this.db.participant.update({ where: { id: me.id }, data: { leftAt: new Date(), online: false } }),
    );
    this.emit({ kind: 'PARTICIPANT_LEFT', sessionId, participant: p });
    this.endSubscriptions(me.id);
    return p;
  }

  async sendMessage(tokenHash: string | null, sessionId: string, text: string): Promise<MessageRecord> {
    const me = await this.requireMember(tokenHash, sessionId);
    if (me.role === 'OBSERVER') throw new DomainError('FORBIDDEN', 'Observers only read; join as TELLER or DRAWER to chat.');
    const body = this.checkText('The message', text, this.config.limits.maxTextLength);
    const m = await this.writes.run(() =>
      this.db.message.create({ data: { id: newId(), sessionId, authorId: me.id, text: body } }),
    );
    this.emit({ kind: 'MESSAGE', sessionId, message: m });
    return m;
  }

  async submitTurn(tokenHash: string | null, input: SubmitTurnInput): Promise<TurnRecord> {
    if (!this.accepting) throw new DomainError('INVALID_STATE', 'The server is shutting down; try again shortly.');
    const me = await this.requireMember(tokenHash, input.sessionId);
    const { limits } = this.config;
    const session = await this.db.drawingSession.findUniqueOrThrow({ where: { id: input.sessionId } });
    const model = this.modelFor(session.dataset);
    const mayDraw = me.role === 'TELLER' || (me.role === 'DRAWER' && session.allowDrawerTurns);
    if (!mayDraw) {
      throw new DomainError(
        'FORBIDDEN',
        me.role === 'DRAWER'
          ? 'This session does not let drawers submit turns; send a message to the teller instead.'
          : 'Only the teller submits turns.',
      );
    }
    const instruction = this.checkText('The instruction', input.instruction, limits.maxTextLength);
    this.checkNumber('steps', input.steps, 1, limits.maxSteps, true);
    this.checkNumber('guidanceScale', input.guidanceScale, 0, 100, false);
    this.checkNumber('icmGuidanceScale', input.icmGuidanceScale, 0, 100, false);
    this.checkNumber('candidates', input.candidates, 1, limits.maxCandidates, true);
    this.checkNumber('seed', input.seed, 0, 2 ** 31 - 1, true);

    const turn = await this.writes.run(() =>
      this.db.$transaction(async (tx) => {
        // Checked again where the write happens: a drain that began while this request waited refuses it too.
        if (!this.accepting) throw new DomainError('INVALID_STATE', 'The server is shutting down; try again shortly.');
        const active = await tx.turn.count({ where: { sessionId: input.sessionId, status: { in: ACTIVE } } });
        if (active >= limits.maxQueuedTurnsPerSession) {
          throw new DomainError(
            'QUEUE_FULL',
            `This session already has ${active} turns waiting; the limit is ${limits.maxQueuedTurnsPerSession}. Wait for one to finish or cancel one.`,
            { limit: limits.maxQueuedTurnsPerSession },
          );
        }
        const s = await tx.drawingSession.findUniqueOrThrow({ where: { id: input.sessionId } });
        // CoDraw: the turn's text is the teller's instruction plus the drawer replies since the previous turn.
        const replies = await tx.message.findMany({
          where: { sessionId: s.id, turnId: null, author: { role: 'DRAWER' } },
          orderBy: [{ createdAt: 'asc' }, { id: 'asc' }],
        });
        const text = [instruction, ...replies.map((r) => r.text)].join(' ');
        const last = await tx.turn.aggregate({ _max: { queueSeq: true } });
        const id = newId();
        const t = await tx.turn.create({
          data: {
            id,
            sessionId: s.id,
            index: s.nextTurnIndex,
            authorId: me.id,
            instruction,
            text,
            steps: input.steps ?? model.turnDefaults.steps,
            guidanceScale: input.guidanceScale ?? model.turnDefaults.guidanceScale,
            icmGuidanceScale: input.icmGuidanceScale ?? model.turnDefaults.icmGuidanceScale,
            candidates: input.candidates ?? model.turnDefaults.candidates,
            seed: input.seed ?? crypto.randomInt(0, 2 ** 31 - 1),
            parentTurnId: s.headTurnId,
            queueSeq: (last._max.queueSeq ?? 0) + 1,
          },
        });
        if (replies.length) {
          await tx.message.updateMany({ where: { id: { in: replies.map((r) => r.id) } }, data: { turnId: id } });
        }
        await tx.drawingSession.update({
          where: { id: s.id },
          data: { nextTurnIndex: s.nextTurnIndex + 1, headTurnId: id },
        });
        return t;
      }),
    );
    this.emit({ kind: 'TURN_QUEUED', sessionId: turn.sessionId, turn });
    this.emit({ kind: 'HEAD_MOVED', sessionId: turn.sessionId, headTurnId: turn.id });
    this.requireEngine().enqueue(turn.sessionId, turn.id, model.key);
    return turn;
  }

  async cancelTurn(tokenHash: string | null, turnId: string): Promise<TurnRecord> {
    const t0 = await this.db.turn.findUnique({ where: { id: turnId } });
    if (!t0) throw new DomainError('NOT_FOUND', 'No such turn.', { turnId });
    const me = await this.requireMember(tokenHash, t0.sessionId);
    if (!(me.role === 'TELLER' || (me.role === 'DRAWER' && t0.authorId === me.id))) {
      throw new DomainError('FORBIDDEN', 'Only the teller (or the drawer who submitted it) cancels a turn.');
    }
    const turn = await this.finish(turnId, 'CANCELLED', null);
    if (!turn) {
      const now = await this.db.turn.findUniqueOrThrow({ where: { id: turnId } });
      throw new DomainError('INVALID_STATE', `The turn is already ${now.status}.`, { status: now.status });
    }
    // The row is CANCELLED first, so a turn the engine is about to start is refused by start(); then the engine
    // drops it from its queue or stops it within one step.
    this.engine?.cancel(turnId);
    return turn;
  }

  async revertToTurn(tokenHash: string | null, turnId: string): Promise<SessionRecord> {
    const t = await this.db.turn.findUnique({ where: { id: turnId } });
    if (!t) throw new DomainError('NOT_FOUND', 'No such turn.', { turnId });
    const me = await this.requireMember(tokenHash, t.sessionId);
    if (me.role !== 'TELLER') throw new DomainError('FORBIDDEN', 'Only the teller moves the canvas head.');
    if (t.status !== 'SUCCEEDED') {
      throw new DomainError('INVALID_STATE', `Only a succeeded turn has a canvas to return to; this one is ${t.status}.`);
    }
    const s = await this.writes.run(() =>
      this.db.drawingSession.update({ where: { id: t.sessionId }, data: { headTurnId: t.id } }),
    );
    this.emit({ kind: 'HEAD_MOVED', sessionId: t.sessionId, headTurnId: t.id });
    return { ...s, viewerId: me.id };
  }

  /**
   * Move an active turn to a terminal status (and the head back to its parent if it was the head).
   * Returns null when the turn was not active (already finished: nothing written).
   */
  private async finish(
    turnId: string,
    status: 'CANCELLED' | 'FAILED',
    error: string | null,
  ): Promise<TurnRecord | null> {
    const r = await this.writes.run(() =>
      this.db.$transaction(async (tx) => {
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
    this.emit({ kind: status === 'CANCELLED' ? 'TURN_CANCELLED' : 'TURN_FAILED', sessionId: r.turn.sessionId, turn: r.turn });
    if (r.headMoved) this.emit({ kind: 'HEAD_MOVED', sessionId: r.turn.sessionId, headTurnId: r.turn.parentTurnId });
    return r.turn;
  }

  // ---------------------------------------------------------------- engine hooks

  async start(turnId: string): Promise<TurnInputs | null> {
    const r = await this.writes.run(() =>
      this.db.$transaction(async (tx) => {
        const t = await tx.turn.findUnique({ where: { id: turnId } });
        if (!t || !ACTIVE.includes(t.status)) return null;
        // Reference: the result of the nearest succeeded ancestor (failed/cancelled parents are skipped), else the
        // session's background.
        let refId: string | null = null;
        for (let p = t.parentTurnId; p && !refId; ) {
          const parent: Turn | null = await tx.turn.findUnique({ where: { id: p } });
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
    this.emit({ kind: 'TURN_STARTED', sessionId: r.turn.sessionId, turn: r.turn });
    const t = r.turn;
    const model = this.modelFor(r.dataset);
    this.turnModels.set(turnId, model.key);
    const referenceLatent = (await this.opts.latents?.get(model.key, r.refSha256)) ?? null;
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
    this.pubsub.publish(progressTopic(p.sessionId), frame);
    if (frame.preview) this.pubsub.retain(previewKey(p.turnId), frame, RETAIN_PREVIEW_MS);
  }

  async finished(turnId: string, png: Buffer, timings: { queuedMs: number; runMs: number }, latent?: Float32Array): Promise<void> {
    const modelKey = this.turnModels.get(turnId);
    this.turnModels.delete(turnId);
    // Before the result is visible: a next turn that starts at once finds its reference's latent.
    if (latent && modelKey && this.opts.latents) await this.opts.latents.set(modelKey, sha256(png), latent);
    const { width, height } = pngSize(png);
    const r = await this.writes.run(() =>
      this.db.$transaction(async (tx) => {
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
    this.pubsub.forget(previewKey(turnId));
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
    this.pubsub.publish(progressTopic(r.turn.sessionId), frame);
    this.emit({ kind: 'TURN_FINISHED', sessionId: r.turn.sessionId, turn: r.turn });
  }

  async failed(turnId: string, error: Error): Promise<void> {
    log.warn({ turnId, err: error }, 'turn failed');
    await this.finish(turnId, 'FAILED', error.message || String(error));
  }

  async cancelled(turnId: string): Promise<void> {
    await this.finish(turnId, 'CANCELLED', null);
  }

  // ---------------------------------------------------------------- start-up and drain

  /**
   * At start: nobody is online, and QUEUED and RUNNING turns are queued again in their original order. With
   * `shared` (scale-out: other servers and workers are live) nothing is reset, since other servers hold the
   * subscriptions and workers run the RUNNING turns; unfinished turns are only handed to the queue again, which
   * ignores those it already has.
   */
  async resume(opts: { shared?: boolean } = {}): Promise<number> {
    const engine = this.requireEngine();
    if (!opts.shared) {
      await this.writes.run(async () => {
        await this.db.participant.updateMany({ where: { online: true }, data: { online: false } });
        await this.db.turn.updateMany({ where: { status: 'RUNNING' }, data: { status: 'QUEUED', startedAt: null } });
      });
    }
    const turns = await this.db.turn.findMany({
      where: { status: { in: ACTIVE } },
      orderBy: { queueSeq: 'asc' },
      select: { id: true, sessionId: true, session: { select: { dataset: true } } },
    });
    // A dataset this server no longer serves: the engine fails the turn with that reason.
    for (const t of turns) engine.enqueue(t.sessionId, t.id, this.opts.models[t.session.dataset]?.key ?? `unserved:${t.session.dataset}`);
    if (turns.length) log.info({ turns: turns.length }, 'resumed queued turns');
    return turns.length;
  }

  /**
   * Whether a turn may start now (scale-out workers ask before running a job): 'later' while its session has an
   * earlier unfinished turn, 'gone' once it has ended or does not exist.
   */
  async mayStart(turnId: string, sessionId: string): Promise<'now' | 'later' | 'gone'> {
    const t = await this.db.turn.findUnique({ where: { id: turnId }, select: { status: true, queueSeq: true } });
    if (!t || !ACTIVE.includes(t.status)) return 'gone';
    const ahead = await this.db.turn.count({ where: { sessionId, status: { in: ACTIVE }, queueSeq: { lt: t.queueSeq } } });
    return ahead > 0 ? 'later' : 'now';
  }

  /** Refuse new turns (drain has begun). */
  stopAccepting(): void {
    this.accepting = false;
  }

  /** After the engine drained: turns it was running go back to QUEUED so the next start picks them up. */
  async suspendRunning(): Promise<number> {
    const ids = [...this.running];
    this.running.clear();
    this.sequences.clear();
    if (!ids.length) return 0;
    const r = await this.writes.run(() =>
      this.db.turn.updateMany({
        where: { id: { in: ids }, status: 'RUNNING' },
        data: { status: 'QUEUED', startedAt: null },
      }),
    );
    return r.count;
  }

  // ---------------------------------------------------------------- queries

  async getSession(tokenHash: string | null, sessionId: string): Promise<SessionRecord> {
    const me = await this.requireMember(tokenHash, sessionId);
    return this.sessionFor(me);
  }

  async listSessions(tokenHash: string | null): Promise<SessionRecord[]> {
    if (!tokenHash) throw new DomainError('UNAUTHENTICATED', 'Send the bearer token you got from joinSession.');
    const mine = await this.db.participant.findMany({
      where: { tokenHash, leftAt: null },
      include: { session: true },
      orderBy: { session: { createdAt: 'desc' } },
    });
    return mine.map(({ session, ...p }) => ({ ...session, viewerId: p.id }));
  }

  async getTurn(tokenHash: string | null, turnId: string): Promise<TurnRecord> {
    const t = await this.db.turn.findUnique({ where: { id: turnId } });
    if (!t) throw new DomainError('NOT_FOUND', 'No such turn.', { turnId });
    await this.requireMember(tokenHash, t.sessionId);
    return t;
  }

  async getImage(tokenHash: string | null, imageId: string): Promise<ImageRecord> {
    const img = await this.db.generatedImage.findUnique({ where: { id: imageId }, select: IMAGE_META });
    if (!img || !img.sessionId) throw new DomainError('NOT_FOUND', 'No such image.', { imageId });
    await this.requireMember(tokenHash, img.sessionId);
    return img;
  }

  /** The PNG bytes of an image the caller may read (HTTP route and data URLs). */
  async imagePng(tokenHash: string | null, imageId: string): Promise<{ png: Buffer; sha256: string }> {
    const img = await this.db.generatedImage.findUnique({ where: { id: imageId }, select: { sessionId: true, png: true, sha256: true } });
    if (!img || !img.sessionId) throw new DomainError('NOT_FOUND', 'No such image.', { imageId });
    await this.requireMember(tokenHash, img.sessionId);
    return { png: Buffer.from(img.png), sha256: img.sha256 };
  }

  /** The PNG of an image already authorised through its parent object (no second membership check). */
  async dataUrl(imageId: string): Promise<string> {
    const img = await this.db.generatedImage.findUniqueOrThrow({ where: { id: imageId }, select: { png: true } });
    if (img.png.length > this.config.limits.maxDataUrlBytes) {
      throw new DomainError('BAD_USER_INPUT', `The image is ${img.png.length} bytes; data URLs stop at ${this.config.limits.maxDataUrlBytes}. Fetch its url instead.`);
    }
    return pngDataUrl(img.png);
  }

  imageMeta(imageId: string): Promise<ImageRecord> {
    return this.db.generatedImage.findUniqueOrThrow({ where: { id: imageId }, select: IMAGE_META });
  }

  async imageMetaOrNull(imageId: string | null): Promise<ImageRecord | null> {
    return imageId ? this.imageMeta(imageId) : null;
  }

  participant(id: string): Promise<ParticipantRecord> {
    return this.db.participant.findUniqueOrThrow({ where: { id } });
  }

  participants(sessionId: string): Promise<ParticipantRecord[]> {
    return this.db.participant.findMany({ where: { sessionId }, orderBy: { joinedAt: 'asc' } });
  }

  async messages(sessionId: string, last: number): Promise<MessageRecord[]> {
    const rows = await this.db.message.findMany({
      where: { sessionId },
      orderBy: [{ createdAt: 'desc' }, { id: 'desc' }],
      take: clampLast(last),
    });
    return rows.reverse();
  }

  async turns(sessionId: string, last: number): Promise<TurnRecord[]> {
    const rows = await this.db.turn.findMany({ where: { sessionId }, orderBy: { index: 'desc' }, take: clampLast(last) });
    return rows.reverse();
  }

  turnById(id: string | null): Promise<TurnRecord | null> {
    return id ? this.db.turn.findUnique({ where: { id } }) : Promise.resolve(null);
  }

  /** The latest preview of a turn still running (retained by whichever server or worker runs it). */
  async latestPreview(t: TurnRecord): Promise<TurnProgressFrame | null> {
    if (t.status !== 'RUNNING') return null;
    return this.pubsub.recall<TurnProgressFrame>(previewKey(t.id));
  }

  /** Active turns of the same session ahead of this one; null once the turn is finished. */
  async queuePosition(t: TurnRecord): Promise<number | null> {
    const now = await this.db.turn.findUnique({ where: { id: t.id }, select: { status: true } });
    if (!now || !ACTIVE.includes(now.status)) return null;
    return this.db.turn.count({
      where: { sessionId: t.sessionId, status: { in: ACTIVE }, queueSeq: { lt: t.queueSeq } },
    });
  }

  /** The current canvas: the nearest succeeded turn from the head back, else the background. */
  async canvas(s: DrawingSession): Promise<ImageRecord> {
    for (let id = s.headTurnId; id; ) {
      const t: Turn | null = await this.db.turn.findUnique({ where: { id } });
      if (!t) break;
      if (t.status === 'SUCCEEDED' && t.resultImageId) return this.imageMeta(t.resultImageId);
      id = t.parentTurnId;
    }
    return this.imageMeta(s.backgroundImageId);
  }

  engineStatus(): EngineStatusRecord {
    const { models: engineModels, ...s } = this.requireEngine().status();
    const byKey = new Map((engineModels ?? []).map((m) => [m.key, m]));
    const served = new Map<string, ServedModelRecord>();
    for (const [dataset, m] of Object.entries(this.opts.models)) {
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
      batching: this.config.batching,
      maxBatchSize: this.config.maxBatchSize,
      turnDefaults: this.modelFor(this.defaultDataset()).turnDefaults,
      models: [...served.values()],
    };
  }

  // ---------------------------------------------------------------- subscriptions

  /** Lifecycle events of a session the caller has joined. */
  async subscribeEvents(
    tokenHash: string | null,
    sessionId: string,
    backlogged?: () => boolean,
  ): Promise<Subscription<SessionEvent>> {
    const me = await this.requireMember(tokenHash, sessionId);
    return this.track(me, (onClose) => this.pubsub.subscribe<SessionEvent>(sessionTopic(sessionId), { backlogged, onClose }));
  }

  /** Progress frames of a session the caller has joined; preview frames conflate per turn for slow subscribers. */
  async subscribeProgress(
    tokenHash: string | null,
    sessionId: string,
    backlogged?: () => boolean,
  ): Promise<Subscription<TurnProgressFrame>> {
    const me = await this.requireMember(tokenHash, sessionId);
    return this.track(me, (onClose) =>
      this.pubsub.subscribe<TurnProgressFrame>(progressTopic(sessionId), {
        // Latest frame wins: an undelivered preview of a turn is replaced by a newer one; final frames are kept.
        conflationKey: (f) => (f.final ? null : `preview:${f.turnId}`),
        backlogged,
        onClose,
      }),
    );
  }

  /**
   * Make a subscription of a participant and keep it while it lives: the participant is online while they have
   * one, and leaving the session ends them all (a participant who left no longer reads the session).
   */
  private async track<T>(p: ParticipantRecord, make: (onClose: () => void) => Subscription<T>): Promise<Subscription<T>> {
    let release: (() => void) | null = null;
    let ended = false;
    const sub = make(() => {
      ended = true;
      this.live.get(p.id)?.delete(sub as Subscription<unknown>);
      release?.();
    });
    let set = this.live.get(p.id);
    if (!set) this.live.set(p.id, (set = new Set()));
    set.add(sub as Subscription<unknown>);
    const r = await this.connect(p);
    if (ended) r();
    else release = r;
    return sub;
  }

  /** End every subscription of a participant. */
  private endSubscriptions(participantId: string): void {
    const set = this.live.get(participantId);
    this.live.delete(participantId);
    for (const sub of set ?? []) void sub.return();
  }

  /** Count a live subscription of a participant; the first makes them online, the last one's end offline. */
  private async connect(p: ParticipantRecord): Promise<() => void> {
    const n = (this.connections.get(p.id) ?? 0) + 1;
    this.connections.set(p.id, n);
    if (n === 1) await this.setOnline(p, true);
    let released = false;
    return () => {
      if (released) return;
      released = true;
      const left = (this.connections.get(p.id) ?? 1) - 1;
      if (left > 0) {
        this.connections.set(p.id, left);
        return;
      }
      this.connections.delete(p.id);
      this.setOnline(p, false).catch((err: unknown) => log.warn({ err }, 'could not mark participant offline'));
    };
  }

  private async setOnline(p: ParticipantRecord, online: boolean): Promise<void> {
    const updated = await this.writes.run(async () => {
      const cur = await this.db.participant.findUnique({ where: { id: p.id } });
      if (!cur || cur.online === online) return null;
      return this.db.participant.update({ where: { id: p.id }, data: { online } });
    });
    if (updated) {
      this.emit({ kind: online ? 'PARTICIPANT_ONLINE' : 'PARTICIPANT_OFFLINE', sessionId: p.sessionId, participant: updated });
    }
  }

  private emit(e: Omit<SessionEvent, 'at'>): void {
    this.pubsub.publish(sessionTopic(e.sessionId), { ...e, at: new Date() });
  }
}

function clampLast(n: number): number {
  return Math.max(0, Math.min(200, Math.floor(n)));
}

function sha256(b: Buffer): string {
  return crypto.createHash('sha256').update(b).digest('hex');
}
