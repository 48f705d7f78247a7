/**
 * Turn numbering under concurrency: sessions services that do not share a write mutex (two API servers, two
 * processes) submit many turns to one session at once. Every turn is stored, with distinct consecutive indexes,
 * and the turns form one chain (each one's parent is the turn numbered before it, queued after it), on SQLite
 * and on PostgreSQL.
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import readline from 'node:readline';
import { afterAll, describe, expect, it } from 'vitest';
import { makeConfig } from '../../src/config/index.js';
import { InProcessPubSub, hashToken, openDatabase, type Db, type SessionsService } from '../../src/sessions/index.js';
import { freshDatabase } from '../utils/cluster.js';
import { modelFreeService } from '../utils/sessions.js';

const TURNS = 24;
const limits = { maxQueuedTurnsPerSession: 1000 };
const ROOT = path.resolve(import.meta.dirname, '../..');

/** `count` submissions to the session, all at once, spread over the services; the errors of those refused. */
async function submitAll(services: SessionsService[], tokenHash: string, sessionId: string, count: number): Promise<string[]> {
  const results = await Promise.allSettled(
    Array.from({ length: count }, (_, i) => services[i % services.length]!.submitTurn(tokenHash, { sessionId, instruction: `turn ${i}` })),
  );
  return results.flatMap((r) => (r.status === 'rejected' ? [String(r.reason)] : []));
}

/** The session's turns are numbered 1..total, each the child of the one before, and the head is the last. */
async function expectOneChain(db: Db, sessionId: string, total: number): Promise<void> {
  const rows = await db.turn.findMany({ where: { sessionId }, orderBy: { index: 'asc' } });
  expect(rows.map((t) => t.index)).toEqual(Array.from({ length: total }, (_, i) => i + 1));
  expect(rows.map((t) => t.parentTurnId)).toEqual([null, ...rows.slice(0, -1).map((t) => t.id)]);
  for (let i = 1; i < rows.length; i++) expect(rows[i]!.queueSeq).toBeGreaterThan(rows[i - 1]!.queueSeq);
  const s = await db.drawingSession.findUniqueOrThrow({ where: { id: sessionId } });
  expect(s.nextTurnIndex).toBe(total + 1);
  expect(s.headTurnId).toBe(rows.at(-1)!.id);
}

/** test/fixtures/submitTurns.ts in its own process, started and waiting; `go()` submits and resolves its refusals. */
async function otherProcess(databaseUrl: string, tokenHash: string, sessionId: string, count: number): Promise<{ go(): Promise<string[]> }> {
  const child = spawn(process.execPath, ['--import', 'tsx', 'test/fixtures/submitTurns.ts', databaseUrl, tokenHash, sessionId, String(count)], {
    cwd: ROOT,
    env: { ...process.env, LOG_LEVEL: 'warn' },
    stdio: ['pipe', 'pipe', 'inherit'],
  });
  const lines = readline.createInterface({ input: child.stdout! })[Symbol.asyncIterator]();
  const first = await lines.next();
  expect(first.value).toBe('ready');
  return {
    async go() {
      child.stdin!.end('go\n');
      const answer = await lines.next();
      await new Promise((r) => (child.exitCode === null ? child.once('exit', r) : r(null)));
      return (JSON.parse(answer.value as string) as { refused: string[] }).refused;
    },
  };
}

describe('turn index allocation under concurrent submissions', () => {
  const cleanups: Array<() => Promise<void> | void> = [];
  afterAll(async () => {
    for (const c of cleanups.reverse()) await c();
  });

  async function sqlite(): Promise<{ db: Db; url: string; pubsub: InProcessPubSub }> {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'turn-index-'));
    const url = `file:${path.join(dir, 'codraw.db')}`;
    const db = await openDatabase(makeConfig({ databaseUrl: url }));
    const pubsub = new InProcessPubSub();
    cleanups.push(async () => {
      pubsub.close();
      await db.$disconnect();
      fs.rmSync(dir, { recursive: true, force: true });
    });
    return { db, url, pubsub };
  }

  it('SQLite, one process: two services on one database number every turn once, in one chain', async () => {
    const { db, url, pubsub } = await sqlite();
    const config = { databaseUrl: url, limits };
    const [a, b] = [modelFreeService({ db, pubsub, config }).service, modelFreeService({ db, pubsub, config }).service];
    const { session, token } = await a.createSession(null, { title: 'race', name: 'Tess' });
    expect(await submitAll([a, b], hashToken(token), session.id, TURNS)).toEqual([]);
    await expectOneChain(db, session.id, TURNS);
  });

  it('SQLite, two processes with their own connections: every turn numbered once, in one chain', async () => {
    const { db, url, pubsub } = await sqlite();
    const a = modelFreeService({ db, pubsub, config: { databaseUrl: url, limits } }).service;
    const { session, token } = await a.createSession(null, { title: 'race', name: 'Tess' });
    const other = await otherProcess(url, hashToken(token), session.id, TURNS / 2);
    const [mine, theirs] = await Promise.all([submitAll([a], hashToken(token), session.id, TURNS / 2), other.go()]);
    expect([...mine, ...theirs]).toEqual([]);
    await expectOneChain(db, session.id, TURNS);
  });

  it.skipIf(!process.env.TEST_POSTGRES_URL)('PostgreSQL: two services, each with its own connection pool, number every turn once, in one chain', async () => {
    const database = await freshDatabase();
    cleanups.push(() => database.drop());
    const config = { databaseUrl: database.url, limits };
    const dbA = await openDatabase(makeConfig(config));
    const dbB = await openDatabase(makeConfig(config));
    const pubsub = new InProcessPubSub();
    cleanups.push(async () => {
      pubsub.close();
      await dbA.$disconnect();
      await dbB.$disconnect();
    });
    const [a, b] = [modelFreeService({ db: dbA, pubsub, config }).service, modelFreeService({ db: dbB, pubsub, config }).service];
    const { session, token } = await a.createSession(null, { title: 'race', name: 'Tess' });
    expect(await submitAll([a, b], hashToken(token), session.id, TURNS)).toEqual([]);
    await expectOneChain(dbA, session.id, TURNS);
  });
});
