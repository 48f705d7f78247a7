/**
 * The server: one Node process, one port. Express 5 serves Apollo Server (queries and mutations over HTTP) and
 * the PNG route; graphql-ws on `ws` serves subscriptions on the same HTTP server. Both GraphQL transports go
 * through one admission path (src/graphql/admission.ts). `drain()` is what SIGTERM does.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import express from 'express';
import cors from 'cors';
import { ApolloServer } from '@apollo/server';
import { expressMiddleware } from '@as-integrations/express5';
import { ApolloServerPluginDrainHttpServer } from '@apollo/server/plugin/drainHttpServer';
import { WebSocketServer } from 'ws';
import type { GraphQLError, GraphQLSchema } from 'graphql';
import type { Config } from '../config/index.js';
import { partLogger } from '../log/index.js';
import {
  Admission,
  admissionPlugin,
  apiError,
  buildSchema,
  extraValidationRules,
  formatError,
  formatErrors,
  graphql,
  responseTooLarge,
  type GraphQLContext,
} from '../graphql/index.js';
import {
  InProcessPubSub,
  SessionsService,
  hashToken,
  openDatabase,
  type Db,
  type EngineHooks,
  type GenerationEngine,
  type PubSub,
  type SessionModel,
} from '../sessions/index.js';
import type { RgbImage } from '../data/index.js';
import type { BatchInfo } from '../engine/index.js';
import { errorHandler, notFound, requireJsonBody, sendError } from './httpErrors.js';
import { ServerMetrics } from './metrics.js';
import { imageRoute } from './imageRoute.js';
import { serveGraphqlWs } from './wsTransport.js';
import { serveWebClient } from './webClient.js';

const log = partLogger('server');

export interface ServerOptions {
  config: Config;
  /** Build the generation engine around the sessions service's hooks; it reports every step to `onBatch`. */
  createEngine(hooks: EngineHooks, onBatch: (info: BatchInfo) => void): GenerationEngine | Promise<GenerationEngine>;
  /** Dataset -> the model that renders its sessions (key, name, canvas size, turn defaults). */
  models: Partial<Record<string, SessionModel>>;
  /** The empty canvas of a dataset. */
  background(dataset: string, size: number): RgbImage;
  encodePng(image: RgbImage): Buffer;
  /** The pub/sub seam (default: in-process; scale-out: Redis). */
  pubsub?: PubSub;
  /** Other servers and workers share the database and queue (scale-out): start-up resets nothing. */
  shared?: boolean;
}

export interface RunningServer {
  /** `http://host:port/graphql` */
  url: string;
  /** `ws://host:port/graphql` */
  wsUrl: string;
  /** `http://host:port` */
  origin: string;
  port: number;
  service: SessionsService;
  engine: GenerationEngine;
  db: Db;
  /**
   * Stop taking work at once (mutations and new subscriptions: INVALID_STATE), let the engine stop after its
   * current step (unfinished turns stay QUEUED), close.
   */
  drain(): Promise<void>;
}

