/**
 * The domain service: drawing sessions, participants, messages, turns and images over Prisma, and the engine's
 * hooks. Resolvers are thin calls into this; every rule (roles, limits, branching) lives in its parts:
 * mutations.ts (what callers change), queries.ts (what they read), presence.ts (who is here and listening),
 * turnLifecycle.ts (a queued turn's life, as the engine drives it). This class only composes them.
 *
 * Writes are serialised through one async mutex and each operation's writes happen in one transaction, so a
 * refused operation writes nothing and concurrent submissions cannot overshoot the per-session queue limit.
 */
import { SessionsCore } from './core.js';
import type { EngineHooks, GenerationEngine, TurnInputs, TurnProgressReport } from './engineContract.js';
import type { Subscription } from './events.js';
import { SessionMutations } from './mutations.js';
import { Presence } from './presence.js';
import { SessionQueries } from './queries.js';
import type {
  CreateInviteInput, CreateSessionInput, DrawingSession, EngineStatusRecord, ImageRecord, InviteRecord, JoinResult,
  JoinSessionInput, MessageRecord, ParticipantRecord, SessionEvent, SessionRecord, SessionsServiceOptions,
  SubmitTurnInput, TurnProgressFrame, TurnRecord,
} from './records.js';
import { TurnLifecycle } from './turnLifecycle.js';

export class SessionsService implements EngineHooks {
  private readonly core: SessionsCore;
  private readonly lifecycle: TurnLifecycle;
  private readonly presence: Presence;
  private readonly queries: SessionQueries;
  private readonly mutations: SessionMutations;

  constructor(opts: SessionsServiceOptions) {
    this.core = new SessionsCore(opts);
    this.lifecycle = new TurnLifecycle(this.core);
    this.presence = new Presence(this.core);
    this.queries = new SessionQueries(this.core);
    this.mutations = new SessionMutations(this.core, this.lifecycle);
  }

  attachEngine(engine: GenerationEngine): void {
    this.core.attachEngine(engine);
  }

  // Auth.
  tokenExists(token: string): Promise<boolean> {
    return this.queries.tokenExists(token);
  }
  requireMember(tokenHash: string | null, sessionId: string): Promise<ParticipantRecord> {
    return this.core.requireMember(tokenHash, sessionId);
  }

  // Mutations (mutations.ts; leaving is presence's).
  createSession(callerTokenHash: string | null, input: CreateSessionInput): Promise<JoinResult> {
    return this.mutations.createSession(callerTokenHash, input);
  }
  joinSession(callerTokenHash: string | null, callerToken: string | null, input: JoinSessionInput): Promise<JoinResult> {
    return this.mutations.joinSession(callerTokenHash, callerToken, input);
  }
  createInvite(tokenHash: string | null, input: CreateInviteInput): Promise<InviteRecord> {
    return this.mutations.createInvite(tokenHash, input);
  }
  revokeInvite(tokenHash: string | null, inviteId: string): Promise<InviteRecord> {
    return this.mutations.revokeInvite(tokenHash, inviteId);
  }
  leaveSession(tokenHash: string | null, sessionId: string): Promise<ParticipantRecord> {
    return this.presence.leaveSession(tokenHash, sessionId);
  }
  sendMessage(tokenHash: string | null, sessionId: string, text: string): Promise<MessageRecord> {
    return this.mutations.sendMessage(tokenHash, sessionId, text);
  }
  submitTurn(tokenHash: string | null, input: SubmitTurnInput): Promise<TurnRecord> {
    return this.mutations.submitTurn(tokenHash, input);
  }
  cancelTurn(tokenHash: string | null, turnId: string): Promise<TurnRecord> {
    return this.mutations.cancelTurn(tokenHash, turnId);
  }
  revertToTurn(tokenHash: string | null, turnId: string): Promise<SessionRecord> {
    return this.mutations.revertToTurn(tokenHash, turnId);
  }

