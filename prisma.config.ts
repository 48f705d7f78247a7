/**
 * Prisma CLI configuration: the JavaScript schema engine over a driver adapter (no native engines, works offline).
 * SQLite (better-sqlite3) by default, in DATA_DIR; PostgreSQL when DATABASE_URL is a postgres URL, with its own
 * schema file and migrations folder (Prisma fixes the provider per schema file).
 */
import fs from 'node:fs';
import path from 'node:path';
import { defineConfig } from 'prisma/config';
import { PrismaBetterSQLite3 } from '@prisma/adapter-better-sqlite3';
import { PrismaPg } from '@prisma/adapter-pg';

const url = process.env.DATABASE_URL ?? '';
const isPostgres = /^postgres(ql)?:\/\//.test(url);
const dataDir = process.env.DATA_DIR ?? 'data';
const sqliteFile = url.startsWith('file:') ? url.slice('file:'.length) : path.join(dataDir, 'codraw.db');

export default defineConfig({
  experimental: { adapter: true },
  engine: 'js',
  schema: isPostgres ? 'prisma/postgres/schema.prisma' : 'prisma/schema.prisma',
  migrations: { path: isPostgres ? 'prisma/postgres/migrations' : 'prisma/migrations' },
  async adapter() {
    if (!isPostgres) fs.mkdirSync(path.dirname(sqliteFile), { recursive: true });
    return isPostgres ? new PrismaPg({ connectionString: url }) : new PrismaBetterSQLite3({ url: sqliteFile });
  },
});
