/** What every resolver receives: the domain service and who is calling. Built per request / per subscription. */
import type { SessionsService } from '../sessions/index.js';

export interface GraphQLContext {
  service: SessionsService;
  /** The bearer token as sent (joinSession hands it back unchanged), or null when anonymous. */
  token: string | null;
  /** SHA-256 of the token: the caller's identity towards the sessions service. */
  tokenHash: string | null;
  /** The caller's network address (rate-limit key of anonymous callers). */
  ip?: string;
  /** For subscriptions: is the caller's socket backlogged (latest-frame-wins for previews)? */
  backlogged?: () => boolean;
  /** For subscriptions: a preview frame published at `at` is about to be sent (preview delivery latency). */
  frameSent?: (at: Date) => void;
}
