/**
 * Fuzzing the real server (fast-check): random and mutated GraphQL documents, variables, headers and bodies over
 * HTTP, random and malformed graphql-ws messages, and mutated PNGs. Properties:
 * - every answer is JSON data or typed errors (a known `extensions.code`, never INTERNAL_SERVER_ERROR), with no
 *   stack traces or file paths;
 * - an operation refused before execution writes nothing (row counts unchanged), and at the end every session still
 *   has its teller and its background;
 * - a well-formed subscribe never closes the socket; a malformed message closes it only with the protocol's 4400;
 * - the server stays healthy and answers each request within a few seconds.
 *
 * The CI part runs in well under a minute on 2 cores; `npm run fuzz` runs FUZZ_SCALE (default 20) times as many.
 */
import path from 'node:path';
import Database from 'better-sqlite3';
import fc from 'fast-check';
import WebSocket from 'ws';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createSession, invite, leaksInternals, rawRequest, startTestServer, submit, type RawResponse, type TestServer } from './harness.js';
import { bombPng, pngDataUrl, solidPng } from '../utils/png.js';

const SCALE = Number(process.env.FUZZ_SCALE ?? 1) || 1;
const runs = (n: number): number => Math.round(n * SCALE);

/** Every code a client may see (schema.graphql's list plus Apollo's own request codes). */
const KNOWN_CODES = new Set([
  'UNAUTHENTICATED', 'FORBIDDEN', 'NOT_FOUND', 'BAD_USER_INPUT', 'TEXT_TOO_LONG', 'QUEUE_FULL', 'RATE_LIMITED',
  'QUERY_TOO_DEEP', 'QUERY_TOO_COMPLEX', 'TOO_MANY_ROOT_FIELDS', 'RESPONSE_TOO_LARGE', 'INVALID_STATE',
  'GRAPHQL_PARSE_FAILED', 'GRAPHQL_VALIDATION_FAILED', 'BAD_REQUEST', 'UNSUPPORTED_MEDIA_TYPE', 'PAYLOAD_TOO_LARGE',
  'PERSISTED_QUERY_NOT_FOUND', 'PERSISTED_QUERY_NOT_SUPPORTED', 'OPERATION_RESOLUTION_FAILURE',
]);
/** Tables only operations add rows to (the engine adds images, and updates turns). */
const COUNTED = ['DrawingSession', 'Participant', 'Message', 'Turn', 'Invite'] as const;

let s: TestServer;
let db: Database.Database;
let sessionId: string;
let teller: string;
let drawer: string;
let turnId: string;
let inviteCode: string;

beforeAll(async () => {
  s = await startTestServer({ limits: { maxOperationsPerMinute: 1_000_000, maxSteps: 3, maxQueuedTurnsPerSession: 3 } });
  ({ sessionId, teller } = await createSession(s));
  inviteCode = (await invite(s, teller, sessionId, 'DRAWER')).code;
  drawer = (await s.ok<{ joinSession: { token: string } }>(
    `mutation($i: JoinSessionInput!) { joinSession(input: $i) { token } }`,
    { i: { sessionId, name: 'Drew', role: 'DRAWER', invite: inviteCode } },
  )).joinSession.token;
  turnId = (await submit(s, teller, sessionId, 'add a red cube', { steps: 1 })).id;
  db = new Database(path.join(s.dataDir, 'codraw.db'), { readonly: true });
});
afterAll(async () => {
  db?.close();
  await s?.stop();
});

function counts(): Record<string, number> {
  return Object.fromEntries(COUNTED.map((t) => [t, (db.prepare(`SELECT COUNT(*) AS n FROM "${t}"`).get() as { n: number }).n]));
}

/** The answer is data or typed errors, and leaks nothing. */
function expectTyped(r: RawResponse, what: string): void {
  expect(leaksInternals(r.text), `${what}: ${r.text.slice(0, 300)}`).toBe(false);
  expect(r.json, `${what}: not JSON: ${r.status} ${r.text.slice(0, 200)}`).not.toBeNull();
  expect(r.status, what).toBeLessThan(500 + (r.status === 503 ? 1 : 0)); // 503 only for INVALID_STATE (drain)
  const errors = r.json!.errors ?? [];
  if (!errors.length) expect(r.json!.data, what).toBeDefined();
  for (const e of errors) {
    expect(typeof e.message, what).toBe('string');
    expect(KNOWN_CODES.has(String(e.extensions?.code)), `${what}: code ${e.extensions?.code} (${e.message})`).toBe(true);
  }
}

