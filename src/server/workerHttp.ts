/**
 * A generation worker's small HTTP listener (WORKER_METRICS_PORT): GET /metrics, Prometheus text with the
 * engine's and the process's metrics, and GET /healthz, 200 while the worker takes turns and 503 once it drains.
 * A worker serves no API; everything else is NOT_FOUND in the API's error shape.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import express from 'express';
import type { Limits } from '../config/index.js';
import { partLogger } from '../log/index.js';
import type { EngineMetrics } from './engineMetrics.js';
import { errorHandler, sendError } from './httpErrors.js';

const log = partLogger('server');

export interface WorkerHttpOptions {
  host: string;
  /** 0: any free port. */
  port: number;
  metrics: EngineMetrics;
  /** What /healthz reports; `draining` makes it answer 503. */
  health(): { draining: boolean } & Record<string, unknown>;
  limits: Limits;
}

export interface WorkerHttp {
  /** `http://host:port` */
  origin: string;
  port: number;
  close(): Promise<void>;
}

export async function serveWorkerHttp(o: WorkerHttpOptions): Promise<WorkerHttp> {
  const app = express();
  app.disable('x-powered-by');
  app.get('/healthz', (_req, res) => {
    const h = o.health();
    res.status(h.draining ? 503 : 200).json({ ok: !h.draining, ...h });
  });
  app.get('/metrics', async (_req, res) => {
    try {
      const { contentType, body } = await o.metrics.render();
      res.set('Content-Type', contentType).send(body);
    } catch (err) {
      log.error({ err }, 'metrics failed');
      sendError(res, 'INTERNAL_SERVER_ERROR', 'Metrics are unavailable.');
    }
  });
  app.use((req, res) => {
    sendError(res, 'NOT_FOUND', `Nothing is served at ${req.method} ${req.path.slice(0, 200)}; a generation worker serves GET /metrics and GET /healthz.`);
  });
  app.use(errorHandler(o.limits));
  const server = http.createServer(app);
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(o.port, o.host, () => resolve());
  });
  const { port } = server.address() as AddressInfo;
  return {
    origin: `http://${o.host}:${port}`,
    port,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
