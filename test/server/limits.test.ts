/**
 * Every limit against the real server, each answered with a typed error (stable extensions.code) and nothing
 * half-written: text length, turns queued per session, operations per minute, query depth and complexity (HTTP
 * and subscriptions), WebSocket message size, HTTP body size, bad generation settings.
 */
import WebSocket from 'ws';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Collector, EVENTS, SUBMIT, createSession, join, startTestServer, submit, type TestServer } from './harness.js';

let s: TestServer;
const LIMITS = {
  maxTextLength: 40,
  maxNameLength: 20,
  maxQueuedTurnsPerSession: 2,
  maxOperationsPerMinute: 60,
  maxQueryDepth: 5,
  maxQueryComplexity: 400,
  maxWsPayloadBytes: 2048,
  maxHttpBodyBytes: 4096,
};
beforeAll(async () => {
  s = await startTestServer({ limits: LIMITS });
});
afterAll(async () => {
  await s?.stop();
});

const code = (r: { errors?: Array<{ extensions?: { code?: string } }> }): string | undefined => r.errors?.[0]?.extensions?.code;
const MSG = `mutation($s: ID!, $t: String!) { sendMessage(sessionId: $s, text: $t) { id } }`;
const COUNTS = `query($id: ID!) { session(id: $id) { messages(last: 100) { id } turns { id status } } }`;

describe('input limits', () => {
  it('text longer than the limit is TEXT_TOO_LONG and writes nothing', async () => {
    const { sessionId, teller } = await createSession(s);
    const long = 'x'.repeat(LIMITS.maxTextLength + 1);
    const m = await s.gql(MSG, { s: sessionId, t: long }, teller);
    expect(code(m)).toBe('TEXT_TOO_LONG');
    expect(m.errors?.[0]?.extensions).toMatchObject({ limit: LIMITS.maxTextLength, length: LIMITS.maxTextLength + 1 });
    expect(code(await s.gql(SUBMIT, { input: { sessionId, instruction: long } }, teller))).toBe('TEXT_TOO_LONG');
    expect(code(await s.gql(MSG, { s: sessionId, t: '   ' }, teller))).toBe('BAD_USER_INPUT');
    const names = await s.gql(`mutation($i: CreateSessionInput!) { createSession(input: $i) { token } }`, {
      i: { title: 't'.repeat(LIMITS.maxNameLength + 1), name: 'a' },
    });
    expect(code(names)).toBe('TEXT_TOO_LONG');
    const c = await s.ok<{ session: { messages: unknown[]; turns: unknown[] } }>(COUNTS, { id: sessionId }, teller);
    expect(c.session.messages).toHaveLength(0);
    expect(c.session.turns).toHaveLength(0);
  });

  it('generation settings out of range are BAD_USER_INPUT and write nothing', async () => {
    const { sessionId, teller } = await createSession(s);
    for (const bad of [{ steps: 0 }, { steps: 100_000 }, { guidanceScale: -1 }, { seed: -5 }, { candidates: 0 }, { candidates: 9 }]) {
      const r = await s.gql(SUBMIT, { input: { sessionId, instruction: 'add a cube', ...bad } }, teller);
      expect(code(r), JSON.stringify(bad)).toBe('BAD_USER_INPUT');
    }
    const c = await s.ok<{ session: { turns: unknown[] } }>(COUNTS, { id: sessionId }, teller);
    expect(c.session.turns).toHaveLength(0);
  });

  it('more turns waiting than the per-session limit is QUEUE_FULL; other sessions are unaffected', async () => {
    const { sessionId, teller } = await createSession(s);
    const a = await submit(s, teller, sessionId, 'add a red cube in the middle', { steps: 200 });
    const b = await submit(s, teller, sessionId, 'add a blue sphere', { steps: 200 });
    const full = await s.gql(SUBMIT, { input: { sessionId, instruction: 'one more', steps: 2 } }, teller);
    expect(code(full)).toBe('QUEUE_FULL');
    expect(full.errors?.[0]?.extensions?.limit).toBe(2);
    const c = await s.ok<{ session: { turns: Array<{ id: string }> } }>(COUNTS, { id: sessionId }, teller);
    expect(c.session.turns.map((t) => t.id)).toEqual([a.id, b.id]);
    // Concurrent submissions cannot overshoot either.
    const other = await createSession(s);
    const burst = await Promise.all(
      [1, 2, 3, 4].map((i) => s.gql(SUBMIT, { input: { sessionId: other.sessionId, instruction: `turn ${i}`, steps: 200 } }, other.teller)),
    );
    expect(burst.filter((r) => !r.errors).length).toBe(2);
    expect(burst.filter((r) => code(r) === 'QUEUE_FULL').length).toBe(2);
    // Clean up: cancel what is waiting so the engine is free for the next tests.
    const ids = [a.id, b.id, ...burst.flatMap((r) => (r.data ? [(r.data as { submitTurn: { id: string } }).submitTurn.id] : []))];
    for (const id of ids.reverse()) {
      const tok = id === a.id || id === b.id ? teller : other.teller;
      await s.ok(`mutation($t: ID!) { cancelTurn(turnId: $t) { id } }`, { t: id }, tok);
    }
  });
});

