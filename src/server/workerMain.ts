/**
 * `npm run worker`: a generation worker process (scale-out mode); drains on SIGTERM (its turns go back to the
 * queue), exits 0 when drained.
 */
import { ConfigError, loadConfig } from '../config/index.js';
import { logger } from '../log/index.js';
import { startWorker } from './worker.js';

async function main(): Promise<void> {
  const config = loadConfig();
  const worker = await startWorker(config);
  let stopping = false;
  const stop = (signal: string): void => {
    if (stopping) return;
    stopping = true;
    logger.info({ signal, worker: worker.id }, 'worker shutting down: draining');
    const timer = setTimeout(() => {
      logger.error('drain timed out; exiting');
      process.exit(1);
    }, config.shutdownTimeoutMs);
    timer.unref();
    worker.drain().then(
      () => process.exit(0),
      (err: unknown) => {
        logger.error({ err }, 'drain failed');
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
}

main().catch((err: unknown) => {
  if (err instanceof ConfigError) console.error(err.message);
  else logger.fatal({ err }, 'worker failed to start');
  process.exit(1);
});
