/**
 * `npm run bench:server`: the real server (src/server/main.ts in its own process) on loopback; N sessions (1, 4, 8)
 * submit turns at once while M graphql-ws subscribers per session watch turnProgress. Prints turn latency
 * (p50/p95), time to first preview, preview delivery latency to subscribers (p95) and throughput (turns per
 * minute), with batching on and off. The last line is one JSON object.
 *
 * While the turns run, a prober sends GET /healthz and `{ engineStatus { busy } }` every 50 ms and reports their
 * p50/p95/p99 (and the same for 3 s of idle after the warm-up): what every other client of a busy server waits.
 * Options: --sessions 1,4,8  --subscribers 20  --turns 2 (per session)  --steps 50|default (default: send none, the
 *          model's recommended settings)  --preview-every 2  --batching on|off|both
 *          --model DIR (default: the tiny preset saved to a temp folder)  --backend auto|native-cpu|cpu|tensorflow
 *          --sequential: each session submits its next turn when the previous one is final (with --sessions 1:
 *          one turn alone, submit -> first frame and submit -> final image as a client sees them)
 *          --cluster: also the largest load on 2 API servers + 2 generation workers (own redis-server, a fresh
 *          database on TEST_POSTGRES_URL's server): preview delivery through Redis, lost / duplicated turns
 * Targets on the 2-core machine: 8 sessions finish >= 2x faster with batching; preview p95 < 50 ms at 20 subscribers.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import net from 'node:net';
import path from 'node:path';
import WebSocket from 'ws';
import { createClient, type Client } from 'graphql-ws';
import { initBackend } from '../../src/backend/index.js';
import { tempDir, tinyCheckpoint } from '../server/harness.js';
import { freshDatabase, startApiServer, startGenerationWorker, startRedis, type ClusterProcess } from '../utils/cluster.js';

interface Args {
  sessions: number[];
  subscribers: number;
  turns: number;
  steps: number;
  previewEvery: number;
  model: string | null;
  backend: string;
  /** Which batching modes to run. */
  batching: boolean[];
  /** Send no `steps` (the model's recommended defaults) instead of --steps. */
  defaultSettings: boolean;
  /** Also run the load on a cluster: 2 API servers and 2 workers, Redis and PostgreSQL (TEST_POSTGRES_URL). */
  cluster: boolean;
  /** Each session submits its next turn only when the previous one is final (turn latency alone, no queueing). */
  sequential: boolean;
}

function parseArgs(argv: string[]): Args {
  const a: Args = {
    sessions: [1, 4, 8], subscribers: 20, turns: 2, steps: 50, previewEvery: 2, model: null, backend: process.env.TENSOR_BACKEND ?? 'auto',
    batching: [true, false], defaultSettings: false, cluster: false, sequential: false,
  };
  for (let i = 0; i < argv.length; i++) {
    const [flag, inline] = argv[i]!.split('=', 2) as [string, string | undefined];
    const v = (): string => inline ?? argv[++i] ?? '';
    if (flag === '--sessions') a.sessions = v().split(',').map(Number);
    else if (flag === '--subscribers') a.subscribers = Number(v());
    else if (flag === '--turns') a.turns = Number(v());
    else if (flag === '--steps') {
      const x = v();
      a.defaultSettings = x === 'default';
      a.steps = a.defaultSettings ? 0 : Number(x);
    } else if (flag === '--batching') a.batching = ({ on: [true], off: [false], both: [true, false] } as Record<string, boolean[]>)[v()] ?? [true, false];
    else if (flag === '--preview-every') a.previewEvery = Number(v());
    else if (flag === '--model') a.model = v();
    else if (flag === '--backend') a.backend = v();
    else if (flag === '--cluster') a.cluster = true;
    else if (flag === '--sequential') a.sequential = true;
    else throw new Error(`unknown option ${flag}`);
  }
  return a;
}

const pct = (xs: number[], p: number): number => {
  if (!xs.length) return NaN;
  const s = [...xs].sort((x, y) => x - y);
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1))]!;
};
const r1 = (x: number): number => Math.round(x * 10) / 10;

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as net.AddressInfo;
      srv.close(() => resolve(port));
    });
    srv.on('error', reject);
  });
}

