-- Best-of-n candidates per turn (1: plain sampling, what every earlier turn used).
ALTER TABLE "Turn" ADD COLUMN "candidates" INTEGER NOT NULL DEFAULT 1;
