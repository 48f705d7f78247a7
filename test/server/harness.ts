/**
 * Test harness for the server: a tiny real model saved as a checkpoint in a temp folder, the real server on a
 * loopback port with a real SQLite database in a temp folder, and real clients (fetch over HTTP, graphql-ws over
 * `ws`). Shared by test/server, test/graphql, test/sessions and the server benchmark.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import WebSocket from 'ws';
import { createClient, type Client, type ExecutionResult } from 'graphql-ws';
import { makeConfig, type ConfigInput } from '../../src/config/index.js';
import { WordTokenizer, createModel, saveCheckpoint } from '../../src/model/index.js';
import { startApp } from '../../src/server/app.js';
import type { BatchInfo } from '../../src/engine/index.js';

const CORPUS = [
  'add a red cube in the middle',
  'add a blue sphere left of the red cube',
  'put a green cylinder behind it',
  'make it bigger yes like that',
];

let checkpoint: Promise<string> | null = null;

/** The tiny preset with a word tokenizer, saved once per test process as a checkpoint in a temp folder. */
/** `name{labels} value` lines of a Prometheus text exposition -> value by `name{labels}`. */
export function parseMetrics(text: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const line of text.split('\n')) {
    if (!line || line.startsWith('#')) continue;
    const i = line.lastIndexOf(' ');
    out.set(line.slice(0, i), Number(line.slice(i + 1)));
  }
  return out;
}

export function tinyCheckpoint(): Promise<string> {
  return (checkpoint ??= (async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'codraw-ckpt-'));
    const model = createModel('tiny', { tokenizer: WordTokenizer.fromCorpus(CORPUS, { contextLength: 12 }) });
    await saveCheckpoint(model, dir);
    model.dispose();
    return dir;
  })());
}

export function tempDir(prefix = 'codraw-data-'): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), prefix));
}

export interface GqlResponse<T = Record<string, unknown>> {
  status: number;
  data?: T;
  errors?: Array<{ message: string; extensions?: Record<string, unknown> & { code?: string } }>;
}

export interface TestServer {
  url: string;
  wsUrl: string;
  origin: string;
  dataDir: string;
  batches: BatchInfo[];
  app: Awaited<ReturnType<typeof startApp>>;
  gql<T = Record<string, unknown>>(query: string, variables?: Record<string, unknown>, token?: string | null): Promise<GqlResponse<T>>;
  /** gql that fails the test on errors. */
  ok<T = Record<string, unknown>>(query: string, variables?: Record<string, unknown>, token?: string | null): Promise<T>;
  ws(token: string | null): Client;
  stop(): Promise<void>;
}

/** Fast defaults for tests: 4 denoising steps, a preview after every step. */
export async function startTestServer(over: ConfigInput = {}, dataDir = tempDir()): Promise<TestServer> {
  const config = makeConfig({
    host: '127.0.0.1',
    port: 0,
    dataDir,
    modelPath: await tinyCheckpoint(),
    defaultSteps: 4,
    previewEvery: 1,
    ...over,
  });
  const batches: BatchInfo[] = [];
  const app = await startApp({ config, onBatch: (b) => batches.push(b) });
  const clients: Client[] = [];
  const gql = async <T,>(query: string, variables: Record<string, unknown> = {}, token: string | null = null): Promise<GqlResponse<T>> => {
    const res = await fetch(app.url, {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...(token ? { authorization: `Bearer ${token}` } : {}) },
      body: JSON.stringify({ query, variables }),
    });
    const body = (await res.json()) as Omit<GqlResponse<T>, 'status'>;
    return { status: res.status, ...body };
  };
  const server: TestServer = {
    url: app.url,
    wsUrl: app.wsUrl,
    origin: app.origin,
    dataDir,
    batches,
    app,
    gql,
    async ok<T>(query: string, variables: Record<string, unknown> = {}, token: string | null = null): Promise<T> {
      const r = await gql<T>(query, variables, token);
      if (r.errors?.length || !r.data) throw new Error(`GraphQL errors: ${JSON.stringify(r.errors)}`);
      return r.data;
    },
    ws(token) {
      const c = createClient({
        url: app.wsUrl,
        webSocketImpl: WebSocket,
        connectionParams: token ? { authorization: `Bearer ${token}` } : {},
        retryAttempts: 0,
        lazy: false,
        onNonLazyError: () => undefined,
      });
      clients.push(c);
      return c;
    },
    async stop() {
      await Promise.all(clients.map((c) => c.dispose()));
      await app.drain();
    },
  };
  return server;
}

