/**
 * `npm run worker`: a generation worker process (scale-out mode); drains on SIGTERM (its turns go back to the
 * queue), exits 0 when drained.
 */
import { ConfigError, loadConfig } from '../config/index.js';
import { logger } from '../log/index.js';
import { drainOnSignals } from './shutdown.js';
import { startWorker } from './worker.js';

async function main(): Promise<void> {
  const config = loadConfig();
  const worker = await startWorker(config);
  drainOnSignals(`worker ${worker.id}`, () => worker.drain(), config.shutdownTimeoutMs);
}

main().catch((err: unknown) => {
  if (err instanceof ConfigError) console.error(err.message);
  else logger.fatal({ err }, 'worker failed to start');
  process.exit(1);
});