interface Server {
  url: string;
  wsUrl: string;
  child: ChildProcess;
  stop(): Promise<void>;
}

async function startServer(model: string, batching: boolean, args: Args): Promise<Server> {
  const port = await freePort();
  const root = path.resolve(import.meta.dirname, '../..');
  const child = spawn(process.execPath, ['--import', 'tsx', 'src/server/main.ts'], {
    cwd: root,
    env: {
      ...process.env,
      LOG_LEVEL: 'warn',
      HOST: '127.0.0.1',
      PORT: String(port),
      DATA_DIR: tempDir('codraw-bench-'),
      MODEL_PATH: model,
      TENSOR_BACKEND: args.backend,
      BATCHING: String(batching),
      MAX_BATCH_SIZE: '8',
      PREVIEW_EVERY: String(args.previewEvery),
      MAX_OPERATIONS_PER_MINUTE: '1000000',
      MAX_QUEUED_TURNS_PER_SESSION: String(Math.max(8, args.turns)),
    },
    stdio: ['ignore', 'inherit', 'inherit'],
  });
  const origin = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + 120_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`server exited with ${child.exitCode}`);
    const ok = await fetch(`${origin}/healthz`).then((r) => r.ok).catch(() => false);
    if (ok) break;
    if (Date.now() > deadline) throw new Error('server did not start');
    await new Promise((r) => setTimeout(r, 200));
  }
  return {
    url: `${origin}/graphql`,
    wsUrl: `ws://127.0.0.1:${port}/graphql`,
    child,
    stop: () =>
      new Promise<void>((resolve) => {
        child.once('exit', () => resolve());
        child.kill('SIGTERM');
      }),
  };
}

async function gql<T>(url: string, query: string, variables: Record<string, unknown>, token?: string): Promise<T> {
  const r = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...(token ? { authorization: `Bearer ${token}` } : {}) },
    body: JSON.stringify({ query, variables }),
  });
  const body = (await r.json()) as { data?: T; errors?: unknown[] };
  if (body.errors || !body.data) throw new Error(JSON.stringify(body.errors));
  return body.data;
}

/** Latencies of what every client does while turns run: GET /healthz and a trivial query, one of each every 50 ms. */
interface Responsiveness {
  probes: number;
  healthzP50Ms: number;
  healthzP95Ms: number;
  healthzP99Ms: number;
  queryP50Ms: number;
  queryP95Ms: number;
  queryP99Ms: number;
}

function probe(server: Server, stopped: () => boolean): Promise<Responsiveness> {
  const origin = server.url.replace('/graphql', '');
  const healthz: number[] = [];
  const query: number[] = [];
  const timed = async (xs: number[], f: () => Promise<Response>): Promise<void> => {
    const t = performance.now();
    const r = await f();
    await r.arrayBuffer();
    xs.push(performance.now() - t);
  };
  const loop = async (): Promise<void> => {
    while (!stopped()) {
      const tick = new Promise((r) => setTimeout(r, 50));
      await Promise.all([
        timed(healthz, () => fetch(`${origin}/healthz`)),
        timed(query, () => fetch(server.url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ query: '{ engineStatus { busy } }' }) })),
      ]);
      await tick;
    }
  };
  return loop().then(() => ({
    probes: healthz.length,
    healthzP50Ms: r1(pct(healthz, 50)),
    healthzP95Ms: r1(pct(healthz, 95)),
    healthzP99Ms: r1(pct(healthz, 99)),
    queryP50Ms: r1(pct(query, 50)),
    queryP95Ms: r1(pct(query, 95)),
    queryP99Ms: r1(pct(query, 99)),
  }));
}

interface FrameMsg {
  turnId: string;
  sequence: number;
  final: boolean;
  at: string;
}

