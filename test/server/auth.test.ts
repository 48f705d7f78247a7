/**
 * Auth and roles against the real server: bearer tokens over HTTP and graphql-ws, close 4403 on a bad token,
 * tellers / drawers / observers, and nobody reading or subscribing to a session they have not joined.
 */
import WebSocket from 'ws';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  Collector,
  EVENTS,
  SUBMIT,
  createSession,
  join,
  startTestServer,
  submit,
  waitTurn,
  type EventItem,
  type TestServer,
} from './harness.js';

let s: TestServer;
beforeAll(async () => {
  s = await startTestServer();
});
afterAll(async () => {
  await s?.stop();
});

const SESSION = `query($id: ID!) { session(id: $id) { id title me { role } participants { name role online left } } }`;
const code = (r: { errors?: Array<{ extensions?: { code?: string } }> }): string | undefined => r.errors?.[0]?.extensions?.code;

/** Open a raw graphql-transport-ws socket, send connection_init with `params`, resolve with the close code or 'ack'. */
function rawConnect(params: Record<string, unknown>): Promise<number | 'ack'> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(s.wsUrl, 'graphql-transport-ws');
    ws.on('open', () => ws.send(JSON.stringify({ type: 'connection_init', payload: params })));
    ws.on('message', (m) => {
      if (JSON.parse(String(m)).type === 'connection_ack') {
        resolve('ack');
        ws.close();
      }
    });
    ws.on('close', (c) => resolve(c));
    ws.on('error', reject);
  });
}

describe('bearer tokens', () => {
  it('HTTP: no token is UNAUTHENTICATED for session data, a bad token is refused with 401', async () => {
    const { sessionId } = await createSession(s);
    const anon = await s.gql(SESSION, { id: sessionId });
    expect(code(anon)).toBe('UNAUTHENTICATED');
    expect(anon.data).toBeNull();
    const bad = await s.gql(SESSION, { id: sessionId }, 'not-a-token');
    expect(bad.status).toBe(401);
    expect(code(bad)).toBe('UNAUTHENTICATED');
    // engineStatus is public.
    const st = await s.ok<{ engineStatus: { backend: string; model: string; queueLength: number; busy: boolean } }>(
      `{ engineStatus { backend device threads model queueLength busy batching maxBatchSize } }`,
    );
    expect(st.engineStatus.model).toContain('tiny');
    expect(typeof st.engineStatus.busy).toBe('boolean');
  });

  it('graphql-ws: a bad or missing token closes with 4403 at connect; a good one is acknowledged', async () => {
    const { teller } = await createSession(s);
    expect(await rawConnect({ authorization: 'Bearer nope' })).toBe(4403);
    expect(await rawConnect({})).toBe(4403);
    expect(await rawConnect({ authorization: `Bearer ${teller}` })).toBe('ack');
    expect(await rawConnect({ token: teller })).toBe('ack');
  });

  it('one token can join several sessions; joinSession with it returns the same token', async () => {
    const a = await createSession(s, { title: 'first' });
    const b = await createSession(s, { title: 'second' });
    const again = await join(s, b, 'DRAWER', 'me too', a.teller);
    expect(again).toBe(a.teller);
    const list = await s.ok<{ sessions: Array<{ id: string; title: string; me: { role: string } }> }>(
      `{ sessions { id title me { role } } }`,
      {},
      a.teller,
    );
    expect(list.sessions.map((x) => [x.title, x.me.role])).toEqual([
      ['second', 'DRAWER'],
      ['first', 'TELLER'],
    ]);
  });
});

describe('nobody reads or subscribes to a session they have not joined', () => {
  it('queries, images and subscriptions of another session are FORBIDDEN', async () => {
    const mine = await createSession(s, { title: 'mine' });
    const theirs = await createSession(s, { title: 'theirs' });
    const t = await submit(s, theirs.teller, theirs.sessionId, 'add a red cube in the middle', { steps: 2 });
    const done = await waitTurn(s, theirs.teller, t.id);

    expect(code(await s.gql(SESSION, { id: theirs.sessionId }, mine.teller))).toBe('FORBIDDEN');
    expect(code(await s.gql(`query($id: ID!) { turn(id: $id) { id } }`, { id: t.id }, mine.teller))).toBe('FORBIDDEN');
    expect(code(await s.gql(`query($id: ID!) { image(id: $id) { id } }`, { id: done.resultImage!.id }, mine.teller))).toBe('FORBIDDEN');
    const img = await fetch(`${s.origin}${done.resultImage!.url}`, { headers: { authorization: `Bearer ${mine.teller}` } });
    expect(img.status).toBe(403);
    expect((await fetch(`${s.origin}${done.resultImage!.url}`)).status).toBe(401);
    expect((await fetch(`${s.origin}/images/nope.png`, { headers: { authorization: `Bearer ${mine.teller}` } })).status).toBe(404);
    // Mutations on it too, and nothing is written.
    expect(code(await s.gql(SUBMIT, { input: { sessionId: theirs.sessionId, instruction: 'x' } }, mine.teller))).toBe('FORBIDDEN');
    expect(code(await s.gql(`mutation($t: ID!) { cancelTurn(turnId: $t) { id } }`, { t: t.id }, mine.teller))).toBe('FORBIDDEN');

    const sub = new Collector<EventItem>(s.ws(mine.teller), EVENTS, { sessionId: theirs.sessionId }, (d) => d.sessionEvents as EventItem);
    await sub.ended();
    expect(sub.items).toEqual([]);
    expect(JSON.stringify(sub.errors)).toContain('FORBIDDEN');
    const turns = await s.ok<{ session: { turns: unknown[] } }>(`query($id: ID!) { session(id: $id) { turns { id } } }`, { id: theirs.sessionId }, theirs.teller);
    expect(turns.session.turns).toHaveLength(1);
  });

  it('after leaveSession the token no longer reads the session, and others see them leave', async () => {
    const { sessionId, teller } = await createSession(s);
    const drawer = await join(s, { sessionId, teller }, 'DRAWER', 'Leaver');
    const ev = new Collector<EventItem>(s.ws(teller), EVENTS, { sessionId }, (d) => d.sessionEvents as EventItem);
    await ev.until((e) => e.some((x) => x.kind === 'PARTICIPANT_ONLINE'), 10_000, 'online');
    const theirs = new Collector<EventItem>(s.ws(drawer), EVENTS, { sessionId }, (d) => d.sessionEvents as EventItem);
    await ev.until((e) => e.some((x) => x.kind === 'PARTICIPANT_ONLINE' && x.participant?.name === 'Leaver'), 10_000, 'drawer online');
    const left = await s.ok<{ leaveSession: { left: boolean } }>(`mutation($s: ID!) { leaveSession(sessionId: $s) { left } }`, { s: sessionId }, drawer);
    expect(left.leaveSession.left).toBe(true);
    expect(code(await s.gql(SESSION, { id: sessionId }, drawer))).toBe('FORBIDDEN');
    await ev.until((e) => e.some((x) => x.kind === 'PARTICIPANT_LEFT' && x.participant?.name === 'Leaver'), 10_000, 'left event');
    // Their open subscription ended with the leave, and they show as offline.
    await theirs.ended();
    expect(ev.items.find((x) => x.kind === 'PARTICIPANT_LEFT')?.participant?.online).toBe(false);
    ev.unsubscribe();
  });
});

