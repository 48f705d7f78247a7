/** What every resolver receives: the domain service and who is calling. Built per request / per subscription. */
import type { SessionsService } from '../sessions/index.js';
import type { Caller } from './admission.js';

export interface GraphQLContext extends Caller {
  service: SessionsService;
  /** For subscriptions: is the caller's socket backlogged (latest-frame-wins for previews)? */
  backlogged?: () => boolean;
  /** For subscriptions: a preview frame published at `at` is about to be sent (preview delivery latency). */
  frameSent?: (at: Date) => void;
}
