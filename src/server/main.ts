/**
 * `npm start`: read the configuration, start the engine thread (it chooses the tensor backend and loads each
 * model on first use), serve, drain on SIGTERM. This thread does no tensor work.
 */
import { loadConfig, ConfigError } from '../config/index.js';
import { logger } from '../log/index.js';
import { startApp } from './app.js';
import { drainOnSignals } from './shutdown.js';

async function main(): Promise<void> {
  const config = loadConfig();
  const server = await startApp({ config });
  logger.info({ web: `${server.origin}/`, graphql: server.url, subscriptions: server.wsUrl, engine: server.engine.status() }, `server ready: open ${server.origin}/ in a browser`);

  drainOnSignals('server', () => server.drain(), config.shutdownTimeoutMs);
}

main().catch((err: unknown) => {
  if (err instanceof ConfigError) console.error(err.message);
  else logger.fatal({ err }, 'server failed to start');
  process.exit(1);
});
