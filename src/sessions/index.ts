/** Public surface of the sessions part: the domain service, its records and events, the database, the pub/sub seam. */
export { SessionsService } from './service.js';
export type {
  CreateInviteInput, CreateSessionInput, EngineStatusRecord, ImageRecord, InviteRecord, JoinResult, JoinSessionInput,
  MessageRecord, ParticipantRecord, Role, ServedModelRecord, SessionEvent, SessionEventKind, SessionEventRecord, SessionModel,
  SessionRecord, SessionsServiceOptions, SubmitTurnInput, TurnProgressFrame, TurnRecord, TurnStatus,
} from './records.js';
export { hashToken } from './ids.js';
export { pngDataUrl } from './pngBytes.js';
export { progressTopic, sessionTopic } from './topics.js';
export { DomainError, type DomainErrorCode } from './errors.js';
export { InProcessPubSub, type PubSub, type Subscription, type SubscribeOptions } from './events.js';
export { RedisPubSub } from './redisPubSub.js';
export { RedisLatentStore, type LatentStore } from './latentStore.js';
export { openDatabase, type Db } from './db.js';
export type { EngineHooks, GenerationEngine, TurnInputs, TurnProgressReport, EngineStatusInfo, SolverName } from './engineContract.js';
