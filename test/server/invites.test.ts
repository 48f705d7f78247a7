/**
 * Invitations against the real server: roles are never self-chosen. The creator is the first teller; everyone
 * else joins with a code a teller created for exactly that role, which can expire, run out, or be revoked.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  CREATE_INVITE,
  JOIN,
  createSession,
  errorCode,
  invite,
  join,
  startTestServer,
  submit,
  type RoleName,
  type TestServer,
} from './harness.js';

let s: TestServer;
beforeAll(async () => {
  s = await startTestServer({ limits: { maxOperationsPerMinute: 100_000 } });
});
afterAll(async () => {
  await s?.stop();
});

const PARTICIPANTS = `query($id: ID!) { session(id: $id) { participants { name role left } } }`;
const joinWith = (sessionId: string, role: RoleName, code: string, name = 'joiner', token: string | null = null) =>
  s.gql<{ joinSession: { token: string; participant: { role: string } } }>(JOIN, { input: { sessionId, name, role, invite: code } }, token);
const LEAVE = `mutation($s: ID!) { leaveSession(sessionId: $s) { id } }`;
const CANCEL = `mutation($t: ID!) { cancelTurn(turnId: $t) { status } }`;

describe('joining needs an invite for the role', () => {
  it('the creator is the first teller; joinSession without an invite is refused before anything runs', async () => {
    const { sessionId, teller } = await createSession(s);
    const r = await s.gql(JOIN, { input: { sessionId, name: 'evil', role: 'TELLER' } });
    expect(errorCode(r)).toBe('BAD_USER_INPUT');
    const made = await joinWith(sessionId, 'TELLER', 'made-up-code');
    expect(errorCode(made)).toBe('FORBIDDEN');
    const p = await s.ok<{ session: { participants: Array<{ name: string; role: string }> } }>(PARTICIPANTS, { id: sessionId }, teller);
    expect(p.session.participants).toEqual([{ name: 'Tess', role: 'TELLER', left: false }]);
  });

  it('a code grants exactly its role, in its own session only', async () => {
    const a = await createSession(s);
    const b = await createSession(s);
    const observer = await invite(s, a.teller, a.sessionId, 'OBSERVER');
    expect(errorCode(await joinWith(a.sessionId, 'TELLER', observer.code))).toBe('FORBIDDEN');
    expect(errorCode(await joinWith(a.sessionId, 'DRAWER', observer.code))).toBe('FORBIDDEN');
    expect(errorCode(await joinWith(b.sessionId, 'OBSERVER', observer.code))).toBe('FORBIDDEN');
    const ok = await joinWith(a.sessionId, 'OBSERVER', observer.code);
    expect(ok.data?.joinSession.participant.role).toBe('OBSERVER');
    // A TELLER invite from a teller makes a second teller.
    const second = await join(s, a, 'TELLER', 'Second');
    const inv = await s.ok<{ createInvite: { role: string } }>(CREATE_INVITE, { sessionId: a.sessionId, role: 'DRAWER' }, second);
    expect(inv.createInvite.role).toBe('DRAWER');
  });

  it('only tellers create and revoke invites', async () => {
    const session = await createSession(s);
    const drawer = await join(s, session, 'DRAWER');
    const observer = await join(s, session, 'OBSERVER');
    for (const token of [drawer, observer]) {
      expect(errorCode(await s.gql(CREATE_INVITE, { sessionId: session.sessionId, role: 'DRAWER' }, token))).toBe('FORBIDDEN');
    }
    expect(errorCode(await s.gql(CREATE_INVITE, { sessionId: session.sessionId, role: 'DRAWER' }))).toBe('UNAUTHENTICATED');
    const other = await createSession(s);
    expect(errorCode(await s.gql(CREATE_INVITE, { sessionId: session.sessionId, role: 'TELLER' }, other.teller))).toBe('FORBIDDEN');
    const inv = await invite(s, session.teller, session.sessionId, 'DRAWER');
    const REVOKE = `mutation($i: ID!) { revokeInvite(inviteId: $i) { id revoked code } }`;
    expect(errorCode(await s.gql(REVOKE, { i: inv.id }, drawer))).toBe('FORBIDDEN');
    const revoked = await s.ok<{ revokeInvite: { revoked: boolean; code: string | null } }>(REVOKE, { i: inv.id }, session.teller);
    expect(revoked.revokeInvite).toEqual({ id: inv.id, revoked: true, code: null });
    expect(errorCode(await joinWith(session.sessionId, 'DRAWER', inv.code))).toBe('FORBIDDEN');
  });

  it('a code stops working when used up or expired; bad bounds are BAD_USER_INPUT', async () => {
    const session = await createSession(s);
    const once = await invite(s, session.teller, session.sessionId, 'DRAWER', { maxUses: 1 });
    expect((await joinWith(session.sessionId, 'DRAWER', once.code)).errors).toBeUndefined();
    const second = await joinWith(session.sessionId, 'DRAWER', once.code);
    expect(errorCode(second)).toBe('FORBIDDEN');
    expect(second.errors?.[0]?.message).toMatch(/used up/);
    const brief = await invite(s, session.teller, session.sessionId, 'OBSERVER', { expiresInSeconds: 1 });
    await new Promise((r) => setTimeout(r, 1100));
    const late = await joinWith(session.sessionId, 'OBSERVER', brief.code);
    expect(late.errors?.[0]?.message).toMatch(/expired/);
    for (const bad of [{ maxUses: 0 }, { expiresInSeconds: 0 }, { expiresInSeconds: 10 ** 9 }]) {
      expect(errorCode(await s.gql(CREATE_INVITE, { sessionId: session.sessionId, role: 'DRAWER', ...bad }, session.teller))).toBe('BAD_USER_INPUT');
    }
  });
});

describe('the probes of issue 22 (G)', () => {
  it('someone who knows only the session id cannot become a teller and cancel the teller\'s turn', async () => {
    const { sessionId, teller } = await createSession(s);
    const t = await submit(s, teller, sessionId, 'add a red cube in the middle', { steps: 200 });
    const r = await s.gql(JOIN, { input: { sessionId, name: 'intruder', role: 'TELLER', invite: '' } });
    expect(errorCode(r)).toBe('FORBIDDEN');
    expect(r.data).toBeNull();
    await s.ok(CANCEL, { t: t.id }, teller);
  });

  it('an observer who leaves cannot rejoin as teller; their OBSERVER code still makes them an observer', async () => {
    const session = await createSession(s);
    const code = (await invite(s, session.teller, session.sessionId, 'OBSERVER')).code;
    const obs = (await joinWith(session.sessionId, 'OBSERVER', code, 'Obi')).data!.joinSession.token;
    await s.ok(LEAVE, { s: session.sessionId }, obs);
    expect(errorCode(await joinWith(session.sessionId, 'TELLER', code, 'Obi', obs))).toBe('FORBIDDEN');
    const back = await joinWith(session.sessionId, 'OBSERVER', code, 'Obi', obs);
    expect(back.data?.joinSession.participant.role).toBe('OBSERVER');
  });

  it('a TELLER invite dies when the teller who made it leaves', async () => {
    const session = await createSession(s);
    const second = await join(s, session, 'TELLER', 'Second');
    const fromSecond = await s.ok<{ createInvite: { code: string } }>(CREATE_INVITE, { sessionId: session.sessionId, role: 'TELLER' }, second);
    await s.ok(LEAVE, { s: session.sessionId }, second);
    const r = await joinWith(session.sessionId, 'TELLER', fromSecond.createInvite.code);
    expect(errorCode(r)).toBe('FORBIDDEN');
    expect(r.errors?.[0]?.message).toMatch(/has left/);
  });
});
