/**
 * What the parts of the sessions service share: the database, the pub/sub seam, the configuration and served
 * models, the one write mutex, the attached engine, whether new turns are accepted, and the membership check.
 */
import type { Config } from '../config/index.js';
import type { Db } from './db.js';
import type { GenerationEngine } from './engineContract.js';
import { DomainError } from './errors.js';
import type { PubSub } from './events.js';
import { Mutex } from './mutex.js';
import type { ParticipantRecord, SessionEvent, SessionModel, SessionRecord, SessionsServiceOptions } from './records.js';
import { sessionTopic } from './topics.js';

export class SessionsCore {
  readonly db: Db;
  readonly pubsub: PubSub;
  readonly config: Config;
  /** Every write runs through it, each operation's in one transaction (see service.ts). */
  readonly writes = new Mutex();
  /** False once drain has begun: new turns are refused. */
  accepting = true;
  private engine: GenerationEngine | null = null;

  constructor(readonly opts: SessionsServiceOptions) {
    this.db = opts.db;
    this.pubsub = opts.pubsub;
    this.config = opts.config;
  }

  attachEngine(engine: GenerationEngine): void {
    this.engine = engine;
  }

  /** The attached engine, or null before attachEngine. */
  get engineOrNull(): GenerationEngine | null {
    return this.engine;
  }

  requireEngine(): GenerationEngine {
    if (!this.engine) throw new Error('no engine attached');
    return this.engine;
  }

  /** The dataset a session gets when it names none: i-CLEVR when served, else the first served one. */
  defaultDataset(): string {
    return this.opts.models.iclevr ? 'iclevr' : Object.keys(this.opts.models)[0]!;
  }

  /** The model of a dataset's sessions. */
  modelFor(dataset: string): SessionModel {
    const m = this.opts.models[dataset];
    if (!m) {
      throw new DomainError('INVALID_STATE', `This server serves no model for "${dataset}" sessions (served: ${Object.keys(this.opts.models).join(', ')}).`, { dataset });
    }
    return m;
  }

  /** The caller's active participant in a session, or FORBIDDEN. */
  async requireMember(tokenHash: string | null, sessionId: string): Promise<ParticipantRecord> {
    if (!tokenHash) throw new DomainError('UNAUTHENTICATED', 'Send the bearer token you got from joinSession.');
    const p = await this.db.participant.findUnique({ where: { sessionId_tokenHash: { sessionId, tokenHash } } });
    if (!p || p.leftAt) throw new DomainError('FORBIDDEN', 'You have not joined this session.', { sessionId });
    return p;
  }

  async sessionFor(viewer: ParticipantRecord): Promise<SessionRecord> {
    const s = await this.db.drawingSession.findUniqueOrThrow({ where: { id: viewer.sessionId } });
    return { ...s, viewerId: viewer.id };
  }

  /** Publish a lifecycle event on the session's topic, stamped now. */
  emit(e: Omit<SessionEvent, 'at'>): void {
    this.pubsub.publish(sessionTopic(e.sessionId), { ...e, at: new Date() });
  }
}
