/**
 * A turn's life in the sessions service on a real SQLite database, without a model: the test plays the engine
 * (it calls the hooks as an engine would, with small PNGs), and a recording GenerationEngine shows what the
 * service asks of the engine.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeConfig } from '../../src/config/index.js';
import { blankImage, decodePng, encodePng } from '../../src/data/index.js';
import {
  DomainError, InProcessPubSub, hashToken, openDatabase, type Db, type SessionsService, type TurnProgressFrame,
} from '../../src/sessions/index.js';
import { modelFreeService, type RecordingEngine } from '../utils/sessions.js';

const red = encodePng(blankImage(16, 16, [200, 0, 0]));

describe('turn lifecycle (sessions service, SQLite, no model)', () => {
  let dir: string;
  let db: Db;
  let pubsub: InProcessPubSub;
  let service: SessionsService;
  let engine: RecordingEngine;

  beforeAll(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'lifecycle-'));
    db = await openDatabase(makeConfig({ dataDir: dir }));
    pubsub = new InProcessPubSub();
    ({ service, engine } = modelFreeService({ db, pubsub, config: { dataDir: dir } }));
  });
  afterAll(async () => {
    pubsub.close();
    await db.$disconnect();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('queued -> running -> succeeded: the engine is asked in order, frames are numbered, the result is the next reference', async () => {
    const { session, token } = await service.createSession(null, { title: 'life', name: 'Tess' });
    const me = hashToken(token);
    const frames = await service.subscribeProgress(me, session.id);
    const t1 = await service.submitTurn(me, { sessionId: session.id, instruction: 'add a red cube' });
    const t2 = await service.submitTurn(me, { sessionId: session.id, instruction: 'add a blue sphere' });
    expect(engine.enqueued.map((e) => [e.turnId, e.model])).toEqual([[t1.id, 'model-a'], [t2.id, 'model-a']]);
    expect(t1.steps).toBe(4);
    // A worker asks before it runs a turn: the session's second waits for its first.
    expect(await service.mayStart(t1.id, session.id)).toBe('now');
    expect(await service.mayStart(t2.id, session.id)).toBe('later');

    const in1 = await service.start(t1.id);
    expect(in1).toMatchObject({ turnId: t1.id, text: 'add a red cube', steps: 4 });
    expect([in1!.reference.width, in1!.reference.height]).toEqual([16, 16]);
    expect((await service.getTurn(me, t1.id)).status).toBe('RUNNING');
    service.progress({ turnId: t1.id, sessionId: session.id, step: 1, totalSteps: 4, etaMs: 30, previewPng: red });
    const running = await service.getTurn(me, t1.id);
    expect((await service.latestPreview(running))?.step).toBe(1);
    await service.finished(t1.id, red, { queuedMs: 1, runMs: 2 });
    const done = await service.getTurn(me, t1.id);
    expect(done.status).toBe('SUCCEEDED');
    expect(await service.latestPreview(done)).toBeNull();

    const got: TurnProgressFrame[] = [];
    for (let i = 0; i < 2; i++) got.push((await frames.next()).value as TurnProgressFrame);
    expect(got.map((f) => [f.sequence, f.step, f.final, !!f.preview])).toEqual([[0, 1, false, true], [1, 4, true, false]]);

    expect(await service.mayStart(t2.id, session.id)).toBe('now');
    const in2 = await service.start(t2.id);
    const reference = await decodePng(red);
    expect(Buffer.from(in2!.reference.data).equals(Buffer.from(reference.data))).toBe(true);
    await frames.return();
  });

  it('a cancelled running turn is CANCELLED at once, the engine is told, and a late result is dropped', async () => {
    const { session, token } = await service.createSession(null, { title: 'cancel', name: 'Tess' });
    const me = hashToken(token);
    const t = await service.submitTurn(me, { sessionId: session.id, instruction: 'add a cube' });
    await service.start(t.id);
    await service.cancelTurn(me, t.id);
    expect(engine.cancelled).toContain(t.id);
    await service.finished(t.id, red, { queuedMs: 1, runMs: 2 });
    const after = await service.getTurn(me, t.id);
    expect(after.status).toBe('CANCELLED');
    expect(after.resultImageId).toBeNull();
    expect(await service.mayStart(t.id, session.id)).toBe('gone');
    // A start after the cancel finds nothing to run.
    expect(await service.start(t.id)).toBeNull();
  });

  it('restart: shared resume leaves RUNNING turns to their workers; a single process puts them back to QUEUED; drain suspends its own', async () => {
    const { session, token } = await service.createSession(null, { title: 'restart', name: 'Tess' });
    const me = hashToken(token);
    const t = await service.submitTurn(me, { sessionId: session.id, instruction: 'add a cone' });
    const q = await service.submitTurn(me, { sessionId: session.id, instruction: 'add a ball' });
    await service.start(t.id);
    engine.enqueued.length = 0;
    await service.resume({ shared: true });
    expect((await service.getTurn(me, t.id)).status).toBe('RUNNING');
    expect(engine.enqueued.map((e) => e.turnId)).toEqual(expect.arrayContaining([t.id, q.id]));
    expect(engine.enqueued.findIndex((e) => e.turnId === t.id)).toBeLessThan(engine.enqueued.findIndex((e) => e.turnId === q.id));
    // This process started t (and the first test's second turn, still RUNNING): drain puts them back.
    expect(await service.suspendRunning()).toBe(2);
    expect((await service.getTurn(me, t.id)).status).toBe('QUEUED');
    await service.start(t.id);
    await service.resume();
    expect((await service.getTurn(me, t.id)).status).toBe('QUEUED');
  });

  it("a turn's solver is stored and handed to the engine; none: the model's default; an unknown one is refused", async () => {
    const { session, token } = await service.createSession(null, { title: 'solvers', name: 'Tess' });
    const me = hashToken(token);
    for (const solver of ['ddim', 'dpm++2m', null] as const) {
      const t = await service.submitTurn(me, { sessionId: session.id, instruction: 'add a cube', solver });
      expect(t.solver).toBe(solver);
      expect((await db.turn.findUniqueOrThrow({ where: { id: t.id } })).solver).toBe(solver);
      const inputs = await service.start(t.id);
      if (solver) expect(inputs!.solver).toBe(solver);
      else expect(inputs).not.toHaveProperty('solver');
      await service.finished(t.id, red, { queuedMs: 1, runMs: 2 });
    }
    const before = await db.turn.count({ where: { sessionId: session.id } });
    const refused = await service.submitTurn(me, { sessionId: session.id, instruction: 'add a cube', solver: 'euler' as 'ddim' }).catch((e: unknown) => e);
    expect(refused).toBeInstanceOf(DomainError);
    expect((refused as DomainError).code).toBe('BAD_USER_INPUT');
    expect(await db.turn.count({ where: { sessionId: session.id } })).toBe(before);
  });
});
