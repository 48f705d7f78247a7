/**
 * `npm start`: read the configuration, start the engine thread (it chooses the tensor backend and loads each
 * model on first use), serve, drain on SIGTERM. This thread does no tensor work.
 */
import { loadConfig, ConfigError } from '../config/index.js';
import { logger } from '../log/index.js';
import { startApp } from './app.js';

async function main(): Promise<void> {
  const config = loadConfig();
  const server = await startApp({ config });
  logger.info({ graphql: server.url, subscriptions: server.wsUrl, engine: server.engine.status() }, 'server ready');

  let stopping = false;
  const stop = (signal: string): void => {
    if (stopping) return;
    stopping = true;
    logger.info({ signal }, 'shutting down: draining');
    const timer = setTimeout(() => {
      logger.error('drain timed out; exiting');
      process.exit(1);
    }, config.shutdownTimeoutMs);
    timer.unref();
    server.drain().then(
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
  else logger.fatal({ err }, 'server failed to start');
  process.exit(1);
});
