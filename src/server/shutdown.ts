/**
 * SIGTERM / SIGINT for a program entry (the API server, the generation worker): drain once, exit 0 when drained,
 * 1 when draining fails or outlasts `timeoutMs`.
 */
import { logger } from '../log/index.js';

export function drainOnSignals(what: string, drain: () => Promise<void>, timeoutMs: number): void {
  let stopping = false;
  const stop = (signal: string): void => {
    if (stopping) return;
    stopping = true;
    logger.info({ signal }, `${what} shutting down: draining`);
    const timer = setTimeout(() => {
      logger.error(`${what}: drain timed out; exiting`);
      process.exit(1);
    }, timeoutMs);
    timer.unref();
    drain().then(
      () => process.exit(0),
      (err: unknown) => {
        logger.error({ err }, `${what}: drain failed`);
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
}
