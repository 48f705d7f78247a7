#!/bin/sh
# How the CoDraw model was trained (the exact commands). Each step resumes from its checkpoint when run again.
# Run from the repository root. The CoDraw data is read from ../shared/datasets/codraw (CC BY-NC 4.0).
set -e
cd "$(dirname "$0")/../.."
D="--dataset codraw --codraw-dir ../shared/datasets/codraw --checkpoint-minutes 5"

# 1. Autoencoder 64x64x3 <-> 16x16x4 on CoDraw canvases (ran beside the i-CLEVR training, niced, one thread).
[ -f runs/ae-codraw/autoencoder/config.json ] || OMP_NUM_THREADS=1 nice -n 19 npx tsx src/train/cli.ts $D \
  --stage ae --config small --out runs/ae-codraw --resume --minutes 30 --batch 8 --lr 1e-3 --val-every 200 --val-batches 8

# 2. All three stages (budget split 12% / 78% / 10%), word tokenizer with 64-token context for the dialogue turns.
OMP_NUM_THREADS=1 nice -n 19 npx tsx src/train/cli.ts $D --stage all --config small \
  --autoencoder runs/ae-codraw/autoencoder --out runs/codraw-1 --resume --minutes 70 --split 0.12,0.78,0.1 \
  --lr 2e-4 --batch 16 --val-every 300 --val-batches 8 --context-length 64

# 3. The first CoDraw release (float16).
[ -f runs/codraw-1/export/model.safetensors ] || npx tsx src/train/cli.ts --export runs/codraw-1/model --out runs/codraw-1/export --dtype float16

# 4. Stages 2 and 3 continued from it with a moving average of the weights (two threads, 70 minutes; the second
#    release was trained from the first release's float16 files, which step 3 reproduces).
npx tsx src/train/cli.ts $D --stage 2,3 --config small --init runs/codraw-1/export --out runs/codraw-2 --resume \
  --minutes 70 --split 0,0.85,0.15 --lr 1e-4 --batch 16 --val-every 300 --val-batches 8 --context-length 64 \
  --ema-decay 0.999 --seed 2

# 5. Ship it (float16).
npx tsx src/train/cli.ts --export runs/codraw-2/model --out models/codraw --dtype float16
