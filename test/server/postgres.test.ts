/**
 * The PostgreSQL path (pg driver adapter, prisma/postgres migrations, the client generated from
 * prisma/postgres/schema.prisma). Runs only when TEST_POSTGRES_URL names an empty database, e.g.
 *   TEST_POSTGRES_URL=postgres://postgres@127.0.0.1:55432/codraw_test npx vitest run test/server/postgres.test.ts
 * (.ci/run starts a PostgreSQL server and sets it).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createSession, join, startTestServer, submit, waitTurn, type TestServer } from './harness.js';

const url = process.env.TEST_POSTGRES_URL;

describe.skipIf(!url)('PostgreSQL', () => {
  let s: TestServer;
  beforeAll(async () => {
    s = await startTestServer({ databaseUrl: url });
  });
  afterAll(async () => {
    await s?.stop();
  });

  it('migrates at start, and sessions, messages, turns and images round-trip', async () => {
    const { sessionId, teller } = await createSession(s);
    const drawer = await join(s, { sessionId, teller }, 'DRAWER');
    await s.ok(`mutation($s: ID!) { sendMessage(sessionId: $s, text: "left side") { id } }`, { s: sessionId }, drawer);
    const t = await submit(s, teller, sessionId, 'add a red cube', { steps: 2, candidates: 2 });
    expect(t.text).toBe('add a red cube left side');
    const done = await waitTurn(s, teller, t.id);
    expect(done.status).toBe('SUCCEEDED');
    const settings = await s.ok<{ turn: { settings: { candidates: number } } }>(`query($id: ID!) { turn(id: $id) { settings { candidates } } }`, { id: t.id }, teller);
    expect(settings.turn.settings.candidates).toBe(2);
    const res = await fetch(`${s.origin}${done.resultImage!.url}`, { headers: { authorization: `Bearer ${teller}` } });
    expect(res.status).toBe(200);
    expect(Buffer.from(await res.arrayBuffer()).subarray(1, 4).toString()).toBe('PNG');
  });
});
