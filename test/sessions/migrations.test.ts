/**
 * The committed SQLite migrations: a database made by them has the schema prisma/schema.prisma describes, and an
 * older server's database is upgraded in place without losing a row.
 */
import { spawnSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, describe, expect, it } from 'vitest';
import { makeConfig } from '../../src/config/index.js';
import { openDatabase } from '../../src/sessions/db.js';

const root = path.resolve(import.meta.dirname, '../..');
const dirs: string[] = [];
const tmp = () => {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), 'migrations-'));
  dirs.push(d);
  return d;
};
afterAll(() => dirs.forEach((d) => fs.rmSync(d, { recursive: true, force: true })));

/** Tables with their columns, indexes and foreign keys, order-insensitive (ALTER TABLE appends columns). */
function shape(file: string): Record<string, unknown> {
  const db = new Database(file, { readonly: true });
  try {
    const tables = (db.prepare(`SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' AND name != '_prisma_migrations'`).all() as { name: string }[]).map((t) => t.name);
    const sorted = (rows: unknown[]) => rows.map((r) => JSON.stringify(r)).sort();
    return Object.fromEntries(
      tables.sort().map((t) => [
        t,
        {
          columns: sorted((db.prepare(`PRAGMA table_info("${t}")`).all() as Record<string, unknown>[]).map(({ cid: _cid, ...c }) => c)),
          indexes: sorted((db.prepare(`SELECT name, sql FROM sqlite_master WHERE type = 'index' AND tbl_name = ? AND sql IS NOT NULL`).all(t))),
          foreignKeys: sorted((db.prepare(`PRAGMA foreign_key_list("${t}")`).all() as Record<string, unknown>[]).map(({ id: _id, seq: _seq, ...f }) => f)),
        },
      ]),
    );
  } finally {
    db.close();
  }
}

describe('SQLite migrations', () => {
  it('give the schema that prisma/schema.prisma describes', async () => {
    const dir = tmp();
    const migrated = path.join(dir, 'migrated.db');
    const db = await openDatabase(makeConfig({ databaseUrl: `file:${migrated}` }));
    await db.$disconnect();
    // The schema's own DDL, as Prisma writes it for an empty database.
    const r = spawnSync(process.execPath, [path.join(root, 'node_modules/prisma/build/index.js'), 'migrate', 'diff', '--from-empty', '--to-schema-datamodel', 'prisma/schema.prisma', '--script'], {
      cwd: root,
      encoding: 'utf8',
      env: { ...process.env, DATABASE_URL: `file:${path.join(dir, 'unused.db')}` },
    });
    expect(r.status, r.stderr).toBe(0);
    const fresh = path.join(dir, 'fresh.db');
    const f = new Database(fresh);
    f.exec(r.stdout);
    f.close();
    const want = shape(fresh);
    expect(Object.keys(want)).toContain('Turn');
    expect(shape(migrated)).toEqual(want);
  }, 60_000);

  it("upgrade an older server's database in place: every row kept, earlier turns get one candidate", async () => {
    const dir = tmp();
    const file = path.join(dir, 'codraw.db');
    // The database as the server left it before the candidates migration: the first migration only, recorded the
    // way src/sessions/db.ts records it.
    const initDir = path.join(root, 'prisma/migrations');
    const first = fs.readdirSync(initDir).filter((n) => fs.existsSync(path.join(initDir, n, 'migration.sql'))).sort()[0]!;
    const sql = fs.readFileSync(path.join(initDir, first, 'migration.sql'), 'utf8');
    const old = new Database(file);
    old.exec(sql);
    old.exec(`CREATE TABLE "_prisma_migrations" ("id" TEXT PRIMARY KEY NOT NULL, "checksum" TEXT NOT NULL, "finished_at" DATETIME,
      "migration_name" TEXT NOT NULL, "logs" TEXT, "rolled_back_at" DATETIME, "started_at" DATETIME NOT NULL DEFAULT current_timestamp,
      "applied_steps_count" INTEGER UNSIGNED NOT NULL DEFAULT 0)`);
    old.prepare(`INSERT INTO _prisma_migrations (id, checksum, finished_at, migration_name, applied_steps_count) VALUES (?, ?, ?, ?, 1)`)
      .run(crypto.randomUUID(), crypto.createHash('sha256').update(sql).digest('hex'), new Date().toISOString(), first);
    const now = new Date().toISOString();
    old.prepare(`INSERT INTO GeneratedImage (id, width, height, png, byteLength, sha256) VALUES ('img', 1, 1, x'00', 1, 'h')`).run();
    old.prepare(`INSERT INTO DrawingSession (id, title, dataset, model, backgroundImageId, updatedAt) VALUES ('s', 'T', 'iclevr', 'm', 'img', ?)`).run(now);
    old.prepare(`INSERT INTO Participant (id, sessionId, name, role, tokenHash) VALUES ('p', 's', 'Ann', 'TELLER', 'th')`).run();
    old.prepare(
      `INSERT INTO Turn (id, sessionId, "index", authorId, instruction, text, steps, guidanceScale, icmGuidanceScale, seed, status, resultImageId, queueSeq)
       VALUES ('t', 's', 1, 'p', 'add a red cube', 'add a red cube ok', 50, 5, 2, 7, 'SUCCEEDED', 'img', 1)`,
    ).run();
    old.prepare(`INSERT INTO Message (id, sessionId, authorId, text, turnId) VALUES ('m', 's', 'p', 'ok', 't')`).run();
    old.close();

    const db = await openDatabase(makeConfig({ databaseUrl: `file:${file}` }));
    try {
      const t = await db.turn.findUniqueOrThrow({ where: { id: 't' } });
      expect(t).toMatchObject({ candidates: 1, seed: 7, status: 'SUCCEEDED', resultImageId: 'img', guidanceScale: 5 });
      expect(await db.message.findMany()).toMatchObject([{ id: 'm', turnId: 't' }]);
      expect([await db.drawingSession.count(), await db.participant.count(), await db.generatedImage.count()]).toEqual([1, 1, 1]);
      const applied = await db.$queryRawUnsafe<{ migration_name: string }[]>('SELECT migration_name FROM _prisma_migrations ORDER BY migration_name');
      expect(applied.map((a) => a.migration_name)).toEqual(fs.readdirSync(initDir).filter((n) => fs.existsSync(path.join(initDir, n, 'migration.sql'))).sort());
    } finally {
      await db.$disconnect();
    }
  });
});