interface RunResult {
  batching: boolean;
  sessions: number;
  subscribersPerSession: number;
  turns: number;
  wallMs: number;
  turnLatencyP50Ms: number;
  turnLatencyP95Ms: number;
  firstPreviewP50Ms: number;
  firstPreviewP95Ms: number;
  previewDeliveryP50Ms: number;
  previewDeliveryP95Ms: number;
  framesDelivered: number;
  turnsPerMinute: number;
  /** Submitted turns whose final frame never came, and final frames beyond one per turn (cluster faults). */
  lostTurns: number;
  duplicatedFinals: number;
  /** While the turns ran. */
  busy: Responsiveness;
  phases: TurnPhases;
}

/** p50 of each phase of a turn, ms. */
interface TurnPhases {
  submitToRowMs: number;
  rowToStartMs: number;
  runMs: number;
  finishToFrameMs: number;
}

/**
 * N sessions' turns at once. With several servers (cluster mode), session i is created and driven through server
 * i mod S, and its subscribers are spread over all servers, so frames cross Redis to reach them.
 */
async function run(servers: Server[], batching: boolean, n: number, args: Args): Promise<RunResult> {
  const server = servers[0]!;
  const at = (i: number): Server => servers[i % servers.length]!;
  const finalsPerTurn = new Map<string, number>();
  const clients: Client[] = [];
  const delivery: number[] = [];
  const firstPreview = new Map<string, number>();
  const finalAt = new Map<string, number>();
  const submittedAt = new Map<string, number>();
  let framesDelivered = 0;
  let lastFrameAt = Date.now();
  const finals = { count: 0, wake: (): void => undefined };
  const finalWaiters = new Map<string, () => void>();

  const sessions = await Promise.all(
    Array.from({ length: n }, async (_, i) => {
      const c = await gql<{ createSession: { token: string; session: { id: string } } }>(
        at(i).url,
        `mutation($i: CreateSessionInput!) { createSession(input: $i) { token session { id } } }`,
        { i: { title: `bench ${i}`, name: `teller ${i}` } },
      );
      return { index: i, id: c.createSession.session.id, teller: c.createSession.token };
    }),
  );

  // M subscribers per session: the teller and M-1 observers, each on its own connection.
  await Promise.all(
    sessions.map(async (s) => {
      const tokens = [s.teller];
      // One observer invite for all of them (only when there are observers).
      const inv = args.subscribers > 1
        ? await gql<{ createInvite: { code: string } }>(
            at(s.index).url,
            `mutation($s: ID!) { createInvite(sessionId: $s, role: OBSERVER, maxUses: ${Math.max(1, args.subscribers - 1)}) { code } }`,
            { s: s.id },
            s.teller,
          )
        : null;
      for (let k = 1; k < args.subscribers; k++) {
        const j = await gql<{ joinSession: { token: string } }>(
          at(s.index).url,
          `mutation($i: JoinSessionInput!) { joinSession(input: $i) { token } }`,
          { i: { sessionId: s.id, name: `watcher ${k}`, role: 'OBSERVER', invite: inv!.createInvite.code } },
        );
        tokens.push(j.joinSession.token);
      }
      let live = 0;
      await new Promise<void>((allLive) => {
        tokens.forEach((token, k) => {
          const client = createClient({
            url: at(s.index + k).wsUrl,
            webSocketImpl: WebSocket,
            connectionParams: { authorization: `Bearer ${token}` },
            retryAttempts: 0,
          });
          clients.push(client);
          client.subscribe<{ turnProgress: FrameMsg }>(
            { query: `subscription($s: ID!) { turnProgress(sessionId: $s) { turnId sequence final at } }`, variables: { s: s.id } },
            {
              next: ({ data }) => {
                const now = Date.now();
                const f = data!.turnProgress;
                framesDelivered++;
                lastFrameAt = now;
                if (!f.final) delivery.push(now - Date.parse(f.at));
                if (f.final && k === 0) finalsPerTurn.set(f.turnId, (finalsPerTurn.get(f.turnId) ?? 0) + 1);
                if (k !== 0) return;
                if (!f.final && !firstPreview.has(f.turnId)) firstPreview.set(f.turnId, now);
                if (f.final) {
                  finalAt.set(f.turnId, now);
                  finals.count++;
                  finals.wake();
                  finalWaiters.get(f.turnId)?.();
                }
              },
              error: (e) => console.error('subscription error', e),
              complete: () => undefined,
            },
          );
          // Live once the server has the subscription: the participant's online flag flips.
          void (async () => {
            for (;;) {
              const q = await gql<{ session: { me: { online: boolean } } }>(at(s.index + k).url, `query($s: ID!) { session(id: $s) { me { online } } }`, { s: s.id }, token);
              if (q.session.me.online) break;
              await new Promise((r) => setTimeout(r, 20));
            }
            if (++live === tokens.length) allLive();
          })();
        });
      });
    }),
  );
  const t0 = Date.now();
  let loadDone = false;
  const busy = probe(server, () => loadDone);
  await Promise.all(
    sessions.map(async (s) => {
      for (let k = 0; k < args.turns; k++) {
        const sentAt = Date.now();
        const d = await gql<{ submitTurn: { id: string } }>(
          at(s.index).url,
          `mutation($i: SubmitTurnInput!) { submitTurn(input: $i) { id } }`,
          { i: { sessionId: s.id, instruction: `add a red cube number ${k}`, ...(args.defaultSettings ? {} : { steps: args.steps }), seed: k + 1 } },
          s.teller,
        );
        submittedAt.set(d.submitTurn.id, sentAt);
        if (args.sequential && !finalAt.has(d.submitTurn.id)) await new Promise<void>((r) => finalWaiters.set(d.submitTurn.id, r));
      }
    }),
  );
  const total = n * args.turns;
  // Every submitted turn's final frame, or 3 minutes without a new frame (then the missing ones count as lost).
  await new Promise<void>((resolve) => {
    const stall = setInterval(() => {
      if (Date.now() - lastFrameAt > 180_000) {
        clearInterval(stall);
        resolve();
      }
    }, 1000);
    finals.wake = () => {
      if (submittedAt.size === total && [...submittedAt.keys()].every((id) => finalAt.has(id))) {
        clearInterval(stall);
        resolve();
      }
    };
    finals.wake();
  });
  loadDone = true;
  const responsiveness = await busy;
  const wallMs = Math.max(...finalAt.values()) - t0;
  const lostTurns = [...submittedAt.keys()].filter((id) => !finalAt.has(id)).length;
  const duplicatedFinals = [...finalsPerTurn.values()].reduce((d, c) => d + Math.max(0, c - 1), 0);
  await Promise.all(clients.map((c) => c.dispose()));
  const phases = await turnPhases(servers, sessions, submittedAt, finalAt);
  const latency = [...submittedAt].filter(([id]) => finalAt.has(id)).map(([id, at]) => finalAt.get(id)! - at);
  const first = [...submittedAt].filter(([id]) => firstPreview.has(id)).map(([id, at]) => firstPreview.get(id)! - at);
  return {
    batching,
    sessions: n,
    subscribersPerSession: args.subscribers,
    turns: total,
    wallMs,
    turnLatencyP50Ms: r1(pct(latency, 50)),
    turnLatencyP95Ms: r1(pct(latency, 95)),
    firstPreviewP50Ms: r1(pct(first, 50)),
    firstPreviewP95Ms: r1(pct(first, 95)),
    previewDeliveryP50Ms: r1(pct(delivery, 50)),
    previewDeliveryP95Ms: r1(pct(delivery, 95)),
    framesDelivered,
    turnsPerMinute: r1((total / wallMs) * 60_000),
    lostTurns,
    duplicatedFinals,
    busy: responsiveness,
    phases,
  };
}

