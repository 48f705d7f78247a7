/**
 * Writes a caller asks for: sessions, joining with an invite, invites, chat, submitting, cancelling and reverting
 * turns. Every check runs before the writes, and each operation's writes are one transaction through the write
 * mutex, so a refused operation writes nothing.
 */
import crypto from 'node:crypto';
import { decodePng, type RgbImage } from '../data/index.js';
import { partLogger } from '../log/index.js';
import type { SessionsCore } from './core.js';
import { DomainError } from './errors.js';
import { hashToken, newId, newInviteCode, newToken, sha256 } from './ids.js';
import { pngSize } from './pngBytes.js';
import {
  ACTIVE, type CreateInviteInput, type CreateSessionInput, type InviteRecord, type JoinResult, type JoinSessionInput,
  type MessageRecord, type SessionRecord, type SubmitTurnInput, type TurnRecord,
} from './records.js';
import type { TurnLifecycle } from './turnLifecycle.js';
import { checkBackgroundPng, checkNumber, checkSolver, checkText, MAX_INVITE_SECONDS, MAX_INVITE_USES } from './validation.js';
import type { Invite } from '../generated/prisma/client.js';

const log = partLogger('sessions');

function inviteRecord({ codeHash: _hash, ...row }: Invite, code: string | null = null): InviteRecord {
  return { ...row, code };
}

export class SessionMutations {
  constructor(
    private readonly core: SessionsCore,
    private readonly lifecycle: TurnLifecycle,
  ) {}

