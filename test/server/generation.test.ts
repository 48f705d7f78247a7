/**
 * Generation through the real server: real engine, tiny real model, SQLite in a temp folder, real HTTP and
 * graphql-ws clients.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { blankImage, decodePng, encodePng } from '../../src/data/index.js';
import {
  Collector,
  EVENTS,
  PROGRESS,
  createSession,
  join,
  startTestServer,
  submit,
  turn,
  waitTurn,
  type EventItem,
  type Frame,
  type TestServer,
} from './harness.js';

let s: TestServer;

beforeAll(async () => {
  s = await startTestServer({ limits: { maxSteps: 5000 } });
});
afterAll(async () => {
  await s?.stop();
});

const framesOf = (c: Collector<Frame>, turnId: string): Frame[] => c.items.filter((f) => f.turnId === turnId);

describe('turns through the server', () => {
  it('a teller and a drawer both receive every preview and the final image, in order', async () => {
    const { sessionId, teller } = await createSession(s);
    const drawer = await join(s, { sessionId, teller }, 'DRAWER', 'Drew');
    // An observer watches the lifecycle; each participant's first subscription flips them online, which is how
    // the test knows a subscription is live before anything is submitted.
    const observer = await join(s, { sessionId, teller }, 'OBSERVER', 'Obi');
    const de = new Collector<EventItem>(s.ws(observer), EVENTS, { sessionId }, (d) => d.sessionEvents as EventItem);
    const online = (name: string) => (ev: EventItem[]) => ev.some((e) => e.kind === 'PARTICIPANT_ONLINE' && e.participant?.name === name);
    await de.until(online('Obi'), 10_000, 'observer online');
    const dp = new Collector<Frame>(s.ws(drawer), PROGRESS, { sessionId }, (d) => d.turnProgress as Frame);
    await de.until(online('Drew'), 10_000, 'drawer online');
    const tp = new Collector<Frame>(s.ws(teller), PROGRESS, { sessionId }, (d) => d.turnProgress as Frame);
    await de.until(online('Tess'), 10_000, 'teller online');

    // The drawer's reply is part of the next turn's text (CoDraw).
    await s.ok(`mutation($s: ID!) { sendMessage(sessionId: $s, text: "where exactly?") { id } }`, { s: sessionId }, drawer);
    const t = await submit(s, teller, sessionId, 'add a red cube in the middle', { steps: 4, seed: 7 });
    expect(t.text).toBe('add a red cube in the middle where exactly?');
    expect(t.index).toBe(1);

    for (const c of [tp, dp]) {
      const frames = await c.until((fs) => fs.some((f) => f.turnId === t.id && f.final), 60_000, 'final frame');
      const mine = framesOf(c, t.id);
      // Frames are numbered 0, 1, 2, ... with increasing steps; previews carry PNGs of the predicted x0.
      // (The engine may skip a step's preview while the previous one is still encoding, so not every step has one.)
      expect(mine.map((f) => f.sequence)).toEqual(mine.map((_, i) => i));
      const previews = mine.slice(0, -1);
      expect(previews.length).toBeGreaterThanOrEqual(1);
      expect(previews[0]!.step).toBeGreaterThanOrEqual(1);
      for (let i = 1; i < previews.length; i++) expect(previews[i]!.step).toBeGreaterThan(previews[i - 1]!.step);
      for (const f of previews) {
        expect(f.final).toBe(false);
        expect(f.totalSteps).toBe(4);
        expect(f.preview).toMatch(/^data:image\/png;base64,iVBOR/);
      }
      const last = mine[mine.length - 1]!;
      expect(last.final).toBe(true);
      expect(last.image?.url).toBe(`/images/${last.image?.id}.png`);
      expect(frames.indexOf(last)).toBe(frames.length - 1);
    }
    // Teller and drawer saw the same frames.
    const key = (f: Frame): string => `${f.sequence}:${f.step}:${f.final}:${f.preview ?? ''}`;
    expect(framesOf(dp, t.id).map(key)).toEqual(framesOf(tp, t.id).map(key));
    const done = await waitTurn(s, teller, t.id);
    expect(done.status).toBe('SUCCEEDED');
    expect(done.resultImage).toMatchObject({ width: 16, height: 16 });
    expect(done.timings.runMs).toBeGreaterThan(0);

    // The lifecycle in order: message, queued, started, finished.
    const kinds = (await de.until((ev) => ev.some((e) => e.kind === 'TURN_FINISHED'), 10_000, 'finished event')).map((e) => e.kind);
    const order = ['MESSAGE', 'TURN_QUEUED', 'TURN_STARTED', 'TURN_FINISHED'].map((k) => kinds.indexOf(k));
    expect(order.every((i) => i >= 0)).toBe(true);
    expect([...order].sort((a, b) => a - b)).toEqual(order);

    // The final image is served over HTTP with immutable caching and an ETag; a repeat with If-None-Match is 304.
    const res = await fetch(`${s.origin}${done.resultImage!.url}`, { headers: { authorization: `Bearer ${drawer}` } });
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toBe('image/png');
    expect(res.headers.get('cache-control')).toContain('immutable');
    const etag = res.headers.get('etag')!;
    const png = Buffer.from(await res.arrayBuffer());
    expect(png.subarray(1, 4).toString()).toBe('PNG');
    const again = await fetch(`${s.origin}${done.resultImage!.url}`, { headers: { authorization: `Bearer ${drawer}`, 'if-none-match': etag } });
    expect(again.status).toBe(304);
    // ...and as a data URL where asked, the same bytes.
    const img = await s.ok<{ image: { dataUrl: string; byteLength: number } }>(
      `query($id: ID!) { image(id: $id) { dataUrl byteLength } }`,
      { id: done.resultImage!.id },
      teller,
    );
    expect(Buffer.from(img.image.dataUrl.split(',')[1]!, 'base64').equals(png)).toBe(true);
    expect(img.image.byteLength).toBe(png.length);

    // The drawer message is consumed: the next turn's text is the instruction alone.
    const t2 = await submit(s, teller, sessionId, 'add a blue sphere left of the red cube', { steps: 2 });
    expect(t2.text).toBe('add a blue sphere left of the red cube');
    expect(t2.parent?.id).toBe(t.id);
    const d2 = await waitTurn(s, teller, t2.id);
    expect(d2.status).toBe('SUCCEEDED');
    // Its reference is the previous turn's result.
    expect(d2.referenceImage?.id).toBe(done.resultImage!.id);
    tp.unsubscribe();
    dp.unsubscribe();
    de.unsubscribe();
  });

  it('two sessions submitting at once are denoised together in one batch and both finish', async () => {
    const a = await createSession(s, { title: 'A' });
    const b = await createSession(s, { title: 'B' });
    s.batches.length = 0;
    const [ta, tb] = await Promise.all([
      submit(s, a.teller, a.sessionId, 'add a red cube in the middle', { steps: 6 }),
      submit(s, b.teller, b.sessionId, 'put a green cylinder behind it', { steps: 6 }),
    ]);
    const [da, db] = await Promise.all([waitTurn(s, a.teller, ta.id), waitTurn(s, b.teller, tb.id)]);
    expect(da.status).toBe('SUCCEEDED');
    expect(db.status).toBe('SUCCEEDED');
    const joint = s.batches.filter((x) => x.turnIds.includes(ta.id) && x.turnIds.includes(tb.id));
    expect(joint.length).toBeGreaterThan(0);
    expect(Math.max(...s.batches.map((x) => x.size))).toBe(2);
  });

  it('cancel: a running turn stops within a step and is CANCELLED; a queued one never starts', async () => {
    const { sessionId, teller } = await createSession(s);
    const ev = new Collector<EventItem>(s.ws(teller), EVENTS, { sessionId }, (d) => d.sessionEvents as EventItem);
    const pr = new Collector<Frame>(s.ws(teller), PROGRESS, { sessionId }, (d) => d.turnProgress as Frame);
    await ev.until((e) => e.some((x) => x.kind === 'PARTICIPANT_ONLINE'), 10_000, 'online');
    const long = await submit(s, teller, sessionId, 'add a red cube in the middle', { steps: 200 });
    const queued = await submit(s, teller, sessionId, 'put a green cylinder behind it', { steps: 4 });
    await pr.until((f) => f.some((x) => x.turnId === long.id && x.step >= 2), 60_000, 'two steps');
    const cancel = `mutation($t: ID!) { cancelTurn(turnId: $t) { id status } }`;
    // The queued one first (else it would start as soon as the running one is gone).
    const c2 = await s.ok<{ cancelTurn: { status: string } }>(cancel, { t: queued.id }, teller);
    expect(c2.cancelTurn.status).toBe('CANCELLED');
    const c1 = await s.ok<{ cancelTurn: { status: string } }>(cancel, { t: long.id }, teller);
    expect(c1.cancelTurn.status).toBe('CANCELLED');
    const stepAtCancel = Math.max(...framesOf(pr, long.id).map((f) => f.step));
    await new Promise((r) => setTimeout(r, 500));
    // Within one step: at most one more frame after the cancel, no final frame, never a result.
    const after = framesOf(pr, long.id);
    expect(Math.max(...after.map((f) => f.step))).toBeLessThanOrEqual(stepAtCancel + 1);
    expect(after.some((f) => f.final)).toBe(false);
    const lt = await turn(s, teller, long.id);
    expect(lt.status).toBe('CANCELLED');
    expect(lt.resultImage).toBeNull();
    const qt = await turn(s, teller, queued.id);
    expect(qt.status).toBe('CANCELLED');
    expect(qt.referenceImage).toBeNull(); // never started
    expect(ev.items.filter((e) => e.kind === 'TURN_CANCELLED').map((e) => e.turn?.id)).toEqual([queued.id, long.id]);
    // Cancelling again is a typed error and changes nothing.
    const again = await s.gql(cancel, { t: long.id }, teller);
    expect(again.errors?.[0]?.extensions?.code).toBe('INVALID_STATE');
    // The head went back to the background, and the engine is idle again.
    const sess = await s.ok<{ session: { headTurn: null | { id: string } } }>(`query($id: ID!) { session(id: $id) { headTurn { id } } }`, { id: sessionId }, teller);
    expect(sess.session.headTurn).toBeNull();
    ev.unsubscribe();
    pr.unsubscribe();
  });

  it('revert moves the head back and the next turn branches from there', async () => {
    const { sessionId, teller } = await createSession(s);
    const t1 = await submit(s, teller, sessionId, 'add a red cube in the middle', { steps: 2 });
    const t2 = await submit(s, teller, sessionId, 'add a blue sphere left of the red cube', { steps: 2 });
    const d1 = await waitTurn(s, teller, t1.id);
    const d2 = await waitTurn(s, teller, t2.id);
    expect(d2.parent?.id).toBe(t1.id);
    expect(d2.referenceImage?.id).toBe(d1.resultImage!.id);

    const revert = await s.ok<{ revertToTurn: { headTurn: { id: string }; canvas: { id: string } } }>(
      `mutation($t: ID!) { revertToTurn(turnId: $t) { headTurn { id } canvas { id } } }`,
      { t: t1.id },
      teller,
    );
    expect(revert.revertToTurn.headTurn.id).toBe(t1.id);
    expect(revert.revertToTurn.canvas.id).toBe(d1.resultImage!.id);

    const t3 = await submit(s, teller, sessionId, 'put a green cylinder behind it', { steps: 2 });
    expect(t3.parent?.id).toBe(t1.id); // a branch beside t2
    expect(t3.index).toBe(3);
    const d3 = await waitTurn(s, teller, t3.id);
    expect(d3.status).toBe('SUCCEEDED');
    expect(d3.referenceImage?.id).toBe(d1.resultImage!.id);

    // Both branches stay in the history; the canvas is the new branch's result.
    const sess = await s.ok<{ session: { turns: Array<{ id: string; parent: { id: string } | null }>; canvas: { id: string } } }>(
      `query($id: ID!) { session(id: $id) { turns { id parent { id } } canvas { id } } }`,
      { id: sessionId },
      teller,
    );
    expect(sess.session.turns.map((t) => [t.id, t.parent?.id ?? null])).toEqual([
      [t1.id, null],
      [t2.id, t1.id],
      [t3.id, t1.id],
    ]);
    expect(sess.session.canvas.id).toBe(d3.resultImage!.id);

    // Only succeeded turns can be returned to.
    const bad = await s.gql(`mutation($t: ID!) { revertToTurn(turnId: $t) { id } }`, { t: 'nope' }, teller);
    expect(bad.errors?.[0]?.extensions?.code).toBe('NOT_FOUND');
  });

  it('a turn that fails is FAILED with its error, and the session goes on', async () => {
    const { sessionId, teller } = await createSession(s);
    const ev = new Collector<EventItem>(s.ws(teller), EVENTS, { sessionId }, (d) => d.sessionEvents as EventItem);
    await ev.until((e) => e.some((x) => x.kind === 'PARTICIPANT_ONLINE'), 10_000, 'online');
    // This server allows more steps than the model's 1000 diffusion timesteps: the model refuses the turn.
    const bad = await submit(s, teller, sessionId, 'add a red cube in the middle', { steps: 1500 });
    const failed = await waitTurn(s, teller, bad.id);
    expect(failed.status).toBe('FAILED');
    expect(failed.error).toMatch(/steps/);
    expect(failed.resultImage).toBeNull();
    await ev.until((e) => e.some((x) => x.kind === 'TURN_FAILED' && x.turn?.id === bad.id), 10_000, 'failed event');
    // The head went back; the next turn starts from the background and succeeds.
    const good = await submit(s, teller, sessionId, 'add a red cube in the middle', { steps: 2 });
    expect(good.parent).toBeNull();
    const done = await waitTurn(s, teller, good.id);
    expect(done.status).toBe('SUCCEEDED');
    const sess = await s.ok<{ session: { background: { id: string } } }>(`query($id: ID!) { session(id: $id) { background { id } } }`, { id: sessionId }, teller);
    expect(done.referenceImage?.id).toBe(sess.session.background.id);
    ev.unsubscribe();
  });

  it('a session can start from a given background canvas, and its first turn uses it as the reference', async () => {
    const red = encodePng(blankImage(16, 16, [200, 10, 10]));
    const c = await s.ok<{ createSession: { token: string; session: { id: string; background: { id: string; dataUrl: string }; canvas: { id: string } } } }>(
      `mutation($i: CreateSessionInput!) { createSession(input: $i) { token session { id background { id dataUrl } canvas { id } } } }`,
      { i: { title: 'red', name: 'T', backgroundPng: `data:image/png;base64,${red.toString('base64')}` } },
    );
    const { token, session } = c.createSession;
    const bg = await decodePng(Buffer.from(session.background.dataUrl.split(',')[1]!, 'base64'));
    expect([bg.width, bg.height, bg.data[0], bg.data[1], bg.data[2]]).toEqual([16, 16, 200, 10, 10]);
    expect(session.canvas.id).toBe(session.background.id);
    const t = await submit(s, token, session.id, 'add a red cube in the middle', { steps: 2 });
    expect((await waitTurn(s, token, t.id)).referenceImage?.id).toBe(session.background.id);
    const bad = await s.gql(`mutation($i: CreateSessionInput!) { createSession(input: $i) { token } }`, { i: { title: 'x', name: 'T', backgroundPng: 'data:image/png;base64,AAAA' } });
    expect(bad.errors?.[0]?.extensions?.code).toBe('BAD_USER_INPUT');
  });
});