/**
 * Where a turn's time goes, p50 over the turns (client and server share this machine's clock): submit -> the
 * turn's row (the mutation), row -> denoising starts (queue + the start hook), the run (denoising + result PNG, the
 * engine's own runMs), and the server's finish -> the client's final frame (DB write + delivery).
 */
async function turnPhases(
  servers: Server[],
  sessions: Array<{ index: number; id: string; teller: string }>,
  submittedAt: Map<string, number>,
  finalAt: Map<string, number>,
): Promise<TurnPhases> {
  const rows: Array<{ id: string; createdAt: string; startedAt: string | null; finishedAt: string | null; timings: { runMs: number | null } }> = [];
  for (const s of sessions) {
    const q = await gql<{ session: { turns: typeof rows } }>(
      servers[s.index % servers.length]!.url,
      `query($s: ID!) { session(id: $s) { turns(last: ${Math.min(300, Math.max(1, submittedAt.size))}) { id createdAt startedAt finishedAt timings { runMs } } } }`,
      { s: s.id },
      s.teller,
    );
    rows.push(...q.session.turns);
  }
  const ok = rows.filter((r) => r.startedAt && r.finishedAt && submittedAt.has(r.id) && finalAt.has(r.id));
  const p50 = (f: (r: (typeof ok)[number]) => number) => r1(pct(ok.map(f), 50));
  return {
    submitToRowMs: p50((r) => Date.parse(r.createdAt) - submittedAt.get(r.id)!),
    rowToStartMs: p50((r) => Date.parse(r.startedAt!) - Date.parse(r.createdAt)),
    runMs: p50((r) => r.timings.runMs ?? Date.parse(r.finishedAt!) - Date.parse(r.startedAt!)),
    finishToFrameMs: p50((r) => finalAt.get(r.id)! - Date.parse(r.finishedAt!)),
  };
}

