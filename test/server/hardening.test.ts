/**
 * Hostile and malformed requests against the real server, as an outside client sends them: each gets a typed
 * answer (`{ errors: [{ message, extensions: { code } }] }`, no stack traces or paths), bounded cost, and nothing
 * is half-written. One block per kind of request (body parsing, request errors, aliases, images, introspection,
 * graphql-ws, rate limiting, drain).
 */
import zlib from 'node:zlib';
import WebSocket from 'ws';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { graphql } from '../../src/graphql/index.js';
import {
  Collector,
  EVENTS,
  SUBMIT,
  createSession,
  errorCode,
  leaksInternals,
  rawRequest,
  startTestServer,
  submit,
  waitTurn,
  type TestServer,
} from './harness.js';
import { JPEG, SVG, bombPng, pngDataUrl, solidPng, truncatedIdatPng } from '../utils/png.js';

let s: TestServer;
beforeAll(async () => {
  s = await startTestServer({ limits: { maxOperationsPerMinute: 100_000 } });
});
afterAll(async () => {
  await s?.stop();
});

const ENGINE = JSON.stringify({ query: '{ engineStatus { busy } }' });
const MSG = `mutation($s: ID!, $t: String!) { sendMessage(sessionId: $s, text: $t) { id } }`;
const COUNTS = `query($id: ID!) { session(id: $id) { messages(last: 200) { id } turns { id } } }`;
const CREATE_BG = `mutation($i: CreateSessionInput!) { createSession(input: $i) { session { id background { width height } } } }`;
const json = (token?: string): Record<string, string> => ({ 'content-type': 'application/json', ...(token ? { authorization: `Bearer ${token}` } : {}) });

describe('HTTP bodies the parser refuses are typed JSON errors, not HTML pages', () => {
  const cases: Array<[string, Record<string, string>, string | Buffer, number, string]> = [
    ['charset=latin1', { 'content-type': 'application/json; charset=latin1' }, ENGINE, 415, 'UNSUPPORTED_MEDIA_TYPE'],
    ['Content-Encoding: compress', { 'content-type': 'application/json', 'content-encoding': 'compress' }, ENGINE, 415, 'UNSUPPORTED_MEDIA_TYPE'],
    ['Content-Encoding: gzip on a plain body', { 'content-type': 'application/json', 'content-encoding': 'gzip' }, ENGINE, 400, 'BAD_REQUEST'],
    ['Content-Type: text/plain', { 'content-type': 'text/plain' }, ENGINE, 415, 'UNSUPPORTED_MEDIA_TYPE'],
    ['no Content-Type', {}, ENGINE, 415, 'UNSUPPORTED_MEDIA_TYPE'],
    ['JSON cut short', { 'content-type': 'application/json' }, '{"query":', 400, 'BAD_REQUEST'],
  ];
  for (const [what, headers, body, status, code] of cases) {
    it(`${what}: ${status} ${code}`, async () => {
      const r = await rawRequest(s.url, { headers, body });
      expect(r.status).toBe(status);
      expect(r.headers.get('content-type')).toMatch(/^application\/json/);
      expect(errorCode(r.json)).toBe(code);
      expect(leaksInternals(r.text)).toBe(false);
    });
  }

  it('a real gzip body is served; unknown paths and malformed URLs are typed too', async () => {
    const ok = await rawRequest(s.url, { headers: { ...json(), 'content-encoding': 'gzip' }, body: zlib.gzipSync(ENGINE) });
    expect(ok.json?.data).toEqual({ engineStatus: { busy: false } });
    const missing = await rawRequest(`${s.origin}/nope`, { method: 'GET' });
    expect([missing.status, errorCode(missing.json)]).toEqual([404, 'NOT_FOUND']);
    const badUrl = await rawRequest(`${s.origin}/images/%E0%A4%A.png`, { method: 'GET' });
    expect([badUrl.status, errorCode(badUrl.json)]).toEqual([400, 'BAD_REQUEST']);
    expect(leaksInternals(missing.text + badUrl.text)).toBe(false);
  });
});