export async function startServer(o: ServerOptions): Promise<RunningServer> {
  const { config } = o;
  const { limits } = config;
  const db = await openDatabase(config);
  const pubsub = o.pubsub ?? new InProcessPubSub();
  const service = new SessionsService({
    db,
    pubsub,
    config,
    models: o.models,
    background: o.background,
    encodePng: o.encodePng,
  });
  let engineRef: GenerationEngine | null = null;
  const metrics = new ServerMetrics({ engine: () => engineRef, db });
  const engine = metrics.observeEngine(await o.createEngine(metrics.observeHooks(service), (info) => metrics.batch(info)));
  engineRef = engine;
  service.attachEngine(engine);

  const schema: GraphQLSchema = buildSchema();
  const admission = new Admission({ schema, limits, tokenExists: (t) => service.tokenExists(t), hashToken });
  const app = express();
  app.disable('x-powered-by');
  // Bearer tokens, not cookies, carry identity: any origin may call the API (and read ETags for its cache).
  app.use(cors({ exposedHeaders: ['ETag', 'Retry-After'] }));
  serveWebClient(app); // the web client at / (dist/web)
  const httpServer = http.createServer(app);

  // ---- subscriptions: graphql-ws on the same server and path
  const wss = new WebSocketServer({ server: httpServer, path: '/graphql', maxPayload: limits.maxWsPayloadBytes });
  const wsServer = serveGraphqlWs(
    {
      // A bad or missing token closes the socket with 4403 Forbidden at connect.
      onConnect: async (ctx) => {
        const params = ctx.connectionParams ?? {};
        const credential = params.authorization ?? params.Authorization ?? params.token;
        if (typeof credential !== 'string') return false;
        try {
          ctx.extra.caller = await admission.identify(credential, ctx.extra.request.socket.remoteAddress);
        } catch {
          return false;
        }
        return true;
      },
      // The same admission as HTTP; a refused subscribe fails that operation only (an `error` message).
      onSubscribe: async (ctx, _id, payload) => {
        const caller = ctx.extra.caller!; // graphql-ws runs onSubscribe only on acknowledged connections
        try {
          await admission.settle();
          admission.charge(caller);
          const prepared = admission.prepare(caller, payload);
          if ('errors' in prepared) return prepared.errors;
          const contextValue: GraphQLContext = {
            service,
            ...caller,
            backlogged: () => ctx.extra.socket.bufferedAmount > config.wsHighWaterMarkBytes,
            frameSent: (at) => metrics.frameDelivered(at),
          };
          return { ...prepared.args, contextValue };
        } catch (err) {
          if (err instanceof graphql.GraphQLError) return [err];
          log.error({ err }, 'graphql-ws admission failed');
          return [apiError('INTERNAL_SERVER_ERROR', 'Internal server error.')];
        }
      },
      onError: (_ctx, _id, _payload, errors) => formatErrors(errors),
      onNext: (_ctx, _id, _payload, _args, result) => {
        const formatted = result.errors?.length ? { ...result, errors: formatErrors(result.errors) } : result;
        const bytes = Buffer.byteLength(JSON.stringify(formatted));
        if (bytes > limits.maxResponseBytes) {
          const e: GraphQLError = apiError('RESPONSE_TOO_LARGE', responseTooLarge(bytes, limits.maxResponseBytes), { limit: limits.maxResponseBytes });
          return { data: null, errors: formatErrors([e]) };
        }
        return formatted === result ? undefined : formatted;
      },
    },
    wss,
  );

  // ---- queries and mutations: Apollo Server
  const apollo = new ApolloServer<GraphQLContext>({
    schema,
    formatError,
    includeStacktraceInErrorResponses: false,
    introspection: true,
    parseOptions: { maxTokens: limits.maxQueryTokens },
    validationRules: extraValidationRules,
    plugins: [ApolloServerPluginDrainHttpServer({ httpServer }), admissionPlugin({ admission, limits })],
  });
  await apollo.start();

  app.get('/healthz', (_req, res) => {
    res.json({ ok: true, engine: engine.status() });
  });

  // Prometheus scrapes this (text exposition format).
  app.get('/metrics', async (_req, res) => {
    try {
      const { contentType, body } = await metrics.render();
      res.set('Content-Type', contentType).send(body);
    } catch (err) {
      log.error({ err }, 'metrics failed');
      sendError(res, 'INTERNAL_SERVER_ERROR', 'Metrics are unavailable.');
    }
  });

  app.get('/images/:file', imageRoute({ service, admission }));

  app.use(
    '/graphql',
    express.json({ limit: limits.maxHttpBodyBytes }),
    requireJsonBody,
    expressMiddleware(apollo, {
      // Admission, HTTP half: who is calling (401 for an unknown token), and one operation charged before parsing.
      context: async ({ req }): Promise<GraphQLContext> => {
        const caller = await admission.identify(req.headers.authorization ?? null, req.socket.remoteAddress);
        admission.charge(caller);
        return { service, ...caller };
      },
    }),
  );
  app.use(notFound);
  app.use(errorHandler(limits));

  const resumed = await service.resume({ shared: o.shared ?? false });
  await new Promise<void>((resolve, reject) => {
    httpServer.once('error', reject);
    httpServer.listen(config.port, config.host, () => resolve());
  });
  const { port } = httpServer.address() as AddressInfo;
  const origin = `http://${config.host}:${port}`;
  log.info({ origin, resumed }, 'listening');

  let draining: Promise<void> | null = null;
  const drain = (): Promise<void> =>
    (draining ??= (async () => {
      // Synchronously, before anything else: from here on new work is refused.
      service.stopAccepting();
      admission.startDraining();
      log.info('draining');
      await engine.drain();
      const suspended = await service.suspendRunning();
      await wsServer.dispose();
      await apollo.stop();
      pubsub.close();
      await db.$disconnect();
      log.info({ suspended }, 'drained');
    })());

  return {
    url: `${origin}/graphql`,
    wsUrl: `ws://${config.host}:${port}/graphql`,
    origin,
    port,
    service,
    engine,
    db,
    drain,
  };
}
