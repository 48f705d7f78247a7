/** Public surface of the sessions part: the domain service, its records and events, the database, the pub/sub seam. */
export * from './service.js';
export { DomainError, type DomainErrorCode } from './errors.js';
export { InProcessPubSub, type PubSub, type Subscription, type SubscribeOptions } from './events.js';
export { RedisPubSub } from './redisPubSub.js';
export { RedisLatentStore, type LatentStore } from './latentStore.js';
export { openDatabase, type Db } from './db.js';
export type { EngineHooks, GenerationEngine, TurnInputs, TurnProgressReport, EngineStatusInfo } from './engineContract.js';