describe('client mistakes are the client\'s errors, never INTERNAL_SERVER_ERROR', () => {
  it('an APQ hash that does not match its query is BAD_REQUEST', async () => {
    const r = await rawRequest(s.url, {
      headers: json(),
      body: JSON.stringify({ query: '{ engineStatus { busy } }', extensions: { persistedQuery: { version: 1, sha256Hash: 'a'.repeat(64) } } }),
    });
    expect([r.status, errorCode(r.json)]).toEqual([400, 'BAD_REQUEST']);
  });

  it('a subscription over HTTP is BAD_REQUEST and points to graphql-ws', async () => {
    const { sessionId, teller } = await createSession(s);
    const r = await rawRequest(s.url, { headers: json(teller), body: JSON.stringify({ query: `subscription { sessionEvents(sessionId: "${sessionId}") { kind } }` }) });
    expect([r.status, errorCode(r.json)]).toEqual([400, 'BAD_REQUEST']);
    expect(r.json?.errors?.[0]?.message).toMatch(/graphql-ws/);
  });

  it('a lone surrogate in sendMessage, submitTurn, createSession or an id is BAD_USER_INPUT and writes nothing', async () => {
    const { sessionId, teller } = await createSession(s);
    const bad = 'x\udfff';
    for (const [query, variables] of [
      [MSG, { s: sessionId, t: bad }],
      [SUBMIT, { input: { sessionId, instruction: bad } }],
      [CREATE_BG, { i: { title: bad, name: 'n' } }],
      [`query($id: ID!) { session(id: $id) { id } }`, { id: bad }],
    ] as const) {
      const r = await s.gql(query, variables, teller);
      expect(errorCode(r), query).toBe('BAD_USER_INPUT');
    }
    // In a literal it is a syntax error; a paired surrogate (an emoji) is fine.
    expect(errorCode(await s.gql(`mutation { sendMessage(sessionId: "${sessionId}", text: "a\\udfff") { id } }`, {}, teller))).toBe('GRAPHQL_PARSE_FAILED');
    await s.ok(MSG, { s: sessionId, t: 'ok \u{1F600}' }, teller);
    const c = await s.ok<{ session: { messages: unknown[]; turns: unknown[] } }>(COUNTS, { id: sessionId }, teller);
    expect([c.session.messages.length, c.session.turns.length]).toEqual([1, 0]);
  });
});

describe('aliases do not multiply writes', () => {
  it('an operation over maxRootFields is TOO_MANY_ROOT_FIELDS (over maxQueryTokens: a parse error) and writes nothing', async () => {
    const { sessionId, teller } = await createSession(s);
    const aliases = (n: number) => Array.from({ length: n }, (_, i) => `m${i}: sendMessage(sessionId: "${sessionId}", text: "hi") { id }`).join(' ');
    const eleven = await s.gql(`mutation { ${aliases(11)} }`, {}, teller);
    expect([eleven.status, errorCode(eleven)]).toEqual([400, 'TOO_MANY_ROOT_FIELDS']);
    expect(eleven.errors?.[0]?.extensions).toMatchObject({ rootFields: 11, limit: 10 });
    // Through a fragment as well.
    expect(errorCode(await s.gql(`mutation { ...F } fragment F on Mutation { ${aliases(11)} }`, {}, teller))).toBe('TOO_MANY_ROOT_FIELDS');
    // The probe's 900 aliases do not even parse (5000 tokens at most).
    expect(errorCode(await s.gql(`mutation { ${aliases(900)} }`, {}, teller))).toBe('GRAPHQL_PARSE_FAILED');
    const creates = (n: number) => Array.from({ length: n }, (_, i) => `c${i}: createSession(input: { title: "t", name: "n" }) { token }`).join(' ');
    expect(errorCode(await s.gql(`mutation { ${creates(11)} }`))).toBe('TOO_MANY_ROOT_FIELDS');
    expect(errorCode(await s.gql(`mutation { ${creates(300)} }`))).toBe('GRAPHQL_PARSE_FAILED');
    const c = await s.ok<{ session: { messages: unknown[] } }>(COUNTS, { id: sessionId }, teller);
    expect(c.session.messages).toHaveLength(0);
  });

  it('each root field of a mutation counts against the rate limit', async () => {
    const small = await startTestServer({ limits: { maxOperationsPerMinute: 12 } });
    try {
      const { sessionId, teller } = await createSession(small); // anonymous: counted for the address
      const five = `mutation { ${Array.from({ length: 5 }, (_, i) => `m${i}: sendMessage(sessionId: "${sessionId}", text: "m${i}") { id }`).join(' ')} }`;
      expect(Object.keys((await small.ok(five, {}, teller)) as object)).toHaveLength(5); // 5 of 12
      await small.ok(five, {}, teller); // 10 of 12
      const refused = await small.gql(five, {}, teller); // would be 15
      expect([refused.status, errorCode(refused)]).toEqual([429, 'RATE_LIMITED']);
      const c = await small.ok<{ session: { messages: unknown[] } }>(COUNTS, { id: sessionId }, teller);
      expect(c.session.messages).toHaveLength(10);
    } finally {
      await small.stop();
    }
  });
});

