-- The sampler's solver per turn (null: the model's default, what every earlier turn used).
-- ADD COLUMN rather than a table rebuild, as in 20261127000000_turn_candidates.
ALTER TABLE "Turn" ADD COLUMN "solver" TEXT;