async function main(): Promise<void> {
  const args = parseArgs(process.argv.slice(2));
  await initBackend('cpu'); // only to save the tiny checkpoint; the server process picks its own backend
  const model = args.model ?? (await tinyCheckpoint());
  const results: RunResult[] = [];
  let idle: Responsiveness | null = null;
  for (const batching of args.batching) {
    const server = await startServer(model, batching, args);
    try {
      const health = (await (await fetch(server.url.replace('/graphql', '/healthz'))).json()) as { engine: Record<string, unknown> };
      console.log(`server: batching ${batching ? 'on' : 'off'}, engine ${JSON.stringify(health.engine)}`);
      await run([server], batching, 1, { ...args, subscribers: 1, turns: 1 }); // warm-up (kernels, caches)
      if (!idle) {
        const until = Date.now() + 3000;
        idle = await probe(server, () => Date.now() > until);
        console.log(`idle: /healthz p50 ${idle.healthzP50Ms} p99 ${idle.healthzP99Ms} ms; query p50 ${idle.queryP50Ms} p99 ${idle.queryP99Ms} ms (${idle.probes} probes)`);
      }
      for (const n of args.sessions) {
        const r = await run([server], batching, n, args);
        results.push(r);
        console.log(
          `single process, batching ${batching ? 'on ' : 'off'} sessions ${String(n).padStart(2)} x ${args.subscribers} subscribers: ` +
            `${r.turns} turns in ${r.wallMs} ms (${r.turnsPerMinute} turns/min); latency p50 ${r.turnLatencyP50Ms} p95 ${r.turnLatencyP95Ms} ms; ` +
            `phases p50: submit->row ${r.phases.submitToRowMs}, row->start ${r.phases.rowToStartMs}, run ${r.phases.runMs}, finish->frame ${r.phases.finishToFrameMs} ms; ` +
            `first preview p50 ${r.firstPreviewP50Ms} ms; preview delivery p50 ${r.previewDeliveryP50Ms} p95 ${r.previewDeliveryP95Ms} ms (${r.framesDelivered} frames); ` +
            `while busy /healthz p50 ${r.busy.healthzP50Ms} p99 ${r.busy.healthzP99Ms} ms, query p50 ${r.busy.queryP50Ms} p99 ${r.busy.queryP99Ms} ms (${r.busy.probes} probes)`,
        );
      }
    } finally {
      await server.stop();
    }
  }
  const maxN = Math.max(...args.sessions);
  const cluster = args.cluster ? await runCluster(model, maxN, args) : null;
  const on = results.find((r) => r.batching && r.sessions === maxN);
  const off = results.find((r) => !r.batching && r.sessions === maxN);
  const speedup = on && off ? r1(off.wallMs / on.wallMs) : null;
  const deliveryP95 = Math.max(...results.map((r) => r.previewDeliveryP95Ms));
  // Responsiveness while the most sessions generate (single process): the targets.
  const loaded = on ?? off!;
  if (speedup !== null) console.log(`batching speed-up at ${maxN} sessions: ${speedup}x (target >= 2)`);
  console.log(
    `worst preview delivery p95 ${deliveryP95} ms (target < 50); at ${maxN} sessions /healthz p99 ${loaded.busy.healthzP99Ms} ms (target <= 25), ` +
      `query p99 ${loaded.busy.queryP99Ms} ms (target <= 50)`,
  );
  console.log(
    JSON.stringify({
      bench: 'server',
      model: model === args.model ? model : 'tiny (temp checkpoint)',
      steps: args.defaultSettings ? 'model defaults' : args.steps,
      previewEvery: args.previewEvery,
      turnsPerSession: args.turns,
      subscribersPerSession: args.subscribers,
      idle,
      results,
      cluster,
      batchingSpeedup: speedup,
      worstPreviewDeliveryP95Ms: deliveryP95,
      targets: {
        ...(speedup !== null ? { batchingSpeedupAtLeast2: speedup >= 2 } : {}),
        previewDeliveryP95Under50ms: deliveryP95 < 50,
        busyHealthzP99AtMost25ms: loaded.busy.healthzP99Ms <= 25,
        busyQueryP99AtMost50ms: loaded.busy.queryP99Ms <= 50,
        ...(cluster
          ? {
              clusterPreviewDeliveryP95WithinInProcessPlus15ms: cluster.previewDeliveryP95Ms <= loaded.previewDeliveryP95Ms + 15,
              clusterNoLostOrDuplicatedTurns: cluster.lostTurns === 0 && cluster.duplicatedFinals === 0,
            }
          : {}),
      },
    }),
  );
}