describe('query shape limits', () => {
  const deep = `query($id: ID!) { session(id: $id) { headTurn { parent { parent { parent { parent { id } } } } } } }`;
  const heavy = `query($id: ID!) { session(id: $id) { turns(last: 200) { id author { name } resultImage { dataUrl } } } }`;

  it('too deep or too complex over HTTP: QUERY_TOO_DEEP / QUERY_TOO_COMPLEX before anything runs', async () => {
    const { sessionId, teller } = await createSession(s);
    const d = await s.gql(deep, { id: sessionId }, teller);
    expect(d.status).toBe(400);
    expect(code(d)).toBe('QUERY_TOO_DEEP');
    expect(d.errors?.[0]?.extensions).toMatchObject({ depth: 7, limit: 5 });
    const h = await s.gql(heavy, { id: sessionId }, teller);
    expect(h.status).toBe(400);
    expect(code(h)).toBe('QUERY_TOO_COMPLEX');
    // The same shape with a small page fits.
    const small = await s.gql(heavy.replace('last: 200', 'last: 5'), { id: sessionId }, teller);
    expect(small.errors).toBeUndefined();
    // A mutation over the limits is refused without writing.
    const deepMutation = await s.gql(
      `mutation($s: ID!) { submitTurn(input: { sessionId: $s, instruction: "add a cube" }) { parent { parent { parent { parent { parent { id } } } } } } }`,
      { s: sessionId },
      teller,
    );
    expect(code(deepMutation)).toBe('QUERY_TOO_DEEP');
    const c = await s.ok<{ session: { turns: unknown[] } }>(COUNTS, { id: sessionId }, teller);
    expect(c.session.turns).toHaveLength(0);
  });

  it('the same limits apply to subscriptions (checked in graphql-ws onSubscribe)', async () => {
    const { sessionId, teller } = await createSession(s);
    const client = s.ws(teller);
    const deepSub = new Collector(client, `subscription($s: ID!) { sessionEvents(sessionId: $s) { turn { parent { parent { parent { parent { id } } } } } } }`, { s: sessionId }, (x) => x);
    await deepSub.ended();
    expect(JSON.stringify(deepSub.errors)).toContain('QUERY_TOO_DEEP');
    const tooMuch = new Collector(
      client,
      `subscription($s: ID!) { turnProgress(sessionId: $s) { ${Array.from({ length: 45 }, (_, i) => `p${i}: preview`).join(' ')} } }`,
      { s: sessionId },
      (x) => x,
    );
    await tooMuch.ended();
    expect(JSON.stringify(tooMuch.errors)).toContain('QUERY_TOO_COMPLEX');
  });
});

describe('rate and size limits', () => {
  it('operations over the per-minute limit are RATE_LIMITED (HTTP 429) for that token only, and not executed', async () => {
    const { sessionId, teller } = await createSession(s);
    const other = await join(s, { sessionId, teller }, 'DRAWER');
    let limited: Awaited<ReturnType<TestServer['gql']>> | null = null;
    let sent = 0;
    for (let i = 0; i < LIMITS.maxOperationsPerMinute + 1 && !limited; i++) {
      const r = await s.gql(MSG, { s: sessionId, t: `m${i}` }, teller);
      if (code(r) === 'RATE_LIMITED') limited = r;
      else sent++;
    }
    expect(limited).not.toBeNull();
    expect(limited!.status).toBe(429);
    expect(limited!.errors?.[0]?.extensions?.retryAfterMs).toBeGreaterThan(0);
    // Another participant is unaffected, and only the accepted messages were written.
    const c = await s.ok<{ session: { messages: unknown[] } }>(COUNTS, { id: sessionId }, other);
    expect(c.session.messages).toHaveLength(sent);
    expect(sent).toBeLessThanOrEqual(LIMITS.maxOperationsPerMinute);
    // Subscribing counts too.
    const sub = new Collector(s.ws(teller), EVENTS, { sessionId }, (x) => x);
    await sub.ended();
    expect(JSON.stringify(sub.errors)).toContain('RATE_LIMITED');
  });

  it('a WebSocket message over maxPayload closes the socket with 1009', async () => {
    const { teller } = await createSession(s);
    const closeCode = await new Promise<number>((resolve, reject) => {
      const ws = new WebSocket(s.wsUrl, 'graphql-transport-ws');
      ws.on('open', () => ws.send(JSON.stringify({ type: 'connection_init', payload: { authorization: `Bearer ${teller}` } })));
      ws.on('message', (m) => {
        if (JSON.parse(String(m)).type === 'connection_ack') {
          ws.send(JSON.stringify({ id: '1', type: 'subscribe', payload: { query: `subscription { x }`, padding: 'p'.repeat(LIMITS.maxWsPayloadBytes) } }));
        }
      });
      ws.on('close', (c) => resolve(c));
      ws.on('error', () => undefined);
      setTimeout(() => reject(new Error('no close')), 10_000);
    });
    expect(closeCode).toBe(1009);
  });

  it('an HTTP body over the limit is 413 PAYLOAD_TOO_LARGE', async () => {
    const { sessionId, teller } = await createSession(s);
    const res = await fetch(s.url, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${teller}` },
      body: JSON.stringify({ query: MSG, variables: { s: sessionId, t: 'y'.repeat(LIMITS.maxHttpBodyBytes) } }),
    });
    expect(res.status).toBe(413);
    const body = (await res.json()) as { errors: Array<{ extensions: { code: string } }> };
    expect(body.errors[0]!.extensions.code).toBe('PAYLOAD_TOO_LARGE');
  });
});