  // Engine hooks, start-up and drain (turnLifecycle.ts).
  start(turnId: string): Promise<TurnInputs | null> {
    return this.lifecycle.start(turnId);
  }
  progress(p: TurnProgressReport): void {
    this.lifecycle.progress(p);
  }
  finished(turnId: string, png: Buffer, timings: { queuedMs: number; runMs: number }, latent?: Float32Array): Promise<void> {
    return this.lifecycle.finished(turnId, png, timings, latent);
  }
  failed(turnId: string, error: Error): Promise<void> {
    return this.lifecycle.failed(turnId, error);
  }
  cancelled(turnId: string): Promise<void> {
    return this.lifecycle.cancelled(turnId);
  }
  resume(opts: { shared?: boolean } = {}): Promise<number> {
    return this.lifecycle.resume(opts);
  }
  mayStart(turnId: string, sessionId: string): Promise<'now' | 'later' | 'gone'> {
    return this.lifecycle.mayStart(turnId, sessionId);
  }
  stopAccepting(): void {
    this.lifecycle.stopAccepting();
  }
  suspendRunning(): Promise<number> {
    return this.lifecycle.suspendRunning();
  }

  // Queries (queries.ts; participants are presence's).
  getSession(tokenHash: string | null, sessionId: string): Promise<SessionRecord> {
    return this.queries.getSession(tokenHash, sessionId);
  }
  listSessions(tokenHash: string | null): Promise<SessionRecord[]> {
    return this.queries.listSessions(tokenHash);
  }
  getTurn(tokenHash: string | null, turnId: string): Promise<TurnRecord> {
    return this.queries.getTurn(tokenHash, turnId);
  }
  getImage(tokenHash: string | null, imageId: string): Promise<ImageRecord> {
    return this.queries.getImage(tokenHash, imageId);
  }
  imagePng(tokenHash: string | null, imageId: string): Promise<{ png: Buffer; sha256: string }> {
    return this.queries.imagePng(tokenHash, imageId);
  }
  dataUrl(imageId: string): Promise<string> {
    return this.queries.dataUrl(imageId);
  }
  imageMeta(imageId: string): Promise<ImageRecord> {
    return this.queries.imageMeta(imageId);
  }
  imageMetaOrNull(imageId: string | null): Promise<ImageRecord | null> {
    return this.queries.imageMetaOrNull(imageId);
  }
  participant(id: string): Promise<ParticipantRecord> {
    return this.presence.participant(id);
  }
  participants(sessionId: string): Promise<ParticipantRecord[]> {
    return this.presence.participants(sessionId);
  }
  messages(sessionId: string, last: number): Promise<MessageRecord[]> {
    return this.queries.messages(sessionId, last);
  }
  turns(sessionId: string, last: number): Promise<TurnRecord[]> {
    return this.queries.turns(sessionId, last);
  }
  turnById(id: string | null): Promise<TurnRecord | null> {
    return this.queries.turnById(id);
  }
  latestPreview(t: TurnRecord): Promise<TurnProgressFrame | null> {
    return this.queries.latestPreview(t);
  }
  queuePosition(t: TurnRecord): Promise<number | null> {
    return this.queries.queuePosition(t);
  }
  canvas(s: DrawingSession): Promise<ImageRecord> {
    return this.queries.canvas(s);
  }
  engineStatus(): EngineStatusRecord {
    return this.queries.engineStatus();
  }

  // Subscriptions (presence.ts).
  subscribeEvents(tokenHash: string | null, sessionId: string, backlogged?: () => boolean): Promise<Subscription<SessionEvent>> {
    return this.presence.subscribeEvents(tokenHash, sessionId, backlogged);
  }
  subscribeProgress(tokenHash: string | null, sessionId: string, backlogged?: () => boolean): Promise<Subscription<TurnProgressFrame>> {
    return this.presence.subscribeProgress(tokenHash, sessionId, backlogged);
  }
}