/** A subscription's items collected as they come, with a way to wait for a condition. */
export class Collector<T> {
  readonly items: T[] = [];
  readonly errors: unknown[] = [];
  done = false;
  private waiters: Array<() => void> = [];
  readonly unsubscribe: () => void;

  constructor(client: Client, query: string, variables: Record<string, unknown>, pick: (d: Record<string, unknown>) => T) {
    this.unsubscribe = client.subscribe<Record<string, unknown>>(
      { query, variables },
      {
        next: (r: ExecutionResult<Record<string, unknown>>) => {
          if (r.errors?.length) this.errors.push(...r.errors);
          else if (r.data) this.items.push(pick(r.data));
          this.wake();
        },
        error: (e) => {
          this.errors.push(e);
          this.done = true;
          this.wake();
        },
        complete: () => {
          this.done = true;
          this.wake();
        },
      },
    );
  }

  private wake(): void {
    const w = this.waiters;
    this.waiters = [];
    w.forEach((f) => f());
  }

  /** Resolve when `cond(items)` holds (checked on every item), or fail after `ms`. */
  async until(cond: (items: T[]) => boolean, ms = 30_000, what = 'condition'): Promise<T[]> {
    const deadline = Date.now() + ms;
    while (!cond(this.items)) {
      if (this.done && !cond(this.items)) throw new Error(`subscription ended before ${what}: ${JSON.stringify(this.errors)}`);
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`timed out waiting for ${what}; got ${this.items.length} items, errors ${JSON.stringify(this.errors)}`);
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, Math.min(left, 200));
        this.waiters.push(() => {
          clearTimeout(t);
          resolve();
        });
      });
    }
    return this.items;
  }

  /** Resolve once the subscription has ended (error or complete). */
  async ended(ms = 10_000): Promise<void> {
    await this.until(() => this.done, ms, 'the end').catch((e: unknown) => {
      if (!this.done) throw e;
    });
  }
}

/** Poll `fn` until it returns a truthy value. */
export async function eventually<T>(fn: () => Promise<T | null | undefined | false>, ms = 30_000, what = 'condition'): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

// ---------------------------------------------------------------- operations used by many tests

export const CREATE = /* GraphQL */ `
  mutation Create($input: CreateSessionInput!) {
    createSession(input: $input) { token session { id title headTurn { id } } participant { id role } }
  }`;

export const JOIN = /* GraphQL */ `
  mutation Join($input: JoinSessionInput!) {
    joinSession(input: $input) { token participant { id role } session { id } }
  }`;

export const SUBMIT = /* GraphQL */ `
  mutation Submit($input: SubmitTurnInput!) {
    submitTurn(input: $input) { id index status text instruction queuePosition parent { id } settings { steps seed } }
  }`;

export const TURN = /* GraphQL */ `
  query Turn($id: ID!) {
    turn(id: $id) { id status error index text parent { id } referenceImage { id } resultImage { id url width height }
      timings { queuedMs runMs } }
  }`;

export const PROGRESS = /* GraphQL */ `
  subscription Progress($sessionId: ID!) {
    turnProgress(sessionId: $sessionId) { turnId sequence step totalSteps etaMs preview final image { id url } }
  }`;

export const EVENTS = /* GraphQL */ `
  subscription Events($sessionId: ID!) {
    sessionEvents(sessionId: $sessionId) { kind sessionId headTurnId participant { id name online } message { id text }
      turn { id status index } }
  }`;

export interface Frame {
  turnId: string;
  sequence: number;
  step: number;
  totalSteps: number;
  etaMs: number;
  preview: string | null;
  final: boolean;
  image: { id: string; url: string } | null;
}

export interface EventItem {
  kind: string;
  sessionId: string;
  headTurnId: string | null;
  participant: { id: string; name: string; online: boolean } | null;
  message: { id: string; text: string } | null;
  turn: { id: string; status: string; index: number } | null;
}

/** Create a session as teller; returns its id and the teller's token. */
export async function createSession(s: TestServer, opts: { allowDrawerTurns?: boolean; title?: string } = {}): Promise<{ sessionId: string; teller: string }> {
  const d = await s.ok<{ createSession: { token: string; session: { id: string } } }>(CREATE, {
    input: { title: opts.title ?? 'test', name: 'Tess', allowDrawerTurns: opts.allowDrawerTurns ?? false },
  });
  return { sessionId: d.createSession.session.id, teller: d.createSession.token };
}