// ---------------------------------------------------------------- arbitraries

/** Strings a hostile client sends: any UTF-16 (lone surrogates included), Unicode, and the usual suspects. */
const hostileString = fc.oneof(
  fc.string16bits({ maxLength: 40 }),
  fc.fullUnicodeString({ maxLength: 40 }),
  fc.constantFrom('', ' ', 'x\udfff', '\ud800', '\u0000', '"', '\\', 'a'.repeat(600), '../../etc/passwd', '<script>'),
);
const hostileJson: fc.Arbitrary<unknown> = fc.letrec((tie) => ({
  value: fc.oneof(
    { depthSize: 'small' },
    hostileString,
    fc.integer(),
    fc.double(),
    fc.boolean(),
    fc.constant(null),
    fc.array(tie('value'), { maxLength: 4 }),
    fc.dictionary(hostileString, tie('value'), { maxKeys: 4 }),
  ),
})).value;

/** Valid operations of the API, the seeds that mutation starts from. */
const seeds = (): string[] => [
  `{ engineStatus { backend busy queueLength turnDefaults { steps } } }`,
  `query($id: ID!) { session(id: $id) { id title participants { name role } messages(last: 5) { text author { name } } turns(last: 3) { id status } canvas { url } } }`,
  `mutation($s: ID!, $t: String!) { sendMessage(sessionId: $s, text: $t) { id text } }`,
  `mutation { sendMessage(sessionId: "${sessionId}", text: "hello") { id } b: sendMessage(sessionId: "${sessionId}", text: "again") { id } }`,
  `mutation($i: CreateSessionInput!) { createSession(input: $i) { token session { id } } }`,
  `mutation { createSession(input: { title: "t", name: "n", dataset: "codraw" }) { session { id dataset } } }`,
  `mutation($i: SubmitTurnInput!) { submitTurn(input: $i) { id status } }`,
  `mutation { submitTurn(input: { sessionId: "${sessionId}", instruction: "add a cube", steps: 1, seed: 3 }) { id } }`,
  `mutation { cancelTurn(turnId: "${turnId}") { status } }`,
  `mutation { revertToTurn(turnId: "${turnId}") { id } }`,
  `mutation($i: JoinSessionInput!) { joinSession(input: $i) { token participant { role } } }`,
  `mutation { createInvite(sessionId: "${sessionId}", role: OBSERVER, maxUses: 2) { code } }`,
  `query { sessions { id me { role } } }`,
  `query($t: ID!) { turn(id: $t) { id parent { id } settings { steps seed } resultImage { dataUrl } } }`,
  `{ __schema { types { name fields { name } } } }`,
  `query A { engineStatus { busy } } query B { sessions { id } }`,
  `fragment F on DrawingSession { id title } query($id: ID!) { session(id: $id) { ...F headTurn { id } } }`,
  `subscription { sessionEvents(sessionId: "${sessionId}") { kind } }`,
];

const TOKENS = ['{', '}', '(', ')', ':', '$s', '$i', '...', '@skip(if: true)', '@include(if: $b)', 'query', 'mutation',
  'subscription', 'fragment', 'F', 'on', 'Mutation', 'sendMessage', 'createSession', 'session', 'sessions', 'id', 'text',
  'input', 'sessionId:', '"x"', '"\\u00e9"', '1', '-1', '1e999', 'true', 'null', '[', ']', '__schema', '__type(name: "Turn")',
  'types', 'name', '__typename', 'a:', 'b:', 'engineStatus', 'busy', 'turns(last: 999999)', 'messages', '#', '"""', ',', '=', '!'];

