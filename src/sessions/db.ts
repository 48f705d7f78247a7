/**
 * Opening the database: apply the committed migrations, then a Prisma client over a driver adapter.
 *
 * Migrations are applied here rather than by the Prisma CLI so that start-up needs no CLI, network or child
 * process. They are the committed `migration.sql` files, applied in name order, each in one transaction, and
 * recorded in Prisma's own `_prisma_migrations` table with Prisma's checksum (SHA-256 of the file), so
 * `prisma migrate status` / `migrate deploy` agree with what the server did.
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import Database from 'better-sqlite3';
import { PrismaBetterSQLite3 } from '@prisma/adapter-better-sqlite3';
import { PrismaPg } from '@prisma/adapter-pg';
import pg from 'pg';
import { databaseTarget, type Config } from '../config/index.js';
import { partLogger } from '../log/index.js';
import { PrismaClient } from '../generated/prisma/client.js';

const log = partLogger('sessions');

export type Db = PrismaClient;

interface Migration {
  name: string;
  sql: string;
  checksum: string;
}

/** Find `prisma/<sub>` walking up from this module (works from src/ under tsx and from dist/ after tsc). */
function findPrismaDir(sub: string): string {
  let dir = path.dirname(fileURLToPath(import.meta.url));
  for (;;) {
    const candidate = path.join(dir, 'prisma', sub);
    if (fs.existsSync(candidate)) return candidate;
    const up = path.dirname(dir);
    if (up === dir) throw new Error(`cannot find prisma/${sub} above ${fileURLToPath(import.meta.url)}`);
    dir = up;
  }
}

function readMigrations(dir: string): Migration[] {
  return fs
    .readdirSync(dir, { withFileTypes: true })
    .filter((e) => e.isDirectory() && fs.existsSync(path.join(dir, e.name, 'migration.sql')))
    .map((e) => e.name)
    .sort()
    .map((name) => {
      const sql = fs.readFileSync(path.join(dir, name, 'migration.sql'), 'utf8');
      return { name, sql, checksum: crypto.createHash('sha256').update(sql).digest('hex') };
    });
}

const SQLITE_MIGRATIONS_TABLE = `CREATE TABLE IF NOT EXISTS "_prisma_migrations" (
  "id" TEXT PRIMARY KEY NOT NULL, "checksum" TEXT NOT NULL, "finished_at" DATETIME, "migration_name" TEXT NOT NULL,
  "logs" TEXT, "rolled_back_at" DATETIME, "started_at" DATETIME NOT NULL DEFAULT current_timestamp,
  "applied_steps_count" INTEGER UNSIGNED NOT NULL DEFAULT 0)`;

const PG_MIGRATIONS_TABLE = `CREATE TABLE IF NOT EXISTS "_prisma_migrations" (
  "id" VARCHAR(36) PRIMARY KEY NOT NULL, "checksum" VARCHAR(64) NOT NULL, "finished_at" TIMESTAMPTZ,
  "migration_name" VARCHAR(255) NOT NULL, "logs" TEXT, "rolled_back_at" TIMESTAMPTZ,
  "started_at" TIMESTAMPTZ NOT NULL DEFAULT now(), "applied_steps_count" INTEGER NOT NULL DEFAULT 0)`;

function migrateSqlite(file: string, migrations: Migration[]): string[] {
  fs.mkdirSync(path.dirname(file), { recursive: true });
  const db = new Database(file);
  try {
    db.pragma('journal_mode = WAL');
    db.exec(SQLITE_MIGRATIONS_TABLE);
    const done = new Set(
      (db.prepare('SELECT migration_name FROM _prisma_migrations WHERE rolled_back_at IS NULL AND finished_at IS NOT NULL').all() as { migration_name: string }[]).map((r) => r.migration_name),
    );
    const applied: string[] = [];
    for (const m of migrations) {
      if (done.has(m.name)) continue;
      db.transaction(() => {
        db.exec(m.sql);
        db.prepare(
          `INSERT INTO _prisma_migrations (id, checksum, finished_at, migration_name, started_at, applied_steps_count)
           VALUES (?, ?, ?, ?, ?, 1)`,
        ).run(crypto.randomUUID(), m.checksum, new Date().toISOString(), m.name, new Date().toISOString());
      })();
      applied.push(m.name);
    }
    return applied;
  } finally {
    db.close();
  }
}

async function migratePostgres(url: string, migrations: Migration[]): Promise<string[]> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    // One server at a time migrates.
    await client.query('SELECT pg_advisory_lock(72707369)');
    await client.query(PG_MIGRATIONS_TABLE);
    const res = await client.query<{ migration_name: string }>(
      'SELECT migration_name FROM _prisma_migrations WHERE rolled_back_at IS NULL AND finished_at IS NOT NULL',
    );
    const done = new Set(res.rows.map((r) => r.migration_name));
    const applied: string[] = [];
    for (const m of migrations) {
      if (done.has(m.name)) continue;
      await client.query('BEGIN');
      try {
        await client.query(m.sql);
        await client.query(
          `INSERT INTO _prisma_migrations (id, checksum, finished_at, migration_name, started_at, applied_steps_count)
           VALUES ($1, $2, now(), $3, now(), 1)`,
          [crypto.randomUUID(), m.checksum, m.name],
        );
        await client.query('COMMIT');
      } catch (e) {
        await client.query('ROLLBACK');
        throw e;
      }
      applied.push(m.name);
    }
    return applied;
  } finally {
    await client.query('SELECT pg_advisory_unlock(72707369)').catch(() => undefined);
    await client.end();
  }
}

/** Apply pending migrations and open a Prisma client on the configured database. */
export async function openDatabase(config: Config): Promise<Db> {
  const target = databaseTarget(config);
  if (target.kind === 'sqlite') {
    const applied = migrateSqlite(target.file, readMigrations(findPrismaDir('migrations')));
    if (applied.length) log.info({ applied, file: target.file }, 'applied migrations');
    return new PrismaClient({ adapter: new PrismaBetterSQLite3({ url: target.file }) });
  }
  const applied = await migratePostgres(target.url, readMigrations(findPrismaDir('postgres/migrations')));
  if (applied.length) log.info({ applied }, 'applied migrations');
  // The generated client was built for SQLite's query compiler; PostgreSQL needs the client generated from
  // prisma/postgres/schema.prisma (see README.md, Persistence). The model API is the same.
  // A variable specifier: the PostgreSQL client is generated only when asked for, so it is not type-checked here.
  const pgModule = '../generated/prisma-pg/client.js';
  const pgClient = (await import(pgModule).catch(() => {
    throw new Error('PostgreSQL client missing: run `npx prisma generate --schema prisma/postgres/schema.prisma`');
  })) as { PrismaClient: new (o: { adapter: PrismaPg }) => unknown };
  return new pgClient.PrismaClient({ adapter: new PrismaPg({ connectionString: target.url }) }) as unknown as Db;
}