/** The same load on 2 API servers and 2 generation workers over the bench's own Redis and a fresh database. */
async function runCluster(model: string, n: number, args: Args): Promise<RunResult> {
  if (!process.env.TEST_POSTGRES_URL) throw new Error('--cluster needs TEST_POSTGRES_URL (a PostgreSQL server to make a database on)');
  const redis = await startRedis();
  const db = await freshDatabase();
  const env = {
    LOG_LEVEL: 'warn', DATABASE_URL: db.url, REDIS_URL: redis.url, MODEL_PATH: model, TENSOR_BACKEND: args.backend, MAX_BATCH_SIZE: '8',
    PREVIEW_EVERY: String(args.previewEvery), MAX_OPERATIONS_PER_MINUTE: '1000000', MAX_QUEUED_TURNS_PER_SESSION: String(Math.max(8, args.turns)),
    // Two workers on this machine: one oneDNN thread each.
    OMP_NUM_THREADS: '1',
  };
  const procs: ClusterProcess[] = [];
  try {
    procs.push(await startApiServer('api-1', { ...env, LOG_LEVEL: 'info' }));
    procs.push(...(await Promise.all([startApiServer('api-2', { ...env, LOG_LEVEL: 'info' }), startGenerationWorker('worker-1', { ...env, LOG_LEVEL: 'info' }), startGenerationWorker('worker-2', { ...env, LOG_LEVEL: 'info' })])));
    const servers: Server[] = procs.filter((p) => p.url).map((p) => ({ url: p.url!, wsUrl: p.wsUrl!, child: null as never, stop: async () => undefined }));
    await run(servers, true, 1, { ...args, subscribers: 1, turns: 1 }); // warm-up
    const r = await run(servers, true, n, args);
    console.log(
      `cluster (2 API servers, 2 workers) sessions ${n} x ${args.subscribers} subscribers: ${r.turns} turns in ${r.wallMs} ms (${r.turnsPerMinute} turns/min); ` +
        `latency p50 ${r.turnLatencyP50Ms} p95 ${r.turnLatencyP95Ms} ms; preview delivery p50 ${r.previewDeliveryP50Ms} p95 ${r.previewDeliveryP95Ms} ms; ` +
        `lost ${r.lostTurns}, duplicated finals ${r.duplicatedFinals}`,
    );
    return r;
  } finally {
    for (const p of procs) p.kill('SIGKILL');
    await Promise.all(procs.map((p) => p.exited));
    await redis.stop();
    await db.drop();
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