/** Random token soup, and valid documents with characters inserted, deleted or replaced. */
const document = fc.oneof(
  fc.array(fc.constantFrom(...TOKENS), { maxLength: 30 }).map((t) => t.join(' ')),
  fc
    .tuple(
      fc.nat(),
      fc.array(fc.tuple(fc.nat(), fc.constantFrom('insert', 'delete', 'replace'), fc.oneof(fc.char16bits(), fc.constantFrom(...TOKENS))), { maxLength: 4 }),
    )
    .map(([i, edits]) => {
      const all = seeds();
      let q = all[i % all.length]!;
      for (const [at, op, piece] of edits) {
        const p = at % (q.length + 1);
        q = op === 'insert' ? q.slice(0, p) + piece + q.slice(p) : op === 'delete' ? q.slice(0, p) + q.slice(p + 1) : q.slice(0, p) + piece + q.slice(p + 1);
      }
      return q;
    }),
  fc.nat().map((i) => seeds()[i % seeds().length]!),
);

/** Variables: right-shaped with hostile values, or anything at all (built in the tests, once the ids exist). */
const variablesArb = (): fc.Arbitrary<unknown> =>
  fc.oneof(
    fc.record({ s: fc.oneof(fc.constant(sessionId), hostileString), t: hostileString }),
    fc.record({ id: fc.oneof(fc.constant(sessionId), hostileString), t: fc.oneof(fc.constant(turnId), hostileString) }),
    fc.record({ i: fc.record({ title: hostileString, name: hostileString, dataset: fc.oneof(fc.constant('iclevr'), hostileString), backgroundPng: fc.option(hostileString) }) }),
    fc.record({ i: fc.record({ sessionId: fc.constant(sessionId), instruction: hostileString, steps: fc.option(fc.integer()), seed: fc.option(fc.double()) }) }),
    fc.record({ i: fc.record({ sessionId: fc.constant(sessionId), name: hostileString, role: fc.constantFrom('TELLER', 'DRAWER', 'OBSERVER', 'ADMIN'), invite: fc.oneof(fc.constant(inviteCode), hostileString) }) }),
    hostileJson,
  );

const who = fc.constantFrom<'teller' | 'drawer' | 'anonymous' | 'bogus'>('teller', 'drawer', 'anonymous', 'bogus');
const tokenOf = (w: 'teller' | 'drawer' | 'anonymous' | 'bogus'): string | null =>
  w === 'teller' ? teller : w === 'drawer' ? drawer : w === 'bogus' ? 'bogus-token' : null;

async function timed<T>(what: string, p: Promise<T>, ms = 5000): Promise<T> {
  const t0 = performance.now();
  const r = await p;
  expect(performance.now() - t0, `${what} took too long`).toBeLessThan(ms);
  return r;
}

// ---------------------------------------------------------------- properties

