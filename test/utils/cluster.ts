/**
 * Scale-out mode on real processes for the cluster tests and `npm run cluster`-style checks: a redis-server of the
 * test's own (so a test can kill and restart it), a fresh PostgreSQL database on TEST_POSTGRES_URL's server, and
 * API servers (src/server/main.ts) and generation workers (src/server/workerMain.ts) as child processes on
 * loopback.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import crypto from 'node:crypto';
import net from 'node:net';
import path from 'node:path';
import pg from 'pg';

const ROOT = path.resolve(import.meta.dirname, '../..');

/** Whether the cluster tests can run here: a redis-server binary and a PostgreSQL server to make databases on. */
export function clusterAvailable(): boolean {
  return !!process.env.TEST_POSTGRES_URL && spawnSync('redis-server', ['--version']).status === 0;
}

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as net.AddressInfo;
      srv.close(() => resolve(port));
    });
    srv.on('error', reject);
  });
}

async function waitFor(cond: () => Promise<boolean>, ms: number, what: string): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await cond().catch(() => false))) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

export interface RedisProcess {
  url: string;
  /** kill -9, then start again on the same port, empty (no persistence: the queue is lost, as after a crash). */
  restart(downMs?: number): Promise<void>;
  stop(): Promise<void>;
}

export async function startRedis(): Promise<RedisProcess> {
  const port = await freePort();
  let child: ChildProcess;
  const up = async (): Promise<void> => {
    child = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], { stdio: 'ignore' });
    await waitFor(
      () => new Promise<boolean>((resolve) => {
        const s = net.connect(port, '127.0.0.1', () => {
          s.end();
          resolve(true);
        });
        s.on('error', () => resolve(false));
      }),
      10_000,
      'redis-server',
    );
  };
  const down = (): Promise<void> =>
    new Promise((resolve) => {
      if (child.exitCode !== null || child.signalCode !== null) return resolve();
      child.once('exit', () => resolve());
      child.kill('SIGKILL');
    });
  await up();
  return {
    url: `redis://127.0.0.1:${port}`,
    async restart(downMs = 1000) {
      await down();
      await new Promise((r) => setTimeout(r, downMs));
      await up();
    },
    stop: down,
  };
}

export interface Database {
  url: string;
  query<T extends pg.QueryResultRow>(sql: string, params?: unknown[]): Promise<T[]>;
  drop(): Promise<void>;
}

/** A new, empty database on TEST_POSTGRES_URL's server (the servers migrate it at start). */
export async function freshDatabase(): Promise<Database> {
  const base = new URL(process.env.TEST_POSTGRES_URL!);
  const name = `codraw_cluster_${crypto.randomBytes(4).toString('hex')}`;
  const admin = new pg.Client({ connectionString: base.toString() });
  await admin.connect();
  await admin.query(`CREATE DATABASE ${name}`);
  await admin.end();
  const url = new URL(base);
  url.pathname = `/${name}`;
  const pool = new pg.Pool({ connectionString: url.toString(), max: 2 });
  return {
    url: url.toString(),
    async query<T extends pg.QueryResultRow>(sql: string, params: unknown[] = []) {
      return (await pool.query<T>(sql, params)).rows;
    },
    async drop() {
      await pool.end();
      const c = new pg.Client({ connectionString: base.toString() });
      await c.connect();
      await c.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
      await c.end();
    },
  };
}

export interface ClusterProcess {
  name: string;
  pid: number;
  /** API servers; workers started with their metrics listener. */
  origin: string | null;
  url: string | null;
  wsUrl: string | null;
  exited: Promise<{ code: number | null; signal: string | null }>;
  /** Everything it wrote (logs), for failure messages. */
  output(): string;
  kill(signal: NodeJS.Signals): void;
}

function launch(name: string, entry: string, env: Record<string, string>): { child: ChildProcess; proc: Omit<ClusterProcess, 'origin' | 'url' | 'wsUrl'> } {
  const child = spawn(process.execPath, ['--import', 'tsx', entry], {
    cwd: ROOT,
    env: { ...process.env, LOG_LEVEL: 'info', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  child.stdout!.on('data', (d: Buffer) => (out = (out + d.toString()).slice(-200_000)));
  child.stderr!.on('data', (d: Buffer) => (out = (out + d.toString()).slice(-200_000)));
  const exited = new Promise<{ code: number | null; signal: string | null }>((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
  return {
    child,
    proc: { name, pid: child.pid!, exited, output: () => out, kill: (sig) => void child.kill(sig) },
  };
}

export async function startApiServer(name: string, env: Record<string, string>): Promise<ClusterProcess> {
  const port = await freePort();
  const { child, proc } = launch(name, 'src/server/main.ts', { ...env, HOST: '127.0.0.1', PORT: String(port) });
  const origin = `http://127.0.0.1:${port}`;
  await waitFor(async () => {
    if (child.exitCode !== null) throw new Error(`${name} exited: ${proc.output()}`);
    return (await fetch(`${origin}/healthz`)).ok;
  }, 90_000, `${name} to listen`);
  return { ...proc, origin, url: `${origin}/graphql`, wsUrl: `ws://127.0.0.1:${port}/graphql` };
}

/** A worker process; with `metrics`, its /metrics and /healthz listener on a free port is its `origin`. */
export async function startGenerationWorker(name: string, env: Record<string, string>, o: { metrics?: boolean } = {}): Promise<ClusterProcess> {
  const port = o.metrics ? await freePort() : null;
  const { child, proc } = launch(name, 'src/server/workerMain.ts', port === null ? env : { ...env, HOST: '127.0.0.1', WORKER_METRICS_PORT: String(port) });
  await waitFor(async () => {
    if (child.exitCode !== null) throw new Error(`${name} exited: ${proc.output()}`);
    return proc.output().includes('generation worker ready');
  }, 90_000, `${name} to take turns`);
  return { ...proc, origin: port === null ? null : `http://127.0.0.1:${port}`, url: null, wsUrl: null };
}

/** One GraphQL operation over HTTP; throws on errors. */
export async function gqlAt<T>(url: string, query: string, variables: Record<string, unknown> = {}, token?: string): Promise<T> {
  const r = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...(token ? { authorization: `Bearer ${token}` } : {}) },
    body: JSON.stringify({ query, variables }),
  });
  const body = (await r.json()) as { data?: T; errors?: unknown[] };
  if (body.errors?.length || !body.data) throw new Error(`GraphQL errors: ${JSON.stringify(body.errors)}`);
  return body.data;
}