describe('roles', () => {
  it('observers only read; drawers chat but submit only when the session allows it; tellers do everything', async () => {
    const { sessionId, teller } = await createSession(s);
    const drawer = await join(s, { sessionId, teller }, 'DRAWER');
    const observer = await join(s, { sessionId, teller }, 'OBSERVER');

    // Observers read and subscribe...
    const seen = await s.ok<{ session: { me: { role: string }; participants: Array<{ role: string }> } }>(SESSION, { id: sessionId }, observer);
    expect(seen.session.me.role).toBe('OBSERVER');
    expect(seen.session.participants.map((p) => p.role)).toEqual(['TELLER', 'DRAWER', 'OBSERVER']);
    const obsEvents = new Collector<EventItem>(s.ws(observer), EVENTS, { sessionId }, (d) => d.sessionEvents as EventItem);
    await obsEvents.until((e) => e.some((x) => x.kind === 'PARTICIPANT_ONLINE'), 10_000, 'observer online');
    // ...but neither chat nor submit.
    const msg = `mutation($s: ID!, $t: String!) { sendMessage(sessionId: $s, text: $t) { id } }`;
    expect(code(await s.gql(msg, { s: sessionId, t: 'hi' }, observer))).toBe('FORBIDDEN');
    expect(code(await s.gql(SUBMIT, { input: { sessionId, instruction: 'add a cube' } }, observer))).toBe('FORBIDDEN');
    // Drawers chat, and may not submit here.
    await s.ok(msg, { s: sessionId, t: 'ok' }, drawer);
    expect(code(await s.gql(SUBMIT, { input: { sessionId, instruction: 'add a cube' } }, drawer))).toBe('FORBIDDEN');

    // Tellers submit; drawers may not cancel the teller's turn nor move the head.
    const t = await submit(s, teller, sessionId, 'add a red cube in the middle', { steps: 2 });
    expect(code(await s.gql(`mutation($t: ID!) { cancelTurn(turnId: $t) { id } }`, { t: t.id }, drawer))).toBe('FORBIDDEN');
    await waitTurn(s, teller, t.id);
    expect(code(await s.gql(`mutation($t: ID!) { revertToTurn(turnId: $t) { id } }`, { t: t.id }, drawer))).toBe('FORBIDDEN');
    await s.ok(`mutation($t: ID!) { revertToTurn(turnId: $t) { id } }`, { t: t.id }, teller);

    // Nothing the refused calls tried was written: one message, one turn.
    const after = await s.ok<{ session: { messages: Array<{ text: string }>; turns: unknown[] } }>(
      `query($id: ID!) { session(id: $id) { messages { text } turns { id } } }`,
      { id: sessionId },
      teller,
    );
    expect(after.session.messages.map((m) => m.text)).toEqual(['ok']);
    expect(after.session.turns).toHaveLength(1);
    // The observer's subscription saw the message and the turn.
    await obsEvents.until((e) => e.some((x) => x.kind === 'TURN_FINISHED'), 10_000, 'turn finished');
    expect(obsEvents.items.some((e) => e.kind === 'MESSAGE' && e.message?.text === 'ok')).toBe(true);
    obsEvents.unsubscribe();
  });

  it('in a session that allows it, drawers submit turns and may cancel their own', async () => {
    const { sessionId, teller } = await createSession(s, { allowDrawerTurns: true });
    const drawer = await join(s, { sessionId, teller }, 'DRAWER');
    const t = await submit(s, drawer, sessionId, 'put a green cylinder behind it', { steps: 200 });
    const c = await s.ok<{ cancelTurn: { status: string } }>(`mutation($t: ID!) { cancelTurn(turnId: $t) { status } }`, { t: t.id }, drawer);
    expect(c.cancelTurn.status).toBe('CANCELLED');
  });
});