describe('fuzzing HTTP', () => {
  it('random and mutated documents with hostile variables: data or typed errors, and operations refused before execution write nothing', async () => {
    await fc.assert(
      fc.asyncProperty(document, variablesArb(), who, fc.option(fc.string({ maxLength: 12 })), async (query, vars, w, operationName) => {
        const before = counts();
        const token = tokenOf(w);
        const body = JSON.stringify({ query, variables: vars, ...(operationName !== null ? { operationName } : {}) });
        const r = await timed(query, rawRequest(s.url, { headers: { 'content-type': 'application/json', ...(token ? { authorization: `Bearer ${token}` } : {}) }, body }));
        expectTyped(r, query);
        // Refused before execution (no error has a path): nothing written. Once executed, each root field is its own
        // transaction; a failing non-null field nulls `data` (GraphQL) while earlier fields' writes stand.
        const wrote = JSON.stringify(counts()) !== JSON.stringify(before);
        const executed = r.json!.data !== undefined && (r.json!.data !== null || (r.json!.errors ?? []).some((e) => 'path' in e));
        if (wrote) expect(executed, `${query} wrote rows but was refused`).toBe(true);
      }),
      { numRuns: runs(250) },
    );
  });

  const contentTypes = ['application/json', 'application/json; charset=utf-8', 'application/json; charset=latin1', 'application/json; charset=utf-16',
    'text/plain', 'application/graphql-response+json', 'multipart/form-data; boundary=x', 'application/x-www-form-urlencoded', ''];
  const encodings = ['', 'gzip', 'deflate', 'br', 'compress', 'identity', 'gzip, gzip', 'x-unknown'];

  it('random headers, methods and raw bodies: typed answers', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.constantFrom(...contentTypes),
        fc.constantFrom(...encodings),
        fc.constantFrom('POST', 'GET', 'PUT', 'DELETE', 'PATCH'),
        fc.oneof(fc.uint8Array({ maxLength: 300 }).map((b) => Buffer.from(b)), document.map((q) => JSON.stringify({ query: q })), hostileJson.map((j) => JSON.stringify(j) ?? 'null')),
        fc.option(fc.constantFrom('Bearer', 'Bearer ', 'Basic abc', 'Bearer x y', `Bearer ${'t'.repeat(5000)}`)),
        async (contentType, encoding, method, body, authorization) => {
          const headers: Record<string, string> = {};
          if (contentType) headers['content-type'] = contentType;
          if (encoding) headers['content-encoding'] = encoding;
          if (authorization !== null) headers.authorization = authorization;
          const hasBody = method !== 'GET';
          const r = await timed(`${method} ${contentType} ${encoding}`, rawRequest(s.url, { method, headers, ...(hasBody ? { body } : {}) }));
          expectTyped(r, `${method} ${contentType} ${encoding} ${String(body).slice(0, 80)}`);
        },
      ),
      { numRuns: runs(150) },
    );
  });

  it('mutated PNGs and bomb headers as backgroundPng: a session or BAD_USER_INPUT, quickly', async () => {
    const good = solidPng(16, 16);
    const png = fc.oneof(
      fc.array(fc.tuple(fc.nat(good.length - 1), fc.integer({ min: 0, max: 255 })), { minLength: 1, maxLength: 6 }).map((flips) => {
        const b = Buffer.from(good);
        for (const [i, v] of flips) b[i] = v;
        return b;
      }),
      fc.nat(good.length).map((n) => good.subarray(0, n)),
      fc.tuple(fc.integer({ min: 0, max: 200_000 }), fc.integer({ min: 0, max: 200_000 })).map(([w, h]) => bombPng(w, h)),
      fc.uint8Array({ maxLength: 200 }).map((b) => Buffer.concat([good.subarray(0, 8), Buffer.from(b)])),
    );
    await fc.assert(
      fc.asyncProperty(png, async (bytes) => {
        const before = counts();
        const r = await timed('backgroundPng', rawRequest(s.url, {
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify({ query: `mutation($i: CreateSessionInput!) { createSession(input: $i) { session { id } } }`, variables: { i: { title: 't', name: 'n', backgroundPng: pngDataUrl(bytes) } } }),
        }), 2000);
        expectTyped(r, 'backgroundPng');
        const created = counts().DrawingSession - before.DrawingSession;
        if (r.json!.errors?.length) {
          expect(r.json!.errors[0]!.extensions?.code).toBe('BAD_USER_INPUT');
          expect(created).toBe(0);
        } else expect(created).toBe(1);
      }),
      { numRuns: runs(120) },
    );
  });
});