describe('backgroundPng: PNG only, its size checked from the header before decoding', () => {
  const create = (png: Buffer, mime?: string) => s.gql(CREATE_BG, { i: { title: 't', name: 'n', backgroundPng: pngDataUrl(png, mime) } });

  it('a 20000x20000 header is refused at once, without decoding', async () => {
    const t0 = performance.now();
    const r = await create(bombPng(20_000, 20_000));
    expect(performance.now() - t0).toBeLessThan(1000);
    expect(errorCode(r)).toBe('BAD_USER_INPUT');
    expect(r.errors?.[0]?.message).toMatch(/20000x20000 pixels/);
  });

  it('SVG, JPEG and a truncated IDAT are refused; a real PNG is accepted', async () => {
    for (const [png, mime] of [[SVG, 'image/svg+xml'], [SVG, undefined], [JPEG, undefined], [truncatedIdatPng(32, 32), undefined]] as const) {
      expect(errorCode(await create(png, mime))).toBe('BAD_USER_INPUT');
    }
    const ok = await create(solidPng(40, 30));
    expect(ok.errors).toBeUndefined();
  });
});

describe('introspection has a cost and responses a size bound', () => {
  const one = '__schema { types { name fields { name args { name } } } }';

  it('3000 aliased __schema (cost 0 before) is refused before anything runs', async () => {
    const r = await s.gql(`{ ${Array.from({ length: 3000 }, (_, i) => `a${i}: ${one}`).join(' ')} }`);
    expect(r.status).toBe(400);
    expect(errorCode(r)).toBe('GRAPHQL_PARSE_FAILED'); // over maxQueryTokens
    const roots = await s.gql(`{ ${Array.from({ length: 11 }, (_, i) => `a${i}: __type(name: "Turn") { fields { name } }`).join(' ')} }`);
    expect(errorCode(roots)).toBe('TOO_MANY_ROOT_FIELDS');
    // Aliases inside introspection are refused (without them repeated selections merge into one answer).
    const inner = await s.gql(`{ __schema { ${Array.from({ length: 300 }, (_, i) => `t${i}: types { name fields { name args { name } } }`).join(' ')} } }`);
    expect(errorCode(inner)).toBe('GRAPHQL_VALIDATION_FAILED');
    expect(errorCode(await s.gql(`{ __type(name: "Turn") { a: name } }`))).toBe('GRAPHQL_VALIDATION_FAILED');
    const merged = await s.gql<{ __schema: { types: unknown[] } }>(`{ __schema { types { name } types { name } } s: __type(name: "Turn") { name } }`);
    expect(merged.errors).toBeUndefined();
    const deep = await s.gql(`{ __schema { types { fields { type { fields { type { fields { type { fields { name } } } } } } } } } }`);
    expect(errorCode(deep)).toBe('GRAPHQL_VALIDATION_FAILED');
  });

  it('the standard introspection query still works', async () => {
    const r = await s.gql<{ __schema: { types: unknown[] } }>(graphql.getIntrospectionQuery());
    expect(r.errors).toBeUndefined();
    expect(r.data!.__schema.types.length).toBeGreaterThan(10);
  });

  it('a response over maxResponseBytes is replaced by RESPONSE_TOO_LARGE', async () => {
    const tight = await startTestServer({ limits: { maxResponseBytes: 4096 } });
    try {
      const r = await tight.gql(graphql.getIntrospectionQuery());
      expect(errorCode(r)).toBe('RESPONSE_TOO_LARGE');
      expect(r.data).toBeNull();
      expect((await tight.gql('{ engineStatus { busy } }')).errors).toBeUndefined();
      // The same bound on a graphql-ws message.
      const { teller } = await createSession(tight);
      const results = await new Promise<unknown[]>((resolve, reject) => {
        const got: unknown[] = [];
        tight.ws(teller).subscribe({ query: graphql.getIntrospectionQuery() }, { next: (r) => got.push(r), error: reject, complete: () => resolve(got) });
      });
      expect(JSON.stringify(results)).toContain('RESPONSE_TOO_LARGE');
      expect(JSON.stringify(results).length).toBeLessThan(4096);
    } finally {
      await tight.stop();
    }
  });
});

