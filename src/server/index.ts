/**
 * The server: one Node process, one port. Express 5 serves Apollo Server (queries and mutations over HTTP) and
 * the PNG route; graphql-ws on `ws` serves subscriptions on the same HTTP server. `drain()` is what SIGTERM does.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import express, { type Request, type Response } from 'express';
import cors from 'cors';
import { ApolloServer } from '@apollo/server';
import { expressMiddleware } from '@as-integrations/express5';
import { ApolloServerPluginDrainHttpServer } from '@apollo/server/plugin/drainHttpServer';
import { WebSocketServer } from 'ws';
import type { DocumentNode, GraphQLSchema } from 'graphql';
import type { Config } from '../config/index.js';
import { partLogger } from '../log/index.js';
import {
  buildSchema,
  checkOperation,
  formatError,
  formatErrors,
  limitsPlugin,
  RateLimiter,
  apiError,
  graphql,
  type GraphQLContext,
} from '../graphql/index.js';
import {
  DomainError,
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
import { ServerMetrics } from './metrics.js';
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
  /** Stop taking work, let the engine stop after its current step (unfinished turns stay QUEUED), close. */
  drain(): Promise<void>;
}

/** `Bearer <token>` (or a bare token) -> token. */
export function bearer(value: unknown): string | null {
  if (typeof value !== 'string') return null;
  const m = /^\s*(?:Bearer\s+)?(\S+)\s*$/i.exec(value);
  return m ? m[1]! : null;
}


export async function startServer(o: ServerOptions): Promise<RunningServer> {
  const { config } = o;
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
  const rateLimiter = new RateLimiter(config.limits.maxOperationsPerMinute);
  const app = express();
  app.disable('x-powered-by');
  // Bearer tokens, not cookies, carry identity: any origin may call the API (and read ETags for its cache).
  app.use(cors({ exposedHeaders: ['ETag'] }));
  serveWebClient(app); // the web client at / (dist/web)
  const httpServer = http.createServer(app);

  // ---- subscriptions: graphql-ws on the same server and path
  const wss = new WebSocketServer({ server: httpServer, path: '/graphql', maxPayload: config.limits.maxWsPayloadBytes });
  const wsServer = serveGraphqlWs(
    {
      schema,
      context: (ctx): GraphQLContext => ({
        service,
        token: ctx.extra.token ?? null,
        tokenHash: ctx.extra.tokenHash ?? null,
        backlogged: () => ctx.extra.socket.bufferedAmount > config.wsHighWaterMarkBytes,
        frameSent: (at) => metrics.frameDelivered(at),
      }),
      // A bad or missing token closes the socket with 4403 Forbidden at connect.
      onConnect: async (ctx) => {
        const params = ctx.connectionParams ?? {};
        const token = bearer(params.authorization ?? params.Authorization ?? params.token);
        if (!token || !(await service.tokenExists(token))) return false;
        ctx.extra.token = token;
        ctx.extra.tokenHash = hashToken(token);
        return true;
      },
      // Subscriptions go through the same limits as HTTP operations.
      onSubscribe: (ctx, _id, payload) => {
        const limited = rateLimiter.hit(ctx.extra.tokenHash ?? `ip:${ctx.extra.request.socket.remoteAddress}`);
        if (limited) return [limited];
        let document: DocumentNode;
        try {
          document = graphql.parse(payload.query);
        } catch {
          return; // graphql-ws reports the syntax error itself
        }
        const errors = checkOperation(config.limits, {
          schema,
          document,
          operationName: payload.operationName,
          variables: payload.variables,
        });
        return errors.length ? errors : undefined;
      },
      onError: (_ctx, _id, _payload, errors) => formatErrors(errors),
      onNext: (_ctx, _id, _payload, _args, result) =>
        result.errors?.length ? { ...result, errors: formatErrors(result.errors) } : undefined,
    },
    wss,
  );

  // ---- queries and mutations: Apollo Server
  const apollo = new ApolloServer<GraphQLContext>({
    schema,
    formatError,
    introspection: true,
    plugins: [
      ApolloServerPluginDrainHttpServer({ httpServer }),
      limitsPlugin({ limits: config.limits, rateLimiter, anonymousKey: (ctx) => `ip:${ctx.ip ?? 'unknown'}` }),
    ],
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
      res.status(500).json({ code: 'INTERNAL_SERVER_ERROR', message: 'Metrics are unavailable.' });
    }
  });

  // ---- images: stable URL, immutable content (the id never changes its bytes)
  app.get('/images/:file', async (req: Request, res: Response) => {
    const m = /^([A-Za-z0-9-]+)\.png$/.exec(String(req.params.file));
    if (!m) {
      res.status(404).json({ code: 'NOT_FOUND', message: 'Images are at /images/<id>.png.' });
      return;
    }
    const token = bearer(req.headers.authorization);
    if (!token || !(await service.tokenExists(token))) {
      res.status(401).set('WWW-Authenticate', 'Bearer').json({ code: 'UNAUTHENTICATED', message: 'Send your bearer token.' });
      return;
    }
    try {
      const { png, sha256 } = await service.imagePng(hashToken(token), m[1]!);
      const etag = `"${sha256}"`;
      res.set({
        ETag: etag,
        'Cache-Control': 'private, max-age=31536000, immutable',
        'Content-Type': 'image/png',
      });
      if (req.headers['if-none-match'] === etag) {
        res.status(304).end();
        return;
      }
      res.status(200).send(png);
    } catch (err) {
      if (err instanceof DomainError) {
        res.status(err.code === 'NOT_FOUND' ? 404 : 403).json({ code: err.code, message: err.message });
        return;
      }
      log.error({ err }, 'image route failed');
      res.status(500).json({ code: 'INTERNAL_SERVER_ERROR', message: 'Internal server error.' });
    }
  });

  app.use(
    '/graphql',
    express.json({ limit: config.limits.maxHttpBodyBytes }),
    expressMiddleware(apollo, {
      context: async ({ req }): Promise<GraphQLContext> => {
        const token = bearer(req.headers.authorization);
        if (req.headers.authorization !== undefined && (!token || !(await service.tokenExists(token)))) {
          throw apiError('UNAUTHENTICATED', 'The bearer token is not valid; join a session to get one.');
        }
        return { service, token, tokenHash: token ? hashToken(token) : null, ip: req.socket.remoteAddress ?? 'unknown' };
      },
    }),
  );
  // Too-large or malformed HTTP bodies: a typed error, nothing executed.
  app.use((err: Error & { type?: string; status?: number }, _req: Request, res: Response, next: (e?: unknown) => void) => {
    if (err.type === 'entity.too.large') {
      res.status(413).json({ errors: [{ message: `The request body is over ${config.limits.maxHttpBodyBytes} bytes.`, extensions: { code: 'PAYLOAD_TOO_LARGE' } }] });
      return;
    }
    if (err.type === 'entity.parse.failed') {
      res.status(400).json({ errors: [{ message: 'The request body is not valid JSON.', extensions: { code: 'BAD_REQUEST' } }] });
      return;
    }
    next(err);
  });

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
      log.info('draining');
      service.stopAccepting();
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
