/**
 * A generation worker (src/server/worker.ts) in this process, beside an API server in this process, on the test's
 * own redis-server and a fresh PostgreSQL database: its /metrics and /healthz listener (WORKER_METRICS_PORT).
 * Needs `redis-server` and TEST_POSTGRES_URL, like test/server/cluster.test.ts.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeConfig } from '../../src/config/index.js';
import { startWorker, type RunningWorker } from '../../src/server/worker.js';
import { clusterAvailable, freshDatabase, startRedis, type Database, type RedisProcess } from '../utils/cluster.js';
import { createSession, startTestServer, submit, tinyCheckpoint, waitTurn, type TestServer, parseMetrics } from './harness.js';

describe.skipIf(!clusterAvailable())('generation worker: /metrics and /healthz', () => {
  let redis: RedisProcess;
  let db: Database;
  let api: TestServer;
  let worker: RunningWorker;

  beforeAll(async () => {
    redis = await startRedis();
    db = await freshDatabase();
    const shared = { redisUrl: redis.url, databaseUrl: db.url, modelPath: await tinyCheckpoint(), defaultSteps: 3, previewEvery: 1 };
    api = await startTestServer(shared);
    worker = await startWorker(makeConfig({ ...shared, host: '127.0.0.1', workerMetricsPort: 0 }));
  });
  afterAll(async () => {
    await worker?.drain();
    await api?.stop();
    await redis?.stop();
    await db?.drop();
  });

  it('counts the turns its engine ran, their steps and batch sizes, and reports the process; /healthz is 200 with the engine', async () => {
    expect(worker.metricsOrigin).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    const { sessionId, teller } = await createSession(api);
    const a = await submit(api, teller, sessionId, 'add a red cube', { steps: 3 });
    const b = await submit(api, teller, sessionId, 'add a blue sphere', { steps: 3 });
    expect((await waitTurn(api, teller, a.id)).status).toBe('SUCCEEDED');
    expect((await waitTurn(api, teller, b.id)).status).toBe('SUCCEEDED');

    const res = await fetch(`${worker.metricsOrigin}/metrics`);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toMatch(/^text\/plain/);
    const m = parseMetrics(await res.text());
    expect(m.get('codraw_engine_turns_ended_total{outcome="succeeded"}')).toBe(2);
    const stepCounts = [...m].filter(([k]) => k.startsWith('codraw_engine_step_ms_count{'));
    expect(stepCounts.map(([, v]) => v)).toEqual([6]);
    expect([...m].filter(([k]) => k.startsWith('codraw_engine_batch_samples_sum{')).map(([, v]) => v)).toEqual([6]);
    expect(m.get('codraw_turn_latency_ms_count')).toBe(2);
    expect(m.get('codraw_turn_first_preview_ms_count')).toBe(2);
    expect(m.get('codraw_engine_running')).toBe(0);
    expect(m.get('codraw_engine_queue_depth')).toBe(0);
    expect(m.has('codraw_nodejs_eventloop_lag_seconds')).toBe(true);
    expect(m.has('codraw_process_cpu_user_seconds_total')).toBe(true);
    // The database's view is the API servers' to report.
    expect([...m.keys()].some((k) => k.startsWith('codraw_turns{'))).toBe(false);

    const health = await fetch(`${worker.metricsOrigin}/healthz`);
    expect(health.status).toBe(200);
    expect(await health.json()).toMatchObject({ ok: true, draining: false, worker: expect.any(String), engine: { busy: false } });
    const other = await fetch(`${worker.metricsOrigin}/graphql`);
    expect(other.status).toBe(404);
    expect(await other.json()).toMatchObject({ errors: [{ extensions: { code: 'NOT_FOUND' } }] });
  });

  it('drain: /healthz answers 503 while the worker drains, and the listener closes with it', async () => {
    const drained = worker.drain();
    const during = await fetch(`${worker.metricsOrigin}/healthz`);
    expect(during.status).toBe(503);
    expect(await during.json()).toMatchObject({ ok: false, draining: true });
    await drained;
    await expect(fetch(`${worker.metricsOrigin}/healthz`)).rejects.toThrow();
  });
});
