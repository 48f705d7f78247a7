-- The sampler's solver per turn (null: the model's default, what every earlier turn used).
ALTER TABLE "Turn" ADD COLUMN "solver" TEXT;