  async createSession(callerTokenHash: string | null, input: CreateSessionInput): Promise<JoinResult> {
    const { db, opts, config: { limits } } = this.core;
    const title = checkText('The title', input.title, limits.maxNameLength);
    const name = checkText('The name', input.name, limits.maxNameLength);
    const dataset = input.dataset ?? this.core.defaultDataset();
    const served = opts.models[dataset];
    if (!served) throw new DomainError('BAD_USER_INPUT', `Unknown dataset "${dataset}" (this server serves ${Object.keys(opts.models).join(', ')}).`);
    let png: Buffer;
    if (input.backgroundPng) {
      const bytes = checkBackgroundPng(input.backgroundPng, limits.maxImagePixels);
      let img: RgbImage;
      try {
        img = await decodePng(bytes, served.canvasSize);
      } catch {
        throw new DomainError('BAD_USER_INPUT', 'backgroundPng is not a readable PNG.');
      }
      png = opts.encodePng(img);
    } else {
      png = opts.encodePng(opts.background(dataset, served.canvasSize));
    }
    const { width, height } = pngSize(png);
    const token = callerTokenHash ? null : newToken();
    const tokenHash = callerTokenHash ?? hashToken(token!);
    const result = await this.core.writes.run(() =>
      db.$transaction(async (tx) => {
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
    const name = checkText('The name', input.name, this.core.config.limits.maxNameLength);
    const token = callerToken ?? newToken();
    const tokenHash = callerTokenHash ?? hashToken(token);
    const { participant, joined } = await this.core.writes.run(() =>
      this.core.db.$transaction(async (tx) => {
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
    if (joined) this.core.emit({ kind: 'PARTICIPANT_JOINED', sessionId: input.sessionId, participant });
    return { session: await this.core.sessionFor(participant), participant, token };
  }

  /** A teller creates an invite code for a role; the code is in this answer only. */
  async createInvite(tokenHash: string | null, input: CreateInviteInput): Promise<InviteRecord> {
    const me = await this.core.requireMember(tokenHash, input.sessionId);
    if (me.role !== 'TELLER') throw new DomainError('FORBIDDEN', 'Only a teller of the session creates invite codes.');
    checkNumber('expiresInSeconds', input.expiresInSeconds, 1, MAX_INVITE_SECONDS, true);
    checkNumber('maxUses', input.maxUses, 1, MAX_INVITE_USES, true);
    const code = newInviteCode();
    const invite = await this.core.writes.run(() =>
      this.core.db.invite.create({
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
    const found = await this.core.db.invite.findUnique({ where: { id: inviteId } });
    if (!found) throw new DomainError('NOT_FOUND', 'No such invite.', { inviteId });
    const me = await this.core.requireMember(tokenHash, found.sessionId);
    if (me.role !== 'TELLER') throw new DomainError('FORBIDDEN', 'Only a teller of the session revokes invite codes.');
    const invite = await this.core.writes.run(() =>
      this.core.db.invite.update({ where: { id: inviteId }, data: { revokedAt: found.revokedAt ?? new Date() } }),
    );
    return inviteRecord(invite);
  }

  async sendMessage(tokenHash: string | null, sessionId: string, text: string): Promise<MessageRecord> {
    const me = await this.core.requireMember(tokenHash, sessionId);
    if (me.role === 'OBSERVER') throw new DomainError('FORBIDDEN', 'Observers only read; join as TELLER or DRAWER to chat.');
    const body = checkText('The message', text, this.core.config.limits.maxTextLength);
    const m = await this.core.writes.run(() =>
      this.core.db.message.create({ data: { id: newId(), sessionId, authorId: me.id, text: body } }),
    );
    this.core.emit({ kind: 'MESSAGE', sessionId, message: m });
    return m;
  }

  async submitTurn(tokenHash: string | null, input: SubmitTurnInput): Promise<TurnRecord> {
    const { core } = this;
    if (!core.accepting) throw new DomainError('INVALID_STATE', 'The server is shutting down; try again shortly.');
    const me = await core.requireMember(tokenHash, input.sessionId);
    const { limits } = core.config;
    const session = await core.db.drawingSession.findUniqueOrThrow({ where: { id: input.sessionId } });
    const model = core.modelFor(session.dataset);
    const mayDraw = me.role === 'TELLER' || (me.role === 'DRAWER' && session.allowDrawerTurns);
    if (!mayDraw) {
      throw new DomainError(
        'FORBIDDEN',
        me.role === 'DRAWER'
          ? 'This session does not let drawers submit turns; send a message to the teller instead.'
          : 'Only the teller submits turns.',
      );
    }
    const instruction = checkText('The instruction', input.instruction, limits.maxTextLength);
    checkNumber('steps', input.steps, 1, limits.maxSteps, true);
    checkNumber('guidanceScale', input.guidanceScale, 0, 100, false);
    checkNumber('icmGuidanceScale', input.icmGuidanceScale, 0, 100, false);
    checkNumber('candidates', input.candidates, 1, limits.maxCandidates, true);
    checkNumber('seed', input.seed, 0, 2 ** 31 - 1, true);
    const solver = checkSolver(input.solver);

    const turn = await core.writes.run(() =>
      core.db.$transaction(async (tx) => {
        // Checked again where the write happens: a drain that began while this request waited refuses it too.
        if (!core.accepting) throw new DomainError('INVALID_STATE', 'The server is shutting down; try again shortly.');
        // First, the session's next index, taken atomically (UPDATE ... RETURNING). Its row lock (PostgreSQL) or the
        // write lock (SQLite) is held to the commit, so another server's submission to this session waits here and
        // then reads this one's turn: the index, head, queue count and queueSeq below cannot race.
        const s = await tx.drawingSession.update({
          where: { id: input.sessionId },
          data: { nextTurnIndex: { increment: 1 } },
          select: { id: true, nextTurnIndex: true, headTurnId: true },
        });
        const active = await tx.turn.count({ where: { sessionId: input.sessionId, status: { in: ACTIVE } } });
        if (active >= limits.maxQueuedTurnsPerSession) {
          throw new DomainError(
            'QUEUE_FULL',
            `This session already has ${active} turns waiting; the limit is ${limits.maxQueuedTurnsPerSession}. Wait for one to finish or cancel one.`,
            { limit: limits.maxQueuedTurnsPerSession },
          );
        }
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
            index: s.nextTurnIndex - 1,
            authorId: me.id,
            instruction,
            text,
            steps: input.steps ?? model.turnDefaults.steps,
            guidanceScale: input.guidanceScale ?? model.turnDefaults.guidanceScale,
            icmGuidanceScale: input.icmGuidanceScale ?? model.turnDefaults.icmGuidanceScale,
            candidates: input.candidates ?? model.turnDefaults.candidates,
            seed: input.seed ?? crypto.randomInt(0, 2 ** 31 - 1),
            solver,
            parentTurnId: s.headTurnId,
            queueSeq: (last._max.queueSeq ?? 0) + 1,
          },
        });
        if (replies.length) {
          await tx.message.updateMany({ where: { id: { in: replies.map((r) => r.id) } }, data: { turnId: id } });
        }
        await tx.drawingSession.update({ where: { id: s.id }, data: { headTurnId: id } });
        return t;
      }),
    );
    core.emit({ kind: 'TURN_QUEUED', sessionId: turn.sessionId, turn });
    core.emit({ kind: 'HEAD_MOVED', sessionId: turn.sessionId, headTurnId: turn.id });
    core.requireEngine().enqueue(turn.sessionId, turn.id, model.key);
    return turn;
  }

  async cancelTurn(tokenHash: string | null, turnId: string): Promise<TurnRecord> {
    const t0 = await this.core.db.turn.findUnique({ where: { id: turnId } });
    if (!t0) throw new DomainError('NOT_FOUND', 'No such turn.', { turnId });
    const me = await this.core.requireMember(tokenHash, t0.sessionId);
    if (!(me.role === 'TELLER' || (me.role === 'DRAWER' && t0.authorId === me.id))) {
      throw new DomainError('FORBIDDEN', 'Only the teller (or the drawer who submitted it) cancels a turn.');
    }
    const turn = await this.lifecycle.finish(turnId, 'CANCELLED', null);
    if (!turn) {
      const now = await this.core.db.turn.findUniqueOrThrow({ where: { id: turnId } });
      throw new DomainError('INVALID_STATE', `The turn is already ${now.status}.`, { status: now.status });
    }
    // The row is CANCELLED first, so a turn the engine is about to start is refused by start(); then the engine
    // drops it from its queue or stops it within one step.
    this.core.engineOrNull?.cancel(turnId);
    return turn;
  }

  async revertToTurn(tokenHash: string | null, turnId: string): Promise<SessionRecord> {
    const t = await this.core.db.turn.findUnique({ where: { id: turnId } });
    if (!t) throw new DomainError('NOT_FOUND', 'No such turn.', { turnId });
    const me = await this.core.requireMember(tokenHash, t.sessionId);
    if (me.role !== 'TELLER') throw new DomainError('FORBIDDEN', 'Only the teller moves the canvas head.');
    if (t.status !== 'SUCCEEDED') {
      throw new DomainError('INVALID_STATE', `Only a succeeded turn has a canvas to return to; this one is ${t.status}.`);
    }
    const s = await this.core.writes.run(() =>
      this.core.db.drawingSession.update({ where: { id: t.sessionId }, data: { headTurnId: t.id } }),
    );
    this.core.emit({ kind: 'HEAD_MOVED', sessionId: t.sessionId, headTurnId: t.id });
    return { ...s, viewerId: me.id };
  }
}