describe('fuzzing graphql-ws', () => {
  type Sent = { kind: 'subscribe'; id: string; query: string; variables: unknown } | { kind: 'raw'; data: string };
  const message = (): fc.Arbitrary<Omit<Sent, 'id'> & { id?: string }> => fc.oneof(
    fc.tuple(document, variablesArb()).map(([query, vars]) => ({ kind: 'subscribe' as const, query, variables: vars })),
    fc.oneof(
      fc.string16bits({ maxLength: 60 }),
      hostileJson.map((j) => JSON.stringify(j) ?? 'null'),
      fc.record({ type: fc.constantFrom('subscribe', 'complete', 'ping', 'pong', 'next', 'connection_init', 'nope'), id: fc.option(hostileString), payload: hostileJson }).map((m) => JSON.stringify(m)),
    ).map((data) => ({ kind: 'raw' as const, data })),
  );
  let nextId = 0;

  it('well-formed subscribes get typed answers and never close the socket; malformed messages close it only with 4400', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(message(), { minLength: 1, maxLength: 6 }), async (msgs) => {
        const ws = new WebSocket(s.wsUrl, 'graphql-transport-ws');
        const answers = new Map<string, Array<{ type: string; payload: unknown }>>();
        let closeCode: number | null = null;
        const closed = new Promise<void>((resolve) => ws.on('close', (c) => ((closeCode = c), resolve())));
        ws.on('error', () => undefined);
        await new Promise<void>((resolve, reject) => {
          ws.on('open', () => ws.send(JSON.stringify({ type: 'connection_init', payload: { authorization: `Bearer ${teller}` } })));
          ws.on('message', (m) => {
            const msg = JSON.parse(String(m)) as { type: string; id?: string; payload?: unknown };
            if (msg.type === 'connection_ack') resolve();
            else if (msg.id) answers.set(msg.id, [...(answers.get(msg.id) ?? []), { type: msg.type, payload: msg.payload }]);
          });
          setTimeout(() => reject(new Error('no ack')), 5000);
        });
        const sent: Sent[] = msgs.map((m) => (m.kind === 'subscribe' ? { ...m, id: `f${nextId++}` } as Sent : (m as Sent)));
        for (const m of sent) {
          if (ws.readyState !== ws.OPEN) break;
          ws.send(m.kind === 'subscribe' ? JSON.stringify({ id: m.id, type: 'subscribe', payload: { query: m.query, variables: m.variables } }) : m.data);
        }
        // A final probe: a query over the socket answers if the socket lives.
        if (ws.readyState === ws.OPEN) ws.send(JSON.stringify({ id: 'probe', type: 'subscribe', payload: { query: '{ engineStatus { busy } }' } }));
        const deadline = Date.now() + 5000;
        while (closeCode === null && !answers.get('probe')?.some((a) => a.type === 'complete') && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
        // graphql-ws validates the message itself: `variables` other than an object (not an array) or null is a
        // malformed message.
        const malformed = (v: unknown) => v !== null && v !== undefined && (typeof v !== 'object' || Array.isArray(v));
        const rawSent = sent.some((m) => m.kind === 'raw' || malformed(m.variables));
        if (closeCode !== null) {
          expect(rawSent, `closed ${closeCode} after well-formed subscribes only`).toBe(true);
          expect([4400, 4409, 4429], `closed ${closeCode} after ${JSON.stringify(sent)}`).toContain(closeCode);
        } else {
          expect(answers.get('probe')?.map((a) => a.type)).toEqual(['next', 'complete']);
          for (const m of sent) {
            if (m.kind !== 'subscribe') continue;
            for (const a of answers.get(m.id) ?? []) {
              const errors = (a.type === 'error' ? a.payload : (a.payload as { errors?: unknown[] } | undefined)?.errors ?? []) as Array<{ extensions?: { code?: string } }>;
              for (const e of errors) expect(KNOWN_CODES.has(String(e.extensions?.code)), `${m.query}: ${JSON.stringify(e)}`).toBe(true);
            }
          }
          ws.close();
          await closed;
        }
      }),
      { numRuns: runs(60) },
    );
  });
});

describe('after fuzzing', () => {
  it('the server is healthy and nothing is half-written', async () => {
    const health = await fetch(`${s.origin}/healthz`);
    expect(health.status).toBe(200);
    await s.ok(`mutation($s: ID!) { sendMessage(sessionId: $s, text: "still fine") { id } }`, { s: sessionId }, teller);
    // Every session has its creator as a teller and its background image, which belongs to it.
    const orphans = db.prepare(`
      SELECT s.id FROM DrawingSession s
      LEFT JOIN GeneratedImage g ON g.id = s.backgroundImageId AND g.sessionId = s.id
      WHERE g.id IS NULL OR NOT EXISTS (SELECT 1 FROM Participant p WHERE p.sessionId = s.id AND p.role = 'TELLER')`).all();
    expect(orphans).toEqual([]);
    const unowned = db.prepare(`SELECT COUNT(*) AS n FROM GeneratedImage WHERE sessionId IS NULL`).get() as { n: number };
    expect(unowned.n).toBe(0);
    // No text that could not be stored slipped through.
    const texts = db.prepare(`SELECT text FROM Message UNION ALL SELECT title FROM DrawingSession UNION ALL SELECT name FROM Participant`).all() as Array<{ text: string }>;
    for (const { text } of texts) expect(/\p{Cs}/u.test(text)).toBe(false);
  });
});