describe('graphql-ws: a bad subscribe fails that operation only', () => {
  it('syntax errors, unknown fields, bad variables and two root fields are typed `error` messages; the socket and its other subscriptions live on', async () => {
    const { sessionId, teller } = await createSession(s);
    const ws = new WebSocket(s.wsUrl, 'graphql-transport-ws');
    const got = new Map<string, { type: string; payload: unknown }[]>();
    let closed: number | null = null;
    ws.on('close', (c) => (closed = c));
    await new Promise<void>((resolve, reject) => {
      ws.on('open', () => ws.send(JSON.stringify({ type: 'connection_init', payload: { authorization: `Bearer ${teller}` } })));
      ws.on('message', (m) => {
        const msg = JSON.parse(String(m)) as { type: string; id?: string; payload?: unknown };
        if (msg.type === 'connection_ack') resolve();
        else if (msg.id) got.set(msg.id, [...(got.get(msg.id) ?? []), { type: msg.type, payload: msg.payload }]);
      });
      ws.on('error', reject);
    });
    const subscribe = (id: string, query: string, variables?: Record<string, unknown>) =>
      ws.send(JSON.stringify({ id, type: 'subscribe', payload: { query, ...(variables ? { variables } : {}) } }));
    subscribe('good', `subscription { sessionEvents(sessionId: "${sessionId}") { kind message { text } } }`);
    const bad: Record<string, [string, Record<string, unknown>?]> = {
      syntax: ['subscription {'],
      unknown: ['subscription { nope }'],
      variables: ['subscription($s: ID!) { sessionEvents(sessionId: $s) { kind } }', { s: 5.5 }],
      missingVariable: ['subscription($s: ID!) { sessionEvents(sessionId: $s) { kind } }'],
      twoRoots: [`subscription { a: sessionEvents(sessionId: "${sessionId}") { kind } b: turnProgress(sessionId: "${sessionId}") { step } }`],
      surrogate: ['subscription($s: ID!) { sessionEvents(sessionId: $s) { kind } }', { s: 'x\udfff' }],
      literalSurrogate: [`subscription { sessionEvents(sessionId: "\\udfff") { kind } }`],
    };
    for (const [id, [q, v]] of Object.entries(bad)) subscribe(id, q, v);
    const expected: Record<string, string> = {
      syntax: 'GRAPHQL_PARSE_FAILED',
      unknown: 'GRAPHQL_VALIDATION_FAILED',
      variables: 'BAD_USER_INPUT',
      missingVariable: 'BAD_USER_INPUT',
      twoRoots: 'GRAPHQL_VALIDATION_FAILED',
      surrogate: 'BAD_USER_INPUT',
      literalSurrogate: 'GRAPHQL_PARSE_FAILED',
    };
    const deadline = Date.now() + 10_000;
    while (Object.keys(bad).some((id) => !got.has(id)) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    for (const [id, code] of Object.entries(expected)) {
      const msgs = got.get(id) ?? [];
      expect(msgs.map((m) => m.type), id).toEqual(['error']);
      expect((msgs[0]!.payload as Array<{ extensions: { code: string } }>)[0]!.extensions.code, id).toBe(code);
    }
    // The good subscription still delivers.
    await s.ok(MSG, { s: sessionId, t: 'still here' }, teller);
    const until = Date.now() + 10_000;
    const delivered = () => (got.get('good') ?? []).some((m) => JSON.stringify(m.payload).includes('still here'));
    while (!delivered() && Date.now() < until) await new Promise((r) => setTimeout(r, 20));
    expect(delivered()).toBe(true);
    expect(closed).toBeNull();
    ws.close();
  });
});

describe('graphql-ws: protocol errors are the client\'s', () => {
  it('a message only a server sends (next, error, connection_ack) closes the socket with 4400, not 4500', async () => {
    const { teller } = await createSession(s);
    for (const type of ['next', 'error', 'connection_ack']) {
      const closeCode = await new Promise<number>((resolve, reject) => {
        const ws = new WebSocket(s.wsUrl, 'graphql-transport-ws');
        ws.on('open', () => ws.send(JSON.stringify({ type: 'connection_init', payload: { authorization: `Bearer ${teller}` } })));
        ws.on('message', (m) => {
          if ((JSON.parse(String(m)) as { type: string }).type === 'connection_ack') ws.send(JSON.stringify({ type, id: 'x', payload: {} }));
        });
        ws.on('close', (c) => resolve(c));
        ws.on('error', () => undefined);
        setTimeout(() => reject(new Error('no close')), 10_000);
      });
      expect(closeCode, type).toBe(4400);
    }
  });
});

describe('rate limiting counts every request, including the ones that fail early', () => {
  const LIMIT = 10;
  let r: TestServer;
  beforeAll(async () => {
    r = await startTestServer({ limits: { maxOperationsPerMinute: LIMIT } });
  });
  afterAll(async () => {
    await r?.stop();
  });
  const statuses = async (n: number, send: () => Promise<{ status: number }>) => {
    const out: number[] = [];
    for (let i = 0; i < n; i++) out.push((await send()).status);
    return out;
  };

  it('parse errors, validation errors and unknown tokens are counted; 429 carries Retry-After', async () => {
    // Anonymous callers share the address's quota: parse errors use it up, then everything anonymous is 429.
    const parse = await statuses(LIMIT + 3, () => rawRequest(r.url, { headers: json(), body: JSON.stringify({ query: '{' }) }));
    expect(parse).toEqual([...Array(LIMIT).fill(400), 429, 429, 429]);
    const limited = await rawRequest(r.url, { headers: json(), body: JSON.stringify({ query: '{ nope }' }) });
    expect(limited.status).toBe(429);
    expect(Number(limited.headers.get('retry-after'))).toBeGreaterThan(0);
    expect(errorCode(limited.json)).toBe('RATE_LIMITED');
    // Unknown tokens are counted for the address before the lookup: refused without a database query once spent.
    const unknown = await rawRequest(r.url, { headers: json('no-such-token'), body: ENGINE });
    expect([unknown.status, errorCode(unknown.json)]).toEqual([429, 'RATE_LIMITED']);
  });

  it('a token\'s validation errors and image requests count against that token; the image route answers 429 with Retry-After', async () => {
    const fresh = await startTestServer({ limits: { maxOperationsPerMinute: LIMIT } });
    try {
      const { teller } = await createSession(fresh);
      const v = await statuses(LIMIT - 2, () => rawRequest(fresh.url, { headers: json(teller), body: JSON.stringify({ query: '{ nope }' }) }));
      expect(v).toEqual(Array(LIMIT - 2).fill(400));
      const images = await statuses(4, () => rawRequest(`${fresh.origin}/images/x.png`, { method: 'GET', headers: { authorization: `Bearer ${teller}` } }));
      expect(images).toEqual([404, 404, 429, 429]);
      const img = await rawRequest(`${fresh.origin}/images/x.png`, { method: 'GET', headers: { authorization: `Bearer ${teller}` } });
      expect(Number(img.headers.get('retry-after'))).toBeGreaterThan(0);
      expect(errorCode(img.json)).toBe('RATE_LIMITED');
      const unknownTokens = await statuses(LIMIT + 2, () => rawRequest(fresh.url, { headers: json(`guess-${Math.random()}`), body: ENGINE }));
      expect(unknownTokens.filter((x) => x === 401).length).toBeLessThanOrEqual(LIMIT);
      expect(unknownTokens.slice(-2)).toEqual([429, 429]);
    } finally {
      await fresh.stop();
    }
  });
});

describe('drain refuses new work from its first moment', () => {
  it('a submitTurn sent right after drain begins is INVALID_STATE; no turn is written', async () => {
    const d = await startTestServer();
    const { sessionId, teller } = await createSession(d);
    const long = await submit(d, teller, sessionId, 'add a red cube in the middle', { steps: 200 });
    await waitTurn(d, teller, long.id, ['RUNNING']);
    const draining = d.app.drain();
    const late = await d.gql(SUBMIT, { input: { sessionId, instruction: 'add a blue sphere', steps: 2 } }, teller);
    expect([late.status, errorCode(late)]).toEqual([503, 'INVALID_STATE']);
    await draining;
    const rows = (await import('better-sqlite3')).default;
    const db = new rows(`${d.dataDir}/codraw.db`, { readonly: true });
    expect((db.prepare('SELECT COUNT(*) AS n FROM Turn').get() as { n: number }).n).toBe(1);
    db.close();
  });
});
