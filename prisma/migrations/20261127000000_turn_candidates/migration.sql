-- Best-of-n candidates per turn (1: plain sampling, what every earlier turn used).
-- ADD COLUMN rather than the table rebuild `prisma migrate diff` writes for SQLite: the rebuild drops "Turn",
-- and inside the migration transaction PRAGMA foreign_keys=OFF does not apply, so ON DELETE CASCADE would empty
-- the tables that reference it.
ALTER TABLE "Turn" ADD COLUMN "candidates" INTEGER NOT NULL DEFAULT 1;
