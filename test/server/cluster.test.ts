/**
 * Scale-out mode on real processes: 2 API servers and 2 generation workers (child processes) on one PostgreSQL
 * database and the test's own redis-server, and the faults: kill -9 of a worker mid-turn, SIGTERM of a worker,
 * kill -9 of an API server, Redis restarted empty. Needs `redis-server` and TEST_POSTGRES_URL (.ci/run provides
 * both).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { Redis } from 'ioredis';
import { createClient, type Client } from 'graphql-ws';
import { initBackend } from '../../src/backend/index.js';
import { tinyCheckpoint } from './harness.js';
import {
  clusterAvailable, freshDatabase, gqlAt, startApiServer, startGenerationWorker, startRedis,
  type ClusterProcess, type Database, type RedisProcess,
} from '../utils/cluster.js';

interface FrameView {
  turnId: string;
  sequence: number;
  step: number;
  final: boolean;
  preview: string | null;
}

const PROGRESS = `subscription($s: ID!) { turnProgress(sessionId: $s) { turnId sequence step final preview } }`;
const SUBMIT = `mutation($i: SubmitTurnInput!) { submitTurn(input: $i) { id } }`;
const TURN = `query($id: ID!) { turn(id: $id) { id status latestPreview { step preview } } }`;

describe.skipIf(!clusterAvailable())('scale-out: 2 API servers, 2 workers, Redis, PostgreSQL', () => {
  let redis: RedisProcess;
  let db: Database;
  let env: Record<string, string>;
  const apis: ClusterProcess[] = [];
  const workers: ClusterProcess[] = [];
  const clients: Client[] = [];

  beforeAll(async () => {
    await initBackend('cpu'); // only to save the tiny checkpoint
    redis = await startRedis();
    db = await freshDatabase();
    env = {
      DATABASE_URL: db.url,
      REDIS_URL: redis.url,
      MODEL_PATH: await tinyCheckpoint(),
      DEFAULT_STEPS: '4',
      PREVIEW_EVERY: '1',
      MAX_OPERATIONS_PER_MINUTE: '100000',
      MAX_QUEUED_TURNS_PER_SESSION: '16',
      // A killed worker's jobs come back after 6 s (the default 10 s would only slow the test).
      QUEUE_LOCK_MS: '6000',
      QUEUE_STALLED_CHECK_MS: '1000',
      // Two workers and two servers share 2 cores.
      OMP_NUM_THREADS: '1',
      // Drain waits out the current step, which is slow on a loaded 2-core machine.
      SHUTDOWN_TIMEOUT_MS: '60000',
    };
    // The first API server migrates the new database; the rest start together.
    apis.push(await startApiServer('api-1', env));
    const [api2, w1, w2] = await Promise.all([
      startApiServer('api-2', env),
      startGenerationWorker('worker-1', env, { metrics: true }),
      startGenerationWorker('worker-2', env, { metrics: true }),
    ]);
    apis.push(api2);
    workers.push(w1, w2);
  });

  afterAll(async () => {
    await Promise.all(clients.map((c) => c.dispose()));
    for (const p of [...apis, ...workers]) p.kill('SIGKILL');
    await Promise.all([...apis, ...workers].map((p) => p.exited));
    await redis?.stop();
    await db?.drop();
  });

  function live(): ClusterProcess[] {
    return apis.filter((a) => !exitedNow.has(a.pid));
  }
  const exitedNow = new Set<number>();

  async function createSession(api: ClusterProcess, title: string): Promise<{ sessionId: string; teller: string }> {
    const d = await gqlAt<{ createSession: { token: string; session: { id: string } } }>(
      api.url!, `mutation($i: CreateSessionInput!) { createSession(input: $i) { token session { id } } }`, { i: { title, name: 'Tess' } },
    );
    return { sessionId: d.createSession.session.id, teller: d.createSession.token };
  }

  /** Follow a session's frames on one API server. */
  function follow(api: ClusterProcess, token: string, sessionId: string): { frames: FrameView[]; until(cond: (f: FrameView[]) => boolean, ms?: number): Promise<void> } {
    const frames: FrameView[] = [];
    const client = createClient({ url: api.wsUrl!, webSocketImpl: WebSocket, connectionParams: { authorization: `Bearer ${token}` }, retryAttempts: 0 });
    clients.push(client);
    client.subscribe<{ turnProgress: FrameView }>({ query: PROGRESS, variables: { s: sessionId } }, {
      next: (r) => r.data && frames.push(r.data.turnProgress),
      error: () => undefined,
      complete: () => undefined,
    });
    return {
      frames,
      async until(cond, ms = 120_000) {
        const deadline = Date.now() + ms;
        while (!cond(frames)) {
          if (Date.now() > deadline) throw new Error(`timed out; ${frames.length} frames`);
          await new Promise((r) => setTimeout(r, 50));
        }
      },
    };
  }

  async function online(api: ClusterProcess, token: string, sessionId: string): Promise<void> {
    for (let i = 0; i < 200; i++) {
      const d = await gqlAt<{ session: { me: { online: boolean } } }>(api.url!, `query($s: ID!) { session(id: $s) { me { online } } }`, { s: sessionId }, token);
      if (d.session.me.online) {
        // The Redis subscription of that server is registered right after; give it a moment.
        await new Promise((r) => setTimeout(r, 200));
        return;
      }
      await new Promise((r) => setTimeout(r, 50));
    }
    throw new Error('subscriber never came online');
  }

  async function statuses(): Promise<Record<string, number>> {
    const rows = await db.query<{ status: string; n: string }>(`SELECT status, count(*) AS n FROM "Turn" GROUP BY status`);
    return Object.fromEntries(rows.map((r) => [r.status, Number(r.n)]));
  }

  async function waitTurn(api: ClusterProcess, token: string, id: string, ms = 120_000): Promise<string> {
    const deadline = Date.now() + ms;
    for (;;) {
      const d = await gqlAt<{ turn: { status: string } }>(api.url!, TURN, { id }, token);
      if (['SUCCEEDED', 'FAILED', 'CANCELLED'].includes(d.turn.status)) return d.turn.status;
      if (Date.now() > deadline) throw new Error(`turn ${id} still ${d.turn.status}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  }

  /** The worker process whose engine is running a turn now (from the workers' heartbeats in Redis). */
  async function busyWorker(): Promise<ClusterProcess> {
    const r = new Redis(redis.url);
    try {
      for (let i = 0; i < 400; i++) {
        const keys = await r.keys('codraw:worker:*');
        for (const v of keys.length ? await r.mget(keys) : []) {
          const hb = v ? (JSON.parse(v) as { pid: number; status: { running?: number } }) : null;
          const w = hb && (hb.status.running ?? 0) > 0 ? workers.find((x) => x.pid === hb.pid) : undefined;
          if (w) return w;
        }
        await new Promise((res) => setTimeout(res, 50));
      }
    } finally {
      r.disconnect();
    }
    throw new Error('no worker reported a running turn');
  }

  it('8 sessions across both API servers: every turn ends once, and both servers deliver the same frames in the same order', async () => {
    const sessions = await Promise.all(Array.from({ length: 8 }, (_, i) => createSession(apis[i % 2]!, `s${i}`)));
    const watch = sessions.map((s) => [follow(apis[0]!, s.teller, s.sessionId), follow(apis[1]!, s.teller, s.sessionId)] as const);
    for (const s of sessions) await Promise.all(apis.map((a) => online(a, s.teller, s.sessionId)));
    const turnIds: string[][] = [];
    await Promise.all(sessions.map(async (s, i) => {
      const ids: string[] = [];
      for (let k = 0; k < 2; k++) {
        const d = await gqlAt<{ submitTurn: { id: string } }>(apis[(i + k) % 2]!.url!, SUBMIT, { i: { sessionId: s.sessionId, instruction: `add a red cube ${k}`, steps: 3 } }, s.teller);
        ids.push(d.submitTurn.id);
      }
      turnIds[i] = ids;
    }));
    for (const [i, [a, b]] of watch.entries()) {
      const done = (f: FrameView[]) => turnIds[i]!.every((id) => f.some((x) => x.turnId === id && x.final));
      await a.until(done);
      await b.until(done);
      const key = (f: FrameView) => `${f.turnId}:${f.sequence}:${f.step}:${f.final}`;
      expect(b.frames.map(key)).toEqual(a.frames.map(key));
      // Each turn: steps 1..3 in order, then exactly one final frame; the session's second turn after its first.
      for (const id of turnIds[i]!) {
        const mine = a.frames.filter((f) => f.turnId === id);
        expect(mine.filter((f) => f.final)).toHaveLength(1);
        expect(mine.map((f) => f.step)).toEqual([...mine.map((f) => f.step)].sort((x, y) => x - y));
      }
      const lastOfFirst = a.frames.findLastIndex((f) => f.turnId === turnIds[i]![0]);
      const firstOfSecond = a.frames.findIndex((f) => f.turnId === turnIds[i]![1]);
      expect(firstOfSecond).toBeGreaterThan(lastOfFirst);
    }
    expect(await statuses()).toEqual({ SUCCEEDED: 16 });
    // Every result's latent is in the shared store, for the session's next turn on whichever worker.
    const r = new Redis(redis.url);
    expect(await r.keys('codraw:latent:*')).toHaveLength(16);
    r.disconnect();
    // Both workers took turns (each logged some), and the API servers see them.
    const status = await gqlAt<{ engineStatus: { device: string } }>(apis[0]!.url!, `{ engineStatus { device } }`);
    expect(status.engineStatus.device).toMatch(/^2 workers/);
    // Each worker's /metrics counts the turns its engine ran and their steps (a turn whose lock lapsed under load
    // may run twice, so at least 16); both are healthy.
    let ended = 0;
    let steps = 0;
    for (const w of workers) {
      expect((await fetch(`${w.origin}/healthz`)).status).toBe(200);
      const text = await (await fetch(`${w.origin}/metrics`)).text();
      ended += Number(/^codraw_engine_turns_ended_total\{outcome="succeeded"\} (\d+)$/m.exec(text)?.[1] ?? 0);
      steps += Number(/^codraw_engine_step_ms_count\{model="[^"]+"\} (\d+)$/m.exec(text)?.[1] ?? 0);
    }
    expect(ended).toBeGreaterThanOrEqual(16);
    expect(steps).toBeGreaterThan(0);
  });

  it('kill -9 of the worker running a turn: the other worker finishes it, subscribers get its frames and final image', async () => {
    const s = await createSession(apis[0]!, 'kill worker');
    const f = follow(apis[1]!, s.teller, s.sessionId);
    await online(apis[1]!, s.teller, s.sessionId);
    const d = await gqlAt<{ submitTurn: { id: string } }>(apis[0]!.url!, SUBMIT, { i: { sessionId: s.sessionId, instruction: 'add a blue sphere', steps: 60 } }, s.teller);
    await f.until((fs) => fs.some((x) => x.turnId === d.submitTurn.id && x.step >= 2));
    const victim = await busyWorker();
    victim.kill('SIGKILL');
    await victim.exited;
    workers.splice(workers.indexOf(victim), 1);
    expect(await waitTurn(apis[0]!, s.teller, d.submitTurn.id)).toBe('SUCCEEDED');
    await f.until((fs) => fs.some((x) => x.turnId === d.submitTurn.id && x.final));
    expect((await statuses()).RUNNING ?? 0).toBe(0);
    workers.push(await startGenerationWorker('worker-3', env));
  });

  it('SIGTERM of a worker drains it: it exits 0 and its turn goes back to the queue for the other worker', async () => {
    const s = await createSession(apis[1]!, 'drain worker');
    const f = follow(apis[0]!, s.teller, s.sessionId);
    await online(apis[0]!, s.teller, s.sessionId);
    const d = await gqlAt<{ submitTurn: { id: string } }>(apis[1]!.url!, SUBMIT, { i: { sessionId: s.sessionId, instruction: 'add a green cylinder', steps: 60 } }, s.teller);
    await f.until((fs) => fs.some((x) => x.turnId === d.submitTurn.id && x.step >= 2));
    const victim = await busyWorker();
    victim.kill('SIGTERM');
    const exit = await victim.exited;
    expect(exit.code, victim.output().slice(-3000)).toBe(0);
    workers.splice(workers.indexOf(victim), 1);
    expect(await waitTurn(apis[1]!, s.teller, d.submitTurn.id)).toBe('SUCCEEDED');
    await f.until((fs) => fs.some((x) => x.turnId === d.submitTurn.id && x.final));
    workers.push(await startGenerationWorker('worker-4', env));
  });

  it('kill -9 of an API server: its client reconnects to the other, sees the running turn and its latest preview, and gets the rest', async () => {
    const victim = apis[0]!;
    const other = apis[1]!;
    const s = await createSession(victim, 'kill api');
    const f = follow(victim, s.teller, s.sessionId);
    await online(victim, s.teller, s.sessionId);
    const d = await gqlAt<{ submitTurn: { id: string } }>(victim.url!, SUBMIT, { i: { sessionId: s.sessionId, instruction: 'add a red cube', steps: 60 } }, s.teller);
    await f.until((fs) => fs.some((x) => x.turnId === d.submitTurn.id && x.step >= 2 && x.preview));
    victim.kill('SIGKILL');
    await victim.exited;
    exitedNow.add(victim.pid);
    // Catch up on the other server: the turn's state and its latest preview, then the live frames.
    const now = await gqlAt<{ turn: { status: string; latestPreview: { step: number; preview: string } | null } }>(other.url!, TURN, { id: d.submitTurn.id }, s.teller);
    expect(now.turn.status).toBe('RUNNING');
    expect(now.turn.latestPreview?.preview).toMatch(/^data:image\/png;base64,/);
    expect(now.turn.latestPreview!.step).toBeGreaterThanOrEqual(2);
    const g = follow(other, s.teller, s.sessionId);
    await g.until((fs) => fs.some((x) => x.turnId === d.submitTurn.id && x.final));
    expect(g.frames.filter((x) => !x.final).every((x) => x.step > now.turn.latestPreview!.step - 1)).toBe(true);
    expect(live()).toEqual([other]);
  });

  it('Redis restarted empty: servers and workers reconnect, and every unfinished turn still ends (PostgreSQL decides)', async () => {
    const api = live()[0]!;
    const s = await createSession(api, 'redis restart');
    const ids: string[] = [];
    for (let k = 0; k < 3; k++) {
      const d = await gqlAt<{ submitTurn: { id: string } }>(api.url!, SUBMIT, { i: { sessionId: s.sessionId, instruction: `add a cube ${k}`, steps: 20 } }, s.teller);
      ids.push(d.submitTurn.id);
    }
    await redis.restart(1000);
    for (const id of ids) expect(await waitTurn(api, s.teller, id, 180_000)).toBe('SUCCEEDED');
    const st = await statuses();
    expect(st.RUNNING ?? 0).toBe(0);
    expect(st.QUEUED ?? 0).toBe(0);
    // And the cluster serves new work.
    const d = await gqlAt<{ submitTurn: { id: string } }>(api.url!, SUBMIT, { i: { sessionId: s.sessionId, instruction: 'add one more', steps: 2 } }, s.teller);
    expect(await waitTurn(api, s.teller, d.submitTurn.id)).toBe('SUCCEEDED');
  });
});