export const CREATE_INVITE = /* GraphQL */ `
  mutation Invite($sessionId: ID!, $role: Role!, $expiresInSeconds: Int, $maxUses: Int) {
    createInvite(sessionId: $sessionId, role: $role, expiresInSeconds: $expiresInSeconds, maxUses: $maxUses) {
      id code role expiresAt maxUses uses revoked }
  }`;

export type RoleName = 'TELLER' | 'DRAWER' | 'OBSERVER';

/** A teller of the session creates an invite code for `role`. */
export async function invite(s: TestServer, teller: string, sessionId: string, role: RoleName, opts: { expiresInSeconds?: number; maxUses?: number } = {}): Promise<{ id: string; code: string }> {
  const d = await s.ok<{ createInvite: { id: string; code: string } }>(CREATE_INVITE, { sessionId, role, ...opts }, teller);
  return d.createInvite;
}

/** Join a session as `role` with an invite its teller creates for it; returns the joiner's token. */
export async function join(s: TestServer, session: { sessionId: string; teller: string }, role: RoleName, name = role.toLowerCase(), token: string | null = null): Promise<string> {
  const { code } = await invite(s, session.teller, session.sessionId, role);
  const d = await s.ok<{ joinSession: { token: string } }>(JOIN, { input: { sessionId: session.sessionId, name, role, invite: code } }, token);
  return d.joinSession.token;
}

export async function submit(s: TestServer, token: string, sessionId: string, instruction: string, extra: Record<string, unknown> = {}): Promise<{ id: string; index: number; status: string; text: string; parent: { id: string } | null }> {
  const d = await s.ok<{ submitTurn: { id: string; index: number; status: string; text: string; parent: { id: string } | null } }>(
    SUBMIT,
    { input: { sessionId, instruction, ...extra } },
    token,
  );
  return d.submitTurn;
}

export interface TurnView {
  id: string;
  status: string;
  error: string | null;
  index: number;
  text: string;
  parent: { id: string } | null;
  referenceImage: { id: string } | null;
  resultImage: { id: string; url: string; width: number; height: number } | null;
  timings: { queuedMs: number | null; runMs: number | null };
}

export async function turn(s: TestServer, token: string, id: string): Promise<TurnView> {
  return (await s.ok<{ turn: TurnView }>(TURN, { id }, token)).turn;
}

export async function waitTurn(s: TestServer, token: string, id: string, statuses = ['SUCCEEDED', 'FAILED', 'CANCELLED'], ms = 100_000): Promise<TurnView> {
  return eventually(async () => {
    const t = await turn(s, token, id);
    return statuses.includes(t.status) ? t : null;
  }, ms, `turn ${id} to reach ${statuses.join('/')}`);
}

// ---------------------------------------------------------------- raw requests (hostile clients)

export interface RawResponse {
  status: number;
  headers: Headers;
  text: string;
  /** The body as JSON, or null when it is not JSON. */
  json: { data?: unknown; errors?: Array<{ message: string; extensions?: { code?: string } & Record<string, unknown> }> } | null;
}

/** Send exactly these bytes and headers (no JSON encoding, no defaults). */
export async function rawRequest(url: string, init: { method?: string; headers?: Record<string, string>; body?: string | Buffer } = {}): Promise<RawResponse> {
  const res = await fetch(url, { method: init.method ?? 'POST', headers: init.headers ?? {}, ...(init.body !== undefined ? { body: typeof init.body === 'string' ? init.body : new Uint8Array(init.body) } : {}) });
  const text = await res.text();
  let json: RawResponse['json'] = null;
  try {
    json = JSON.parse(text) as RawResponse['json'];
  } catch {
    json = null;
  }
  return { status: res.status, headers: res.headers, text, json };
}

/** Does a response body leak internals (stack frames, file paths, an HTML error page)? */
export function leaksInternals(text: string): boolean {
  return /\bat \S+ \(|\/work\/|\/home\/|node_modules|\.[jt]s:\d+:\d+|<html|<pre>/i.test(text);
}

/** The first error code of a GraphQL-shaped answer. */
export const errorCode = (r: { errors?: Array<{ extensions?: { code?: string } }> } | null | undefined): string | undefined => r?.errors?.[0]?.extensions?.code;
