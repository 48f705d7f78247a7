#!/bin/sh
# CoDraw at 128x128 (GeNeVA's resolution) in a 32x32x4 latent: the exact commands. Each step resumes from its
# checkpoint when run again. Run from the repository root; CoDraw is read from ../shared/datasets/codraw (CC BY-NC 4.0).
set -e
cd "$(dirname "$0")/../.."
D="--dataset codraw --codraw-dir ../shared/datasets/codraw --checkpoint-minutes 5"

# 1. The autoencoder, 128x128x3 <-> 32x32x4 on 3,000 CoDraw train episodes (stop 29: 2,118 steps in 46 minutes on one
#    thread beside a distillation run, 1.27 s/step; validation L1 + MSE 0.859 -> 0.0272, two restore-and-halve events).
#    Its result is committed as models/codraw-128/autoencoder; models/codraw-128/ae-run continues it (README).
[ -f models/codraw-128/autoencoder/config.json ] || [ -f runs/ae-codraw-128/autoencoder/config.json ] || OMP_NUM_THREADS=1 nice -n 10 npx tsx src/train/cli.ts $D \
  --stage ae --config small --image-size 128 --out runs/ae-codraw-128 --resume --minutes 45 --batch 8 --lr 1e-3 \
  --val-every 200 --val-batches 8 --train-episodes 3000

# 2. CDD-ICM on the small-128 preset with that codec, all stages, the whole train split (7,989 episodes, 34,217
#    turns), a 96-token context (CoDraw turns: p99 93-96 word tokens), a weight average; resumable across sessions.
#    Started at stop 31 (stage 1: 4,454 steps in 30 min, validation 5.53 -> 0.783; stage 2 at ~2.4 s/step on one
#    thread). A session that ends mid-run commits out/best (the kept model with its AdamW moments and trainer state,
#    the optimizer file split in parts under 50 MB) as models/codraw-128/run; on a new machine it is put back here as
#    both last/ and best/, so the run continues from the kept step with its moments instead of restarting them.
if [ ! -f runs/codraw-128/last/trainer.json ] && [ -f models/codraw-128/run/checkpoint/trainer.json ]; then
  mkdir -p runs/codraw-128
  for d in last best; do
    rm -rf runs/codraw-128/$d && cp -r models/codraw-128/run/checkpoint runs/codraw-128/$d
    rm -f runs/codraw-128/$d/optimizer.safetensors.part-*
    cat models/codraw-128/run/checkpoint/optimizer.safetensors.part-* > runs/codraw-128/$d/optimizer.safetensors
  done
  cp models/codraw-128/run/args.json runs/codraw-128/ 2>/dev/null || true
fi
OMP_NUM_THREADS=1 nice -n 19 npx tsx src/train/cli.ts $D --stage all --config small-128 \
  --autoencoder models/codraw-128/autoencoder --out runs/codraw-128 --resume --minutes 600 --split 0.05,0.9,0.05 \
  --lr 2e-4 --batch 16 --val-every 300 --val-batches 8 --context-length 96 --ema-decay 0.999
